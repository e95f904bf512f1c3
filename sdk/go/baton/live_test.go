package baton_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// liveEnv names the environment a live broker test needs, set by the script
// that starts the broker.
var liveEnv = []string{"BATON_ADDR", "BATON_CLIENT_ID", "BATON_CLIENT_SECRET", "BATON_AUDIENCE", "BATON_SCOPE"}

// liveConfig reads liveEnv, failing the test when any is missing: a live test
// that silently skips proves nothing.
func liveConfig(t *testing.T) map[string]string {
	t.Helper()
	cfg := map[string]string{}
	var missing []string
	for _, name := range liveEnv {
		v := os.Getenv(name)
		if v == "" {
			missing = append(missing, name)
		}
		cfg[name] = v
	}
	if len(missing) > 0 {
		t.Fatalf("live broker test needs environment variables %v (missing: %v); start a broker and set them (see scripts/sdk-test.sh)", liveEnv, missing)
	}
	return cfg
}

func dialApp(t *testing.T, cfg map[string]string) *baton.Client {
	t.Helper()
	client, err := baton.Dial(cfg["BATON_ADDR"], baton.WithBasicAuth(cfg["BATON_CLIENT_ID"], cfg["BATON_CLIENT_SECRET"]))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func TestLiveIssueValidateRevoke(t *testing.T) {
	cfg := liveConfig(t)
	client := dialApp(t, cfg)
	ctx := t.Context()

	issued, err := client.Issue(ctx, &batonv1.IssueRequest{
		TaskId:    "sdk-go-live-" + time.Now().UTC().Format("20060102T150405.000000000"),
		Scopes:    []string{cfg["BATON_SCOPE"]},
		Audiences: []string{cfg["BATON_AUDIENCE"]},
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if issued.GetAccessToken() == "" {
		t.Fatal("Issue returned an empty access token")
	}

	validated, err := client.Validate(ctx, &batonv1.ValidateRequest{Token: issued.GetAccessToken(), Audience: cfg["BATON_AUDIENCE"]})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if !validated.GetValid() || validated.GetStatus() != batonv1.TokenStatus_TOKEN_STATUS_VALID {
		t.Fatalf("Validate of a fresh token = valid %v, status %v; want true, TOKEN_STATUS_VALID", validated.GetValid(), validated.GetStatus())
	}
	claims := validated.GetClaims()
	if got, want := claims.GetScopes(), []string{cfg["BATON_SCOPE"]}; !slices.Equal(got, want) {
		t.Errorf("claims.scopes = %q, want %q", got, want)
	}
	if got, want := claims.GetAppId(), cfg["BATON_CLIENT_ID"]; got != want {
		t.Errorf("claims.app_id = %q, want %q", got, want)
	}
	if claims.GetTokenId() == "" {
		t.Fatal("claims.token_id is empty")
	}

	revoked, err := client.Revoke(ctx, &batonv1.RevokeRequest{
		Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN,
		Id:     claims.GetTokenId(),
		Reason: "sdk/go live test",
	})
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if got := revoked.GetRevocation().GetTarget(); got != batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN {
		t.Errorf("revocation.target = %v, want REVOCATION_TARGET_TOKEN", got)
	}

	after, err := client.Validate(ctx, &batonv1.ValidateRequest{Token: issued.GetAccessToken(), Audience: cfg["BATON_AUDIENCE"]})
	if err != nil {
		t.Fatalf("Validate after Revoke: %v", err)
	}
	if after.GetValid() || after.GetStatus() != batonv1.TokenStatus_TOKEN_STATUS_REVOKED {
		t.Fatalf("Validate of a revoked token = valid %v, status %v; want false, TOKEN_STATUS_REVOKED", after.GetValid(), after.GetStatus())
	}
}

func TestLiveIssueOutsideCeilingIsPermissionDenied(t *testing.T) {
	cfg := liveConfig(t)
	client := dialApp(t, cfg)

	_, err := client.Issue(t.Context(), &batonv1.IssueRequest{
		TaskId:    "sdk-go-live-ceiling",
		Scopes:    []string{"admin:everything:*"},
		Audiences: []string{cfg["BATON_AUDIENCE"]},
	})
	var berr *baton.Error
	if !errors.As(err, &berr) {
		t.Fatalf("Issue outside the ceiling: err = %v (%T), want a *baton.Error", err, err)
	}
	if berr.Code != codes.PermissionDenied {
		t.Errorf("Code = %v, want PermissionDenied (%v)", berr.Code, berr)
	}
	if want := baton.ReasonOf(batonv1.ErrorReason_ERROR_REASON_SCOPE_NOT_COVERED); berr.Reason != want {
		t.Errorf("Reason = %q, want %q (%v)", berr.Reason, want, berr)
	}
	if berr.ErrorReason() != batonv1.ErrorReason_ERROR_REASON_SCOPE_NOT_COVERED {
		t.Errorf("ErrorReason() = %v, want ERROR_REASON_SCOPE_NOT_COVERED", berr.ErrorReason())
	}
}

// liveTaskID is a task id no other run uses.
func liveTaskID(name string) string {
	return "sdk-go-live-" + name + "-" + time.Now().UTC().Format("20060102T150405.000000000")
}

// issueBound issues a token bound to key.
func issueBound(t *testing.T, client *baton.Client, cfg map[string]string, name string, key *baton.AgentKey) *batonv1.IssueResponse {
	t.Helper()
	issued, err := client.Issue(t.Context(), &batonv1.IssueRequest{
		TaskId:            liveTaskID(name),
		Scopes:            []string{cfg["BATON_SCOPE"]},
		Audiences:         []string{cfg["BATON_AUDIENCE"]},
		AgentPublicKeyJwk: key.PublicJWK(),
	})
	if err != nil {
		t.Fatalf("Issue with agent_public_key_jwk: %v", err)
	}
	if got, want := issued.GetClaims().GetKeyThumbprint(), key.Thumbprint(); got != want {
		t.Fatalf("claims.key_thumbprint = %q, want the key's RFC 7638 thumbprint %q", got, want)
	}
	return issued
}

// validate returns the broker's verdict on token for BATON_AUDIENCE.
func validate(t *testing.T, client *baton.Client, cfg map[string]string, token string) *batonv1.ValidateResponse {
	t.Helper()
	v, err := client.Validate(t.Context(), &batonv1.ValidateRequest{Token: token, Audience: cfg["BATON_AUDIENCE"]})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return v
}

// wantReason checks that err is a *baton.Error with code and reason.
func wantReason(t *testing.T, what string, err error, code codes.Code, reason batonv1.ErrorReason) {
	t.Helper()
	var berr *baton.Error
	if !errors.As(err, &berr) {
		t.Fatalf("%s: err = %v (%T), want a *baton.Error", what, err, err)
	}
	if berr.Code != code || berr.ErrorReason() != reason {
		t.Fatalf("%s: %v; want code %v, reason %s", what, berr, code, baton.ReasonOf(reason))
	}
}

// checkChild checks that a delegated token validates and names parent as its
// last ancestor.
func checkChild(t *testing.T, client *baton.Client, cfg map[string]string, child string, parent *batonv1.TokenClaims) {
	t.Helper()
	v := validate(t, client, cfg, child)
	if !v.GetValid() || v.GetStatus() != batonv1.TokenStatus_TOKEN_STATUS_VALID {
		t.Fatalf("Validate of the child = valid %v, status %v; want true, TOKEN_STATUS_VALID", v.GetValid(), v.GetStatus())
	}
	lineage := v.GetClaims().GetLineage()
	if len(lineage) != 1 || v.GetClaims().GetDepth() != 1 {
		t.Fatalf("child lineage = %v, depth %d; want one ancestor, depth 1", lineage, v.GetClaims().GetDepth())
	}
	if lineage[0].GetTokenId() != parent.GetTokenId() || lineage[0].GetAgentId() != parent.GetAgentId() {
		t.Errorf("child lineage[0] = (%q, %q), want the parent (%q, %q)",
			lineage[0].GetTokenId(), lineage[0].GetAgentId(), parent.GetTokenId(), parent.GetAgentId())
	}
}

func wantRevoked(t *testing.T, client *baton.Client, cfg map[string]string, what, token string) {
	t.Helper()
	v := validate(t, client, cfg, token)
	if v.GetValid() || v.GetStatus() != batonv1.TokenStatus_TOKEN_STATUS_REVOKED {
		t.Errorf("Validate of the %s after release = valid %v, status %v; want false, TOKEN_STATUS_REVOKED", what, v.GetValid(), v.GetStatus())
	}
}

func TestLiveKeyBoundDelegateAndRelease(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)
	ctx := t.Context()

	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	parent := issueBound(t, app, cfg, "pop", key)
	token := parent.GetAccessToken()

	// Delegate with the proof: the child is bound to the sub-agent's key.
	subKey, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	delegated, err := app.DelegateAs(ctx, token, key, &batonv1.DelegateRequest{
		Scopes:            []string{cfg["BATON_SCOPE"]},
		AgentPublicKeyJwk: subKey.PublicJWK(),
	})
	if err != nil {
		t.Fatalf("DelegateAs with the key: %v", err)
	}
	if got := delegated.GetClaims().GetKeyThumbprint(); got != subKey.Thumbprint() {
		t.Errorf("child key_thumbprint = %q, want the sub-agent key's %q", got, subKey.Thumbprint())
	}
	if got, want := delegated.GetClaims().GetScopes(), []string{cfg["BATON_SCOPE"]}; !slices.Equal(got, want) {
		t.Errorf("child scopes = %q, want %q", got, want)
	}
	checkChild(t, app, cfg, delegated.GetAccessToken(), parent.GetClaims())

	// Without the key: no proof, refused.
	_, err = app.DelegateAs(ctx, token, nil, &batonv1.DelegateRequest{Scopes: []string{cfg["BATON_SCOPE"]}})
	wantReason(t, "Delegate of a key-bound token without a proof", err, codes.Unauthenticated, batonv1.ErrorReason_ERROR_REASON_PROOF_REQUIRED)

	// One proof, sent twice: accepted once.
	proof, err := key.Proof(batonv1.BrokerService_Delegate_FullMethodName, token)
	if err != nil {
		t.Fatal(err)
	}
	withProof := metadata.AppendToOutgoingContext(ctx, baton.ProofMetadataKey, proof)
	bearer := grpc.PerRPCCredentials(baton.BearerToken(token))
	req := &batonv1.DelegateRequest{Scopes: []string{cfg["BATON_SCOPE"]}}
	second, err := app.Delegate(withProof, req, bearer)
	if err != nil {
		t.Fatalf("Delegate with a hand-made proof: %v", err)
	}
	_, err = app.Delegate(withProof, req, bearer)
	wantReason(t, "Delegate with the same proof again", err, codes.Unauthenticated, batonv1.ErrorReason_ERROR_REASON_PROOF_REPLAYED)

	// Release with the key: the parent and everything below it die.
	rev, err := app.Release(ctx, token, key, "sdk/go live test release")
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if rev.GetTarget() != batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN || rev.GetId() != parent.GetClaims().GetTokenId() {
		t.Errorf("revocation = %v %q, want TOKEN %q", rev.GetTarget(), rev.GetId(), parent.GetClaims().GetTokenId())
	}
	wantRevoked(t, app, cfg, "parent", token)
	wantRevoked(t, app, cfg, "child", delegated.GetAccessToken())
	wantRevoked(t, app, cfg, "second child", second.GetAccessToken())
}

// An agent's own Client (WithAgentCredentials) with an Ed25519 key.
func TestLiveAgentClientEd25519(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)

	key, err := baton.GenerateAgentKeyWithAlgorithm(baton.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	parent := issueBound(t, app, cfg, "pop-eddsa", key)

	agent, err := baton.Dial(cfg["BATON_ADDR"], baton.WithAgentCredentials(parent.GetAccessToken(), key))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = agent.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	child, err := agent.Delegate(ctx, &batonv1.DelegateRequest{Scopes: []string{cfg["BATON_SCOPE"]}})
	if err != nil {
		t.Fatalf("Delegate from the agent's client: %v", err)
	}
	checkChild(t, app, cfg, child.GetAccessToken(), parent.GetClaims())

	// The same client, one proof per call: a second Delegate is no replay.
	if _, err := agent.Delegate(ctx, &batonv1.DelegateRequest{Scopes: []string{cfg["BATON_SCOPE"]}}); err != nil {
		t.Fatalf("second Delegate from the agent's client: %v", err)
	}

	if _, err := agent.Revoke(ctx, &batonv1.RevokeRequest{Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN}); err != nil {
		t.Fatalf("release from the agent's client: %v", err)
	}
	wantRevoked(t, app, cfg, "parent", parent.GetAccessToken())
	wantRevoked(t, app, cfg, "child", child.GetAccessToken())
}
