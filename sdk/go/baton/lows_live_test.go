package baton_test

import (
	"context"
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// Live: the broker refuses high-S proofs, and an SDK that signed with the
// library's raw s failed about one call in two with PROOF_INVALID. Forty
// releases in a row with a fresh ES256 proof each pass only if every proof
// is low-S (2^-40 otherwise).
func TestLiveReleaseWithProofManyTimes(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	for i := range 40 {
		key, err := baton.GenerateAgentKey()
		if err != nil {
			t.Fatal(err)
		}
		issued := issueBound(t, app, cfg, "lows", key)
		token := issued.GetAccessToken()
		// A Delegate and then the release, each with its own proof; every
		// other round releases through Revoke on the agent's own client.
		if _, err := app.DelegateAs(ctx, token, key, &batonv1.DelegateRequest{Scopes: []string{cfg["BATON_SCOPE"]}}); err != nil {
			t.Fatalf("round %d: DelegateAs with a proof: %v", i, err)
		}
		if i%2 == 0 {
			if _, err := app.Release(ctx, token, key, "sdk/go low-S"); err != nil {
				t.Fatalf("round %d: Release with a proof: %v", i, err)
			}
		} else {
			agent, err := baton.Dial(cfg["BATON_ADDR"], baton.WithAgentCredentials(token, key))
			if err != nil {
				t.Fatal(err)
			}
			_, err = agent.Revoke(ctx, &batonv1.RevokeRequest{Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN, Id: issued.GetClaims().GetTokenId()})
			_ = agent.Close()
			if err != nil {
				t.Fatalf("round %d: Revoke with a proof: %v", i, err)
			}
		}
		wantRevoked(t, app, cfg, "released token", token)
	}
}

// Live: a broker-issued token is low-S, and its high-S twin, which verifies
// as an ECDSA signature just as well, is refused by the SDK's verifier as a
// bad signature (and by the broker).
func TestLiveVerifierRefusesTwinOfIssuedToken(t *testing.T) {
	cfg := liveConfig(t)
	app := dialApp(t, cfg)
	v := liveVerifier(t, cfg, baton.KeySetFromClient(app), readySubscriber(t, cfg))
	for i := range 10 {
		issued, err := app.Issue(t.Context(), &batonv1.IssueRequest{
			TaskId:    liveTaskID("twin"),
			Scopes:    []string{cfg["BATON_SCOPE"]},
			Audiences: []string{cfg["BATON_AUDIENCE"]},
		})
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		token := issued.GetAccessToken()
		if !isLowSJWS(t, token) {
			t.Fatalf("token %d from the broker is high-S", i)
		}
		if r := v.Verify(t.Context(), token, baton.VerifyOptions{}); !r.OK {
			t.Fatalf("token %d: %v, want OK", i, r)
		}
		twin := twinJWS(t, token)
		if r := v.Verify(t.Context(), twin, baton.VerifyOptions{}); r.Reason != baton.ReasonBadSignature {
			t.Fatalf("twin of token %d: %v, want BAD_SIGNATURE", i, r)
		}
		if b := validate(t, app, cfg, twin); b.GetValid() {
			t.Fatalf("the broker accepts the twin of token %d", i)
		}
	}
}
