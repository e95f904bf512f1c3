package baton_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// liveReporter is a reporter for the live broker's resource server
// (BATON_RS_ID, BATON_RS_SECRET from test/sdk/run-live.ts).
func liveReporter(t *testing.T, cfg map[string]string, onError func(error)) *baton.Reporter {
	t.Helper()
	id, secret := os.Getenv("BATON_RS_ID"), os.Getenv("BATON_RS_SECRET")
	if id == "" || secret == "" {
		t.Fatal("live reporter test needs BATON_RS_ID and BATON_RS_SECRET (see test/sdk/run-live.ts)")
	}
	r, err := baton.NewReporter(baton.ReporterOptions{
		Target: cfg["BATON_ADDR"], ResourceServerID: id, ResourceServerSecret: secret, Audience: cfg["BATON_AUDIENCE"],
		FlushInterval: 20 * time.Millisecond, OnError: onError,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

func TestLiveReporterDelivers(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)
	var errs []error
	r := liveReporter(t, cfg, func(err error) { errs = append(errs, err) })
	issued, err := app.Issue(t.Context(), &batonv1.IssueRequest{TaskId: liveTaskID("reporter"), Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]}})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	c := issued.GetClaims()
	r.Report(baton.AccessDecision{TokenID: c.GetTokenId(), AgentID: c.GetAgentId(), Allowed: true, Scope: cfg["BATON_SCOPE"], Resource: "GET /records/P-1042", Outcome: "200"})
	r.Report(baton.AccessDecision{TokenID: c.GetTokenId(), AgentID: c.GetAgentId(), Reason: "TOKEN_STATUS_REVOKED", Outcome: "401"})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v (errors %v)", err, errs)
	}
	if s := r.Stats(); s.Sent != 2 || s.Rejected != 0 || s.Pending != 0 {
		t.Fatalf("stats %+v, want 2 sent", s)
	}

	// A report about a token the broker never issued, between two good ones:
	// that one is dropped and counted, the others delivered.
	good := baton.AccessDecision{TokenID: c.GetTokenId(), AgentID: c.GetAgentId(), Allowed: true}
	r.Report(good)
	r.Report(baton.AccessDecision{TokenID: "not-a-token", AgentID: c.GetAgentId(), Allowed: true})
	r.Report(good)
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if s := r.Stats(); s.Sent != 4 || s.Rejected != 1 || s.FailedBatches != 1 || s.Pending != 0 {
		t.Fatalf("stats %+v, want 4 sent and 1 rejected", s)
	}
	var e *baton.Error
	if len(errs) != 1 || !errors.As(baton.FromError(errs[0]), &e) || e.Reason != "NOT_FOUND" || e.Metadata["index"] != "1" {
		t.Fatalf("errors %v, want one NOT_FOUND naming index 1", errs)
	}
}

func TestLiveInterceptorReportsDecisions(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)
	sub := readySubscriber(t, cfg)
	v := liveVerifier(t, cfg, baton.KeySetFromClient(app), sub)
	r := liveReporter(t, cfg, nil)
	icpt := baton.UnaryServerInterceptor(v, baton.InterceptorOptions{
		RequiredScopes: func(m string) []string {
			if m == "/ehr.v1.Records/Delete" {
				return []string{"delete:records:P-1042"}
			}
			return []string{cfg["BATON_SCOPE"]}
		},
		Reporter: r,
	})
	issued, err := app.Issue(t.Context(), &batonv1.IssueRequest{TaskId: liveTaskID("interceptor-report"), Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]}})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	call := func(method string) error {
		ctx := metadata.NewIncomingContext(t.Context(), metadata.Pairs("authorization", "Bearer "+issued.GetAccessToken()))
		_, err := icpt(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) { return "ok", nil })
		return err
	}
	if err := call("/ehr.v1.Records/Get"); err != nil {
		t.Fatalf("allowed call: %v", err)
	}
	if err := call("/ehr.v1.Records/Delete"); err == nil {
		t.Fatal("a call without its scope was let through")
	}
	// No token: nothing to report about.
	_, _ = icpt(metadata.NewIncomingContext(t.Context(), metadata.MD{}), nil, &grpc.UnaryServerInfo{FullMethod: "/ehr.v1.Records/Get"}, func(context.Context, any) (any, error) { return nil, nil })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := r.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if s := r.Stats(); s.Sent != 2 || s.Rejected != 0 {
		t.Fatalf("stats %+v, want the allowed and the denied call reported", s)
	}
}
