package baton_test

// Client.RenewAs against a live broker (issue 8): the renewed token keeps
// the agent, scopes and key binding and names the old token; the old token
// is revoked at once (Validate) and refused by the Verifier once the stream
// brings it; a key-bound token needs its key; the task lifetime maximum
// ends the line with TASK_LIFETIME_EXCEEDED. Needs the environment of
// test/sdk/run-live.ts, BATON_OPERATOR_TOKEN included.

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

func TestLiveRenewNamesAndRevokesTheOldToken(t *testing.T) {
	cfg := liveConfig(t)
	ctx := t.Context()
	client := dialApp(t, cfg)
	first, err := client.Issue(ctx, &batonv1.IssueRequest{TaskId: liveTaskID("renew"), Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]}})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	renewed, err := client.RenewAs(ctx, first.GetAccessToken(), nil, &batonv1.RenewRequest{Ttl: durationpb.New(2 * time.Minute)})
	if err != nil {
		t.Fatalf("RenewAs: %v", err)
	}
	c, f := renewed.GetClaims(), first.GetClaims()
	if c.GetRenewedFromTokenId() != f.GetTokenId() || c.GetAgentId() != f.GetAgentId() || !slices.Equal(c.GetScopes(), f.GetScopes()) {
		t.Fatalf("renewed claims %v do not carry %v", c, f)
	}
	if got := validate(t, client, cfg, first.GetAccessToken()).GetStatus(); got != batonv1.TokenStatus_TOKEN_STATUS_REVOKED {
		t.Fatalf("old token: Validate = %v, want REVOKED", got)
	}

	verifier := liveVerifier(t, cfg, baton.KeySetFromClient(client), readySubscriber(t, cfg))
	res := verifier.Verify(ctx, renewed.GetAccessToken(), baton.VerifyOptions{})
	if !res.OK {
		t.Fatalf("the renewed token: %s %s", res.Reason, res.Detail)
	}
	if res.Claims.RenewedFromTokenID != f.GetTokenId() {
		t.Fatalf("Claims.RenewedFromTokenID = %q, want %q", res.Claims.RenewedFromTokenID, f.GetTokenId())
	}
	if !res.Claims.RootIssuedAt.Equal(f.GetIssueTime().AsTime()) {
		t.Fatalf("Claims.RootIssuedAt = %v, want the line's start %v", res.Claims.RootIssuedAt, f.GetIssueTime().AsTime())
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := verifier.Verify(ctx, first.GetAccessToken(), baton.VerifyOptions{})
		if r.Reason == baton.ReasonRevoked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old token is still %v, want REVOKED", r.Reason)
		}
		time.Sleep(25 * time.Millisecond)
	}

	// A nil request renews with the broker's default TTL; the old token cannot renew again.
	if _, err := client.RenewAs(ctx, renewed.GetAccessToken(), nil, nil); err != nil {
		t.Fatalf("RenewAs with a nil request: %v", err)
	}
	_, err = client.RenewAs(ctx, first.GetAccessToken(), nil, nil)
	var be *baton.Error
	if !errors.As(err, &be) || be.Reason != "TOKEN_INVALID" {
		t.Fatalf("renewing a revoked token: %v, want TOKEN_INVALID", err)
	}
}

func TestLiveRenewKeyBound(t *testing.T) {
	cfg := liveConfig(t)
	ctx := t.Context()
	client := dialApp(t, cfg)
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	first := issueBound(t, client, cfg, "renew-bound", key)
	_, err = client.RenewAs(ctx, first.GetAccessToken(), nil, nil)
	var be *baton.Error
	if !errors.As(err, &be) || be.Reason != "PROOF_REQUIRED" {
		t.Fatalf("renewing a key-bound token without its key: %v, want PROOF_REQUIRED", err)
	}
	renewed, err := client.RenewAs(ctx, first.GetAccessToken(), key, nil)
	if err != nil {
		t.Fatalf("RenewAs with the key: %v", err)
	}
	if got := renewed.GetClaims().GetKeyThumbprint(); got != key.Thumbprint() {
		t.Fatalf("renewed key_thumbprint = %q, want %q", got, key.Thumbprint())
	}
	if _, err := client.RenewAs(ctx, renewed.GetAccessToken(), key, nil); err != nil {
		t.Fatalf("renewing the renewed token with the same key: %v", err)
	}
}

func TestLiveRenewTaskLifetimeExceeded(t *testing.T) {
	cfg := liveAdminConfig(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	admin := dialAdmin(t, cfg)
	created, err := admin.CreateApp(ctx, &batonv1.CreateAppRequest{
		Name:            liveTaskID("renew-app"),
		ScopeCeiling:    []string{cfg["BATON_SCOPE"]},
		Audiences:       []string{cfg["BATON_AUDIENCE"]},
		MaxTaskLifetime: durationpb.New(time.Second),
	})
	if err != nil {
		t.Fatalf("CreateApp with max_task_lifetime: %v", err)
	}
	if got := created.GetApp().GetMaxTaskLifetime().AsDuration(); got != time.Second {
		t.Fatalf("App.max_task_lifetime = %v, want 1s", got)
	}
	app := dialAs(t, cfg, created.GetApp().GetAppId(), created.GetClientSecret())
	first, err := app.Issue(ctx, &batonv1.IssueRequest{TaskId: liveTaskID("renew-end"), Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]}})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	_, err = app.RenewAs(ctx, first.GetAccessToken(), nil, nil)
	var be *baton.Error
	if !errors.As(err, &be) || be.Reason != "TASK_LIFETIME_EXCEEDED" || be.Code != codes.FailedPrecondition {
		t.Fatalf("renewing past the task's end: %v, want FAILED_PRECONDITION TASK_LIFETIME_EXCEEDED", err)
	}
	want := first.GetClaims().GetIssueTime().AsTime().Add(time.Second).UTC().Format("2006-01-02T15:04:05.000Z")
	if got := be.Metadata["task_expire_time"]; got != want {
		t.Fatalf("task_expire_time = %q, want %q", got, want)
	}
}
