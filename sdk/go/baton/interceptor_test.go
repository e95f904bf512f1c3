package baton_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/baton-dev/baton/sdk/go/baton"
)

func TestUnaryServerInterceptor(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: testNow}
	v, _ := newVerifier(t, keys, view, func() time.Time { return testNow })
	tok := keys.sign(t, esHeader(), baseClaims())
	const method = "/ehr.v1.Records/Get"
	icpt := baton.UnaryServerInterceptor(v, baton.InterceptorOptions{
		RequiredScopes: func(m string) []string {
			if m == method {
				return []string{"read:records:P-1"}
			}
			return []string{"admin:records:*"}
		},
		PublicMethods: []string{"/grpc.health.v1.Health/Check"},
	})
	call := func(m string, md ...string) (*baton.Claims, error) {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(md...))
		var got *baton.Claims
		_, err := icpt(ctx, nil, &grpc.UnaryServerInfo{FullMethod: m}, func(ctx context.Context, _ any) (any, error) {
			got, _ = baton.ClaimsFromContext(ctx)
			return nil, nil
		})
		return got, err
	}
	wantErr := func(what string, err error, code codes.Code, reason, tokenStatus string) {
		t.Helper()
		var berr *baton.Error
		if !errors.As(baton.FromError(err), &berr) || berr.Code != code || berr.Reason != reason || berr.Metadata["token_status"] != tokenStatus {
			t.Errorf("%s: %v, want %v %s %s", what, err, code, reason, tokenStatus)
		}
	}

	if c, err := call(method, "authorization", "Bearer "+tok); err != nil || c == nil || c.TokenID != "tok_1" {
		t.Errorf("valid call: claims %v, err %v", c, err)
	}
	if c, err := call("/grpc.health.v1.Health/Check"); err != nil || c != nil {
		t.Errorf("public method: claims %v, err %v", c, err)
	}
	_, err := call(method)
	wantErr("no token", err, codes.Unauthenticated, "CREDENTIALS_MISSING", "")
	_, err = call(method, "authorization", "Basic abc")
	wantErr("Basic", err, codes.Unauthenticated, "CREDENTIALS_MISSING", "")
	_, err = call("/ehr.v1.Records/Delete", "authorization", "Bearer "+tok)
	wantErr("scope", err, codes.PermissionDenied, "TOKEN_INVALID", "INSUFFICIENT_SCOPE")
	_, err = call(method, "authorization", "Bearer x.y.z")
	wantErr("garbage", err, codes.Unauthenticated, "TOKEN_INVALID", "MALFORMED")
	view.freshAt = testNow.Add(-time.Minute)
	_, err = call(method, "authorization", "Bearer "+tok)
	wantErr("stale", err, codes.Unavailable, "UNAVAILABLE", "")
}
