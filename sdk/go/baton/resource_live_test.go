package baton_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// Live tests of the resource-server side: a Subscriber on the broker's
// revocation stream and a Verifier on its key set. Like the other live
// tests they fail, not skip, without a broker.

// liveIssuer is the broker's issuer: BATON_ISSUER, or the broker's default.
func liveIssuer() string {
	if iss := os.Getenv("BATON_ISSUER"); iss != "" {
		return iss
	}
	return "https://baton.local"
}

// liveSubscriber starts a subscriber on target as the test app.
func liveSubscriber(t *testing.T, cfg map[string]string, target string) *baton.Subscriber {
	t.Helper()
	s, err := baton.NewSubscriber(baton.SubscriberOptions{
		Target:      target,
		Credentials: baton.BasicAuth(cfg["BATON_CLIENT_ID"], cfg["BATON_CLIENT_SECRET"]),
		BackoffBase: 20 * time.Millisecond,
		BackoffMax:  200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("NewSubscriber: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func liveVerifier(t *testing.T, cfg map[string]string, keys baton.KeySetFetcher, view baton.RevocationView) *baton.Verifier {
	t.Helper()
	v, err := baton.NewVerifier(baton.VerifierOptions{
		Audience:    cfg["BATON_AUDIENCE"],
		Issuer:      liveIssuer(),
		Keys:        keys,
		Revocations: view,
	})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := v.LoadKeys(ctx); err != nil {
		t.Fatalf("LoadKeys: %v", err)
	}
	return v
}

// readySubscriber is a subscriber on the live broker, ready.
func readySubscriber(t *testing.T, cfg map[string]string) *baton.Subscriber {
	t.Helper()
	s := liveSubscriber(t, cfg, cfg["BATON_ADDR"])
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("the subscriber did not become ready: %v (state %s)", err, s.State())
	}
	if s.FreshAt().IsZero() || s.Cursor() == "" {
		t.Fatalf("ready, but FreshAt %v, cursor %q", s.FreshAt(), s.Cursor())
	}
	return s
}

// eventuallyRevoked polls the verifier for up to 5 s until it refuses the
// token as REVOKED.
func eventuallyRevoked(t *testing.T, v *baton.Verifier, what, token string, opts baton.VerifyOptions) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var r baton.Result
	for {
		r = v.Verify(t.Context(), token, opts)
		if !r.OK && r.Reason == baton.ReasonRevoked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 5 s the verifier still says %v, want REVOKED", what, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLiveVerifierAcceptsThenRefusesRevoked(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)
	sub := readySubscriber(t, cfg)
	v := liveVerifier(t, cfg, baton.KeySetFromClient(app), sub)

	issued, err := app.Issue(t.Context(), &batonv1.IssueRequest{
		TaskId:    liveTaskID("verifier"),
		Scopes:    []string{cfg["BATON_SCOPE"]},
		Audiences: []string{cfg["BATON_AUDIENCE"]},
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	token := issued.GetAccessToken()
	r := v.Verify(t.Context(), token, baton.VerifyOptions{RequiredScopes: []string{cfg["BATON_SCOPE"]}})
	if !r.OK {
		t.Fatalf("Verify of a fresh token = %v, want ok", r)
	}
	if r.Claims.TokenID != issued.GetClaims().GetTokenId() || r.Claims.AppID != cfg["BATON_CLIENT_ID"] || r.Claims.KeyThumbprint != "" {
		t.Errorf("claims = %+v, want token %q of app %q", r.Claims, issued.GetClaims().GetTokenId(), cfg["BATON_CLIENT_ID"])
	}
	if r := v.Verify(t.Context(), token, baton.VerifyOptions{RequiredScopes: []string{"write:records:P-1042"}}); r.Reason != baton.ReasonInsufficientScope {
		t.Errorf("Verify for an uncovered scope = %v, want INSUFFICIENT_SCOPE", r)
	}

	if _, err := app.Revoke(t.Context(), &batonv1.RevokeRequest{
		Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN,
		Id:     issued.GetClaims().GetTokenId(),
		Reason: "sdk/go live verifier test",
	}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	eventuallyRevoked(t, v, "the revoked token", token, baton.VerifyOptions{})
}

func TestLiveVerifierRefusesChildOfReleasedParent(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)
	sub := readySubscriber(t, cfg)
	v := liveVerifier(t, cfg, baton.KeySetFromClient(app), sub)

	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	parent := issueBound(t, app, cfg, "verifier-release", key)
	subKey, err := baton.GenerateAgentKeyWithAlgorithm(baton.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	delegated, err := app.DelegateAs(t.Context(), parent.GetAccessToken(), key, &batonv1.DelegateRequest{
		Scopes:            []string{cfg["BATON_SCOPE"]},
		AgentPublicKeyJwk: subKey.PublicJWK(),
	})
	if err != nil {
		t.Fatalf("DelegateAs: %v", err)
	}
	child := delegated.GetAccessToken()

	// The child is key-bound: it needs a proof for this call, once.
	const htm = "/ehr.v1.Records/Get"
	if r := v.Verify(t.Context(), child, baton.VerifyOptions{HTM: htm}); r.Reason != baton.ReasonProofRequired {
		t.Errorf("child without a proof = %v, want PROOF_REQUIRED", r)
	}
	proof, err := subKey.Proof(htm, child)
	if err != nil {
		t.Fatal(err)
	}
	r := v.Verify(t.Context(), child, baton.VerifyOptions{RequiredScopes: []string{cfg["BATON_SCOPE"]}, Proof: proof, HTM: htm})
	if !r.OK {
		t.Fatalf("child with its proof = %v, want ok", r)
	}
	if r.Claims.Depth != 1 || r.Claims.Lineage[0].TokenID != parent.GetClaims().GetTokenId() || r.Claims.KeyThumbprint != subKey.Thumbprint() {
		t.Errorf("child claims = %+v, want depth 1 under the parent, bound to the sub-agent's key", r.Claims)
	}
	if r := v.Verify(t.Context(), child, baton.VerifyOptions{Proof: proof, HTM: htm}); r.Reason != baton.ReasonProofReplayed {
		t.Errorf("the same proof again = %v, want PROOF_REPLAYED", r)
	}

	if _, err := app.Release(t.Context(), parent.GetAccessToken(), key, "sdk/go live verifier release"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	fresh, err := subKey.Proof(htm, child)
	if err != nil {
		t.Fatal(err)
	}
	eventuallyRevoked(t, v, "the child of the released parent", child, baton.VerifyOptions{Proof: fresh, HTM: htm})
	eventuallyRevoked(t, v, "the released parent", parent.GetAccessToken(), baton.VerifyOptions{})
}

// httpJWKS fetches the key set from the broker's HTTP JWKS URL.
func httpJWKS(url string) baton.KeySetFetcher {
	return func(ctx context.Context) ([]byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, errors.New(resp.Status)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	}
}

func TestLiveVerifierStaleWithoutTheStream(t *testing.T) {
	cfg := liveConfig(t)
	jwksURL := os.Getenv("BATON_JWKS_URL")
	if jwksURL == "" {
		t.Fatal("live broker test needs BATON_JWKS_URL (see test/sdk/run-live.ts)")
	}
	app := dialApp(t, cfg)
	// Nothing listens on port 1: the subscriber never gets a snapshot.
	sub := liveSubscriber(t, cfg, "127.0.0.1:1")
	v := liveVerifier(t, cfg, httpJWKS(jwksURL), sub)

	issued, err := app.Issue(t.Context(), &batonv1.IssueRequest{
		TaskId:    liveTaskID("stale"),
		Scopes:    []string{cfg["BATON_SCOPE"]},
		Audiences: []string{cfg["BATON_AUDIENCE"]},
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := sub.Ready(ctx); err == nil {
		t.Fatal("a subscriber on a closed port became ready")
	}
	if !sub.FreshAt().IsZero() {
		t.Fatalf("a subscriber on a closed port is fresh at %v", sub.FreshAt())
	}
	r := v.Verify(t.Context(), issued.GetAccessToken(), baton.VerifyOptions{RequiredScopes: []string{cfg["BATON_SCOPE"]}})
	if r.OK || r.Reason != baton.ReasonStale {
		t.Fatalf("Verify without a revocation view = %v, want STALE", r)
	}
	if r.Claims == nil || r.Claims.TokenID != issued.GetClaims().GetTokenId() {
		t.Errorf("STALE result claims = %+v, want the token's (the signature verified)", r.Claims)
	}
}
