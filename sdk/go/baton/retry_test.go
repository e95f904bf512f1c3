package baton_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// retryBroker answers every RevokeMany with the status in `answer`, built as
// the broker builds its RATE_LIMITED and AUTHENTICATION_THROTTLED errors.
type retryBroker struct {
	batonv1.UnimplementedBrokerServiceServer
	answer *status.Status
}

func (f *retryBroker) RevokeMany(context.Context, *batonv1.RevokeManyRequest) (*batonv1.RevokeManyResponse, error) {
	return nil, f.answer.Err()
}

// serveLoopback serves srv on a loopback TCP port and returns its address.
func serveLoopback(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// statusWith builds a Baton error status, with a RetryInfo when a delay is
// given. It panics only on a detail that cannot be marshalled.
func statusWith(code codes.Code, reason string, details ...*durationpb.Duration) *status.Status {
	st := status.New(code, "slow down")
	var err error
	if len(details) == 0 {
		st, err = st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: baton.ErrorDomain})
	} else {
		st, err = st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: baton.ErrorDomain},
			&errdetails.RetryInfo{RetryDelay: details[0]})
	}
	if err != nil {
		panic(err)
	}
	return st
}

func TestRetryInfoBecomesRetryAfter(t *testing.T) {
	cases := []struct {
		name   string
		answer *status.Status
		reason batonv1.ErrorReason
		want   time.Duration
	}{
		{"rate limited", statusWith(codes.ResourceExhausted, "RATE_LIMITED", &durationpb.Duration{Seconds: 1, Nanos: 500_000_000}),
			batonv1.ErrorReason_ERROR_REASON_RATE_LIMITED, 1500 * time.Millisecond},
		{"authentication throttled", statusWith(codes.ResourceExhausted, "AUTHENTICATION_THROTTLED", &durationpb.Duration{Seconds: 42}),
			batonv1.ErrorReason_ERROR_REASON_AUTHENTICATION_THROTTLED, 42 * time.Second},
		{"no RetryInfo", statusWith(codes.ResourceExhausted, "RATE_LIMITED"),
			batonv1.ErrorReason_ERROR_REASON_RATE_LIMITED, 0},
		{"negative delay ignored", statusWith(codes.ResourceExhausted, "RATE_LIMITED", &durationpb.Duration{Seconds: -3}),
			batonv1.ErrorReason_ERROR_REASON_RATE_LIMITED, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := grpc.NewServer()
			batonv1.RegisterBrokerServiceServer(srv, &retryBroker{answer: c.answer})
			client, err := baton.Dial(serveLoopback(t, srv), baton.WithBasicAuth("app_x", "secret"))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			_, err = client.RevokeMany(t.Context(), &batonv1.RevokeManyRequest{Targets: []*batonv1.RevokeRequest{{
				Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN, Id: "tok_1", Reason: "x"}}})
			var berr *baton.Error
			if !errors.As(err, &berr) {
				t.Fatalf("err = %v (%T), want *baton.Error", err, err)
			}
			if berr.RetryAfter != c.want {
				t.Errorf("RetryAfter = %v, want %v", berr.RetryAfter, c.want)
			}
			if berr.ErrorReason() != c.reason || berr.Reason != baton.ReasonOf(c.reason) {
				t.Errorf("reason = %q (%v), want %v", berr.Reason, berr.ErrorReason(), c.reason)
			}
			if berr.Code != codes.ResourceExhausted {
				t.Errorf("code = %v, want ResourceExhausted", berr.Code)
			}
		})
	}
}

func TestNewReasonsMapToTheEnum(t *testing.T) {
	for name, want := range map[string]batonv1.ErrorReason{
		"RATE_LIMITED":             26,
		"AUTHENTICATION_THROTTLED": 27,
		"AUDIENCE_NOT_SERVED":      28,
		"RESOURCE_SERVER_DISABLED": 29,
	} {
		e := &baton.Error{Reason: name}
		if got := e.ErrorReason(); got != want {
			t.Errorf("ErrorReason() of %q = %v, want %d", name, got, want)
		}
		if got := baton.ReasonOf(want); got != name {
			t.Errorf("ReasonOf(%d) = %q, want %q", want, got, name)
		}
	}
}

// fakeAdmin serves ListApps in pages of the requested size over `apps`
// app ids, and records the authorization of the last call.
type fakeAdmin struct {
	batonv1.UnimplementedAdminServiceServer
	apps          int
	calls         int
	authorization string
}

func (f *fakeAdmin) ListApps(ctx context.Context, req *batonv1.ListAppsRequest) (*batonv1.ListAppsResponse, error) {
	f.calls++
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) == 1 {
		f.authorization = v[0]
	}
	start := 0
	if req.GetPageToken() != "" {
		var err error
		if start, err = strconv.Atoi(req.GetPageToken()); err != nil {
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		}
	}
	resp := &batonv1.ListAppsResponse{}
	end := min(start+int(req.GetPageSize()), f.apps)
	for i := start; i < end; i++ {
		resp.Apps = append(resp.Apps, &batonv1.App{AppId: "app_" + strconv.Itoa(i)})
	}
	if end < f.apps {
		resp.NextPageToken = strconv.Itoa(end)
	}
	return resp, nil
}

func (f *fakeAdmin) GetApp(context.Context, *batonv1.GetAppRequest) (*batonv1.GetAppResponse, error) {
	return nil, statusWith(codes.NotFound, "APP_NOT_FOUND").Err()
}

func TestAdminClientPaginatesWithTheOperatorToken(t *testing.T) {
	fake := &fakeAdmin{apps: 7}
	srv := grpc.NewServer()
	batonv1.RegisterAdminServiceServer(srv, fake)
	admin, err := baton.DialAdmin(serveLoopback(t, srv), "bop_operator")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	var ids []string
	for app, err := range admin.AllApps(t.Context(), 3) {
		if err != nil {
			t.Fatalf("AllApps: %v", err)
		}
		ids = append(ids, app.GetAppId())
	}
	if len(ids) != 7 || ids[0] != "app_0" || ids[6] != "app_6" {
		t.Errorf("AllApps = %v, want app_0..app_6", ids)
	}
	if fake.calls != 3 {
		t.Errorf("ListApps calls = %d, want 3 (pages of 3, 3, 1)", fake.calls)
	}
	if fake.authorization != "Bearer bop_operator" {
		t.Errorf("authorization = %q, want the operator token as Bearer", fake.authorization)
	}

	// Errors are the same typed errors as the broker client's.
	_, err = admin.GetApp(t.Context(), &batonv1.GetAppRequest{AppId: "app_missing"})
	var berr *baton.Error
	if !errors.As(err, &berr) || berr.Reason != "APP_NOT_FOUND" || berr.Code != codes.NotFound {
		t.Errorf("GetApp error = %v, want *baton.Error NotFound APP_NOT_FOUND", err)
	}

	// An error mid-iteration ends it with that error.
	fake.apps = 0
	n := 0
	for _, err := range admin.AllResourceServers(t.Context(), 2) {
		n++
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("AllResourceServers error = %v, want Unimplemented", err)
		}
	}
	if n != 1 {
		t.Errorf("AllResourceServers yielded %d times, want 1 (the error)", n)
	}
}
