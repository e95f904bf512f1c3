package baton_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// Live tests of the admin client, RevokeMany and resource-server
// credentials. They need, besides liveEnv, BATON_OPERATOR_TOKEN and
// BATON_RS_ID / BATON_RS_SECRET (a resource server for BATON_AUDIENCE), as
// test/sdk/run-live.ts sets them; like the other live tests they fail, not
// skip, without them. They make few failed authentications on purpose: the
// broker throttles a source address after BATON_AUTH_FAILURES (20) of them.

func liveAdminConfig(t *testing.T) map[string]string {
	t.Helper()
	cfg := liveConfig(t)
	for _, name := range []string{"BATON_OPERATOR_TOKEN", "BATON_RS_ID", "BATON_RS_SECRET"} {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("live admin test needs %s (set by test/sdk/run-live.ts)", name)
		}
		cfg[name] = v
	}
	return cfg
}

func dialAdmin(t *testing.T, cfg map[string]string) *baton.AdminClient {
	t.Helper()
	admin, err := baton.DialAdmin(cfg["BATON_ADDR"], cfg["BATON_OPERATOR_TOKEN"])
	if err != nil {
		t.Fatalf("DialAdmin: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	return admin
}

func dialAs(t *testing.T, cfg map[string]string, id, secret string) *baton.Client {
	t.Helper()
	c, err := baton.Dial(cfg["BATON_ADDR"], baton.WithBasicAuth(id, secret))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func issueFor(t *testing.T, client *baton.Client, cfg map[string]string, name string) *batonv1.IssueResponse {
	t.Helper()
	issued, err := client.Issue(t.Context(), &batonv1.IssueRequest{
		TaskId:    liveTaskID(name),
		Scopes:    []string{cfg["BATON_SCOPE"]},
		Audiences: []string{cfg["BATON_AUDIENCE"]},
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return issued
}

func TestLiveAdminAppLifecycle(t *testing.T) {
	cfg := liveAdminConfig(t)
	admin := dialAdmin(t, cfg)
	ctx := t.Context()

	created, err := admin.CreateApp(ctx, &batonv1.CreateAppRequest{
		Name:         "sdk-go-admin-" + liveTaskID("app"),
		ScopeCeiling: []string{"read:records:*"},
		Audiences:    []string{cfg["BATON_AUDIENCE"]},
	})
	if err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	appID, secret := created.GetApp().GetAppId(), created.GetClientSecret()
	if appID == "" || secret == "" {
		t.Fatalf("CreateApp returned app id %q and a secret of %d bytes", appID, len(secret))
	}

	got, err := admin.GetApp(ctx, &batonv1.GetAppRequest{AppId: appID})
	if err != nil {
		t.Fatalf("GetApp: %v", err)
	}
	if got.GetApp().GetName() != created.GetApp().GetName() || !slices.Equal(got.GetApp().GetScopeCeiling(), []string{"read:records:*"}) {
		t.Errorf("GetApp = %v, want the created app", got.GetApp())
	}

	// Pages of one: the pagination helper must follow next_page_token to
	// find both the run's app and this one.
	var ids []string
	for app, err := range admin.AllApps(ctx, 1) {
		if err != nil {
			t.Fatalf("AllApps: %v", err)
		}
		ids = append(ids, app.GetAppId())
	}
	if !slices.Contains(ids, appID) || !slices.Contains(ids, cfg["BATON_CLIENT_ID"]) || len(ids) < 2 {
		t.Errorf("AllApps(page size 1) = %v, want %q and %q among them", ids, appID, cfg["BATON_CLIENT_ID"])
	}

	newName := "renamed-" + appID
	updated, err := admin.UpdateApp(ctx, &batonv1.UpdateAppRequest{AppId: appID, Name: &newName})
	if err != nil {
		t.Fatalf("UpdateApp: %v", err)
	}
	if updated.GetApp().GetName() != newName {
		t.Errorf("UpdateApp name = %q, want %q", updated.GetApp().GetName(), newName)
	}

	rotated, err := admin.RotateAppSecret(ctx, &batonv1.RotateAppSecretRequest{AppId: appID})
	if err != nil {
		t.Fatalf("RotateAppSecret: %v", err)
	}
	if rotated.GetClientSecret() == "" || rotated.GetClientSecret() == secret {
		t.Fatal("RotateAppSecret did not return a new secret")
	}
	_, err = dialAs(t, cfg, appID, secret).Issue(ctx, &batonv1.IssueRequest{TaskId: liveTaskID("old"), Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]}})
	wantReason(t, "Issue with the rotated-out secret", err, codes.Unauthenticated, batonv1.ErrorReason_ERROR_REASON_CREDENTIALS_INVALID)
	app := dialAs(t, cfg, appID, rotated.GetClientSecret())
	issueFor(t, app, cfg, "new-secret")

	disabled, err := admin.DisableApp(ctx, &batonv1.DisableAppRequest{AppId: appID, Reason: "sdk/go live test"})
	if err != nil {
		t.Fatalf("DisableApp: %v", err)
	}
	if !disabled.GetApp().GetDisabled() {
		t.Error("DisableApp returned an app that is not disabled")
	}
	_, err = app.Issue(ctx, &batonv1.IssueRequest{TaskId: liveTaskID("disabled"), Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]}})
	wantReason(t, "Issue by a disabled app", err, codes.PermissionDenied, batonv1.ErrorReason_ERROR_REASON_APP_DISABLED)

	_, err = admin.GetApp(ctx, &batonv1.GetAppRequest{AppId: "app_does_not_exist"})
	wantReason(t, "GetApp of an unknown app", err, codes.NotFound, batonv1.ErrorReason_ERROR_REASON_NOT_FOUND)
}

func TestLiveAdminNeedsTheOperator(t *testing.T) {
	cfg := liveAdminConfig(t)
	// An app's credentials on the admin service: refused, as a typed error.
	_, err := dialApp(t, cfg).Admin().ListApps(t.Context(), &batonv1.ListAppsRequest{})
	var berr *baton.Error
	if !errors.As(err, &berr) || (berr.Code != codes.PermissionDenied && berr.Code != codes.Unauthenticated) || berr.Reason == "" {
		t.Fatalf("ListApps as an app: %v, want a *baton.Error PERMISSION_DENIED or UNAUTHENTICATED with a reason", err)
	}
	wrong, err := baton.DialAdmin(cfg["BATON_ADDR"], "bop_not_the_operator_token")
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	_, err = wrong.VerifyAuditLog(t.Context(), &batonv1.VerifyAuditLogRequest{})
	wantReason(t, "VerifyAuditLog with a wrong operator token", err, codes.Unauthenticated, batonv1.ErrorReason_ERROR_REASON_CREDENTIALS_INVALID)
}

func TestLiveAdminSigningKeysAndAuditLog(t *testing.T) {
	cfg := liveAdminConfig(t)
	admin := dialAdmin(t, cfg)
	ctx := t.Context()

	keys, err := admin.ListSigningKeys(ctx, &batonv1.ListSigningKeysRequest{})
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	active := 0
	for _, k := range keys.GetKeys() {
		if k.GetState() == batonv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE {
			active++
		}
	}
	if active != 1 {
		t.Fatalf("ListSigningKeys: %d active keys, want 1 (%v)", active, keys.GetKeys())
	}
	rotated, err := admin.RotateSigningKey(ctx, &batonv1.RotateSigningKeyRequest{})
	if err != nil {
		t.Fatalf("RotateSigningKey: %v", err)
	}
	if rotated.GetActive().GetKeyId() == "" || rotated.GetNext().GetKeyId() == "" || rotated.GetActive().GetKeyId() == rotated.GetNext().GetKeyId() {
		t.Errorf("RotateSigningKey = active %q, next %q; want two different keys", rotated.GetActive().GetKeyId(), rotated.GetNext().GetKeyId())
	}
	// Tokens keep working across the rotation.
	app := dialApp(t, cfg)
	if v := validate(t, app, cfg, issueFor(t, app, cfg, "after-rotation").GetAccessToken()); !v.GetValid() {
		t.Errorf("Validate after RotateSigningKey = %v, want valid", v.GetStatus())
	}

	audit, err := admin.VerifyAuditLog(ctx, &batonv1.VerifyAuditLogRequest{})
	if err != nil {
		t.Fatalf("VerifyAuditLog: %v", err)
	}
	if !audit.GetIntact() || audit.GetEventCount() == 0 {
		t.Errorf("VerifyAuditLog = intact %v, %d events; want intact, some events", audit.GetIntact(), audit.GetEventCount())
	}
}

// Resource-server credentials (rs_ id and secret, BasicAuth) work for
// Validate and StreamRevocations wherever app credentials do; Validate is
// limited to the audiences the resource server serves.
func TestLiveResourceServerCredentials(t *testing.T) {
	cfg := liveAdminConfig(t)
	ctx := t.Context()
	rsClient := dialAs(t, cfg, cfg["BATON_RS_ID"], cfg["BATON_RS_SECRET"])
	app := dialApp(t, cfg)
	issued := issueFor(t, app, cfg, "rs-validate")

	if v := validate(t, rsClient, cfg, issued.GetAccessToken()); !v.GetValid() {
		t.Fatalf("Validate as the resource server = %v, want valid", v.GetStatus())
	}
	_, err := rsClient.Validate(ctx, &batonv1.ValidateRequest{Token: issued.GetAccessToken(), Audience: "not-served-api"})
	wantReason(t, "Validate as the resource server for an audience it does not serve", err, codes.PermissionDenied, batonv1.ErrorReason_ERROR_REASON_AUDIENCE_NOT_SERVED)

	// A Subscriber with the resource server's credentials sees the app's
	// revocation.
	sub, err := baton.NewSubscriber(baton.SubscriberOptions{
		Target:      cfg["BATON_ADDR"],
		Credentials: baton.BasicAuth(cfg["BATON_RS_ID"], cfg["BATON_RS_SECRET"]),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := sub.Ready(rctx); err != nil {
		t.Fatalf("a resource server's Subscriber did not become ready: %v (state %s)", err, sub.State())
	}
	v := liveVerifier(t, cfg, baton.KeySetFromClient(rsClient), sub)
	if r := v.Verify(ctx, issued.GetAccessToken(), baton.VerifyOptions{}); !r.OK {
		t.Fatalf("Verify before revocation = %v, want ok", r)
	}
	if _, err := app.Revoke(ctx, &batonv1.RevokeRequest{Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN, Id: issued.GetClaims().GetTokenId(), Reason: "sdk/go rs test"}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	eventuallyRevoked(t, v, "a token the app revoked, on the resource server's stream", issued.GetAccessToken(), baton.VerifyOptions{})
}

func TestLiveAdminResourceServers(t *testing.T) {
	cfg := liveAdminConfig(t)
	admin := dialAdmin(t, cfg)
	ctx := t.Context()

	created, err := admin.CreateResourceServer(ctx, &batonv1.CreateResourceServerRequest{Name: "sdk-go-rs-" + liveTaskID("rs"), Audiences: []string{cfg["BATON_AUDIENCE"]}})
	if err != nil {
		t.Fatalf("CreateResourceServer: %v", err)
	}
	id := created.GetResourceServer().GetResourceServerId()
	var ids []string
	for rs, err := range admin.AllResourceServers(ctx, 1) {
		if err != nil {
			t.Fatalf("AllResourceServers: %v", err)
		}
		ids = append(ids, rs.GetResourceServerId())
	}
	if !slices.Contains(ids, id) || !slices.Contains(ids, cfg["BATON_RS_ID"]) {
		t.Errorf("AllResourceServers(page size 1) = %v, want %q and %q among them", ids, id, cfg["BATON_RS_ID"])
	}

	rs := dialAs(t, cfg, id, created.GetClientSecret())
	token := issueFor(t, dialApp(t, cfg), cfg, "rs-disable").GetAccessToken()
	if v := validate(t, rs, cfg, token); !v.GetValid() {
		t.Fatalf("Validate as the new resource server = %v, want valid", v.GetStatus())
	}
	disabled, err := admin.DisableResourceServer(ctx, &batonv1.DisableResourceServerRequest{ResourceServerId: id, Reason: "sdk/go live test"})
	if err != nil {
		t.Fatalf("DisableResourceServer: %v", err)
	}
	if !disabled.GetResourceServer().GetDisabled() {
		t.Error("DisableResourceServer returned a resource server that is not disabled")
	}
	_, err = rs.Validate(ctx, &batonv1.ValidateRequest{Token: token, Audience: cfg["BATON_AUDIENCE"]})
	wantReason(t, "Validate by a disabled resource server", err, codes.PermissionDenied, batonv1.ErrorReason_ERROR_REASON_RESOURCE_SERVER_DISABLED)
}

func TestLiveRevokeMany(t *testing.T) {
	cfg := liveAdminConfig(t)
	ctx := t.Context()
	app := dialApp(t, cfg)
	a, b, c := issueFor(t, app, cfg, "many-a"), issueFor(t, app, cfg, "many-b"), issueFor(t, app, cfg, "many-c")
	target := func(i *batonv1.IssueResponse) *batonv1.RevokeRequest {
		return &batonv1.RevokeRequest{Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN, Id: i.GetClaims().GetTokenId(), Reason: "sdk/go RevokeMany"}
	}

	// All or nothing: one bad target refuses the call, and the good one
	// before it is not revoked.
	_, err := app.RevokeMany(ctx, &batonv1.RevokeManyRequest{Targets: []*batonv1.RevokeRequest{target(a), {Target: batonv1.RevocationTarget_REVOCATION_TARGET_UNSPECIFIED, Id: "x", Reason: "bad"}}})
	wantReason(t, "RevokeMany with a bad second target", err, codes.InvalidArgument, batonv1.ErrorReason_ERROR_REASON_INVALID_REQUEST)
	var berr *baton.Error
	if errors.As(err, &berr) && berr.Metadata["index"] != "1" {
		t.Errorf("RevokeMany refusal metadata = %v, want index 1", berr.Metadata)
	}
	if v := validate(t, app, cfg, a.GetAccessToken()); !v.GetValid() {
		t.Fatalf("after a refused RevokeMany the first target is %v, want still valid", v.GetStatus())
	}
	_, err = app.RevokeMany(ctx, &batonv1.RevokeManyRequest{})
	wantReason(t, "RevokeMany without targets", err, codes.InvalidArgument, batonv1.ErrorReason_ERROR_REASON_INVALID_REQUEST)

	// With the app's credentials.
	resp, err := app.RevokeMany(ctx, &batonv1.RevokeManyRequest{Targets: []*batonv1.RevokeRequest{target(a), target(b)}})
	if err != nil {
		t.Fatalf("RevokeMany as the app: %v", err)
	}
	if len(resp.GetRevocations()) != 2 || resp.GetRevocations()[0].GetId() != a.GetClaims().GetTokenId() || resp.GetRevocations()[1].GetId() != b.GetClaims().GetTokenId() {
		t.Errorf("RevokeMany revocations = %v, want a then b", resp.GetRevocations())
	}
	wantRevoked(t, app, cfg, "first of RevokeMany", a.GetAccessToken())
	wantRevoked(t, app, cfg, "second of RevokeMany", b.GetAccessToken())

	// With the operator credential, on the admin client's connection.
	operator := batonv1.NewBrokerServiceClient(dialAdmin(t, cfg).Conn())
	if _, err := operator.RevokeMany(ctx, &batonv1.RevokeManyRequest{Targets: []*batonv1.RevokeRequest{target(c)}}); err != nil {
		t.Fatalf("RevokeMany as the operator: %v", err)
	}
	wantRevoked(t, app, cfg, "operator's RevokeMany", c.GetAccessToken())
}

// The broker's RATE_LIMITED error comes with RetryInfo; the SDK exposes the
// delay as Error.RetryAfter.
func TestLiveRateLimitedRetryAfter(t *testing.T) {
	cfg := liveAdminConfig(t)
	admin := dialAdmin(t, cfg)
	one := uint32(1)
	created, err := admin.CreateApp(t.Context(), &batonv1.CreateAppRequest{
		Name:               "sdk-go-ratelimit-" + liveTaskID("rl"),
		ScopeCeiling:       []string{"read:records:*"},
		Audiences:          []string{cfg["BATON_AUDIENCE"]},
		RateLimitPerSecond: &one,
		RateLimitBurst:     &one,
	})
	if err != nil {
		t.Fatalf("CreateApp: %v", err)
	}
	app := dialAs(t, cfg, created.GetApp().GetAppId(), created.GetClientSecret())
	// Burst 1 at 1/s: of a few calls in a row, one is refused (a slow
	// machine may refill the bucket between two calls, hence several).
	var berr *baton.Error
	for i := 0; i < 10 && berr == nil; i++ {
		_, err := app.Issue(t.Context(), &batonv1.IssueRequest{TaskId: liveTaskID("rl"), Scopes: []string{cfg["BATON_SCOPE"]}, Audiences: []string{cfg["BATON_AUDIENCE"]}})
		if err != nil && !errors.As(err, &berr) {
			t.Fatalf("Issue: %v, want nil or a *baton.Error", err)
		}
	}
	if berr == nil {
		t.Fatal("10 Issue calls in a row at 1/s, burst 1: none refused")
	}
	if berr.ErrorReason() != batonv1.ErrorReason_ERROR_REASON_RATE_LIMITED || berr.Code != codes.ResourceExhausted {
		t.Fatalf("refusal = %v, want RESOURCE_EXHAUSTED RATE_LIMITED", berr)
	}
	if berr.RetryAfter <= 0 || berr.RetryAfter > time.Second {
		t.Errorf("RetryAfter = %v, want in (0, 1s] for 1 request per second", berr.RetryAfter)
	}
}
