package baton_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// fakeBroker records what reaches the server and answers Issue with a Baton
// error, the way the broker does.
type fakeBroker struct {
	batonv1.UnimplementedBrokerServiceServer
	authorization string
	deadlineLeft  time.Duration
}

func (f *fakeBroker) Issue(ctx context.Context, _ *batonv1.IssueRequest) (*batonv1.IssueResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) == 1 {
		f.authorization = v[0]
	}
	if d, ok := ctx.Deadline(); ok {
		f.deadlineLeft = time.Until(d)
	}
	st, err := status.New(codes.PermissionDenied, "requested scopes are not covered by the app's ceiling: admin:everything:*").
		WithDetails(&errdetails.ErrorInfo{
			Reason:   "SCOPE_NOT_COVERED",
			Domain:   baton.ErrorDomain,
			Metadata: map[string]string{"excess_scopes": "admin:everything:*", "rule": "ceiling"},
		})
	if err != nil {
		return nil, err
	}
	return nil, st.Err()
}

func startFake(t *testing.T, opts ...baton.Option) (*fakeBroker, *baton.Client) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	fake := &fakeBroker{}
	batonv1.RegisterBrokerServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })
	client, err := baton.Dial("passthrough:///bufnet", append(opts, baton.WithDialOptions(dialer))...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return fake, client
}

func TestClientSendsCredentialsAndConvertsErrors(t *testing.T) {
	tests := []struct {
		name string
		opt  baton.Option
		want string
	}{
		{"basic", baton.WithBasicAuth("app-1", "s3cret:with:colons"), "Basic " + base64.StdEncoding.EncodeToString([]byte("app-1:s3cret:with:colons"))},
		{"bearer", baton.WithBearerToken("tok.en.value"), "Bearer tok.en.value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake, client := startFake(t, tc.opt, baton.WithTimeout(3*time.Second))
			_, err := client.Issue(context.Background(), &batonv1.IssueRequest{})

			if fake.authorization != tc.want {
				t.Errorf("authorization = %q, want %q", fake.authorization, tc.want)
			}
			if fake.deadlineLeft <= 0 || fake.deadlineLeft > 3*time.Second {
				t.Errorf("server saw deadline in %v, want within the 3s default", fake.deadlineLeft)
			}
			var berr *baton.Error
			if !errors.As(err, &berr) {
				t.Fatalf("err = %v (%T), want *baton.Error", err, err)
			}
			if berr.Code != codes.PermissionDenied || berr.Reason != "SCOPE_NOT_COVERED" || berr.Metadata["rule"] != "ceiling" {
				t.Errorf("got code %v reason %q metadata %v", berr.Code, berr.Reason, berr.Metadata)
			}
			if berr.ErrorReason() != batonv1.ErrorReason_ERROR_REASON_SCOPE_NOT_COVERED {
				t.Errorf("ErrorReason() = %v", berr.ErrorReason())
			}
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("status.Code(err) = %v, want PermissionDenied", status.Code(err))
			}
		})
	}
}

func TestCallerDeadlineWins(t *testing.T) {
	fake, client := startFake(t, baton.WithTimeout(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, _ = client.Issue(ctx, &batonv1.IssueRequest{})
	if fake.deadlineLeft < 30*time.Second {
		t.Errorf("server saw deadline in %v, want the caller's minute", fake.deadlineLeft)
	}
}

func TestFromErrorWithoutDetails(t *testing.T) {
	err := baton.FromError(status.Error(codes.Unimplemented, "nope"))
	var berr *baton.Error
	if !errors.As(err, &berr) {
		t.Fatalf("err = %T, want *baton.Error", err)
	}
	if berr.Code != codes.Unimplemented || berr.Reason != "" || berr.Metadata == nil {
		t.Errorf("got code %v reason %q metadata %v", berr.Code, berr.Reason, berr.Metadata)
	}
	if got := baton.FromError(nil); got != nil {
		t.Errorf("FromError(nil) = %v", got)
	}
	plain := errors.New("plain")
	if got := baton.FromError(plain); got != plain {
		t.Errorf("FromError(plain) = %v, want it unchanged", got)
	}
}
