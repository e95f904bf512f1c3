package baton_test

// Issue 7 item 11, SDK side: the verifier's clock-skew leeway on exp and
// nbf is 5 s by default (it was 30 s) and configurable; the proof-of-
// possession iat window stays 30 s.

import (
	"context"
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
)

func leewayVerifier(t *testing.T, keys *testKeys, leeway time.Duration, now time.Time) *baton.Verifier {
	t.Helper()
	v, err := baton.NewVerifier(baton.VerifierOptions{
		Audience: testAudience, Issuer: testIssuer, Leeway: leeway,
		Revocations: &fakeView{set: baton.NewRevocationSet(), freshAt: now},
		Keys:        func(context.Context) ([]byte, error) { return keys.jwks, nil },
		Now:         func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestVerifierLeewayDefaultsToFiveSeconds(t *testing.T) {
	if baton.DefaultLeeway != 5*time.Second {
		t.Errorf("DefaultLeeway = %v, want 5s", baton.DefaultLeeway)
	}
	keys := newTestKeys(t)
	expired := keys.sign(t, esHeader(), with(baseClaims(), "exp", float64(testNow.Add(-10*time.Second).Unix())))
	early := keys.sign(t, esHeader(), with(baseClaims(), "nbf", float64(testNow.Add(10*time.Second).Unix())))

	defaults := leewayVerifier(t, keys, 0, testNow)
	if r := defaults.Verify(t.Context(), expired, baton.VerifyOptions{}); r.Reason != baton.ReasonExpired {
		t.Errorf("expired 10 s ago, default leeway: %v, want EXPIRED", r)
	}
	if r := defaults.Verify(t.Context(), early, baton.VerifyOptions{}); r.Reason != baton.ReasonNotYetValid {
		t.Errorf("nbf in 10 s, default leeway: %v, want NOT_YET_VALID", r)
	}

	lenient := leewayVerifier(t, keys, 30*time.Second, testNow)
	if r := lenient.Verify(t.Context(), expired, baton.VerifyOptions{}); !r.OK {
		t.Errorf("expired 10 s ago, leeway 30 s: %v, want OK", r)
	}
	if r := lenient.Verify(t.Context(), early, baton.VerifyOptions{}); !r.OK {
		t.Errorf("nbf in 10 s, leeway 30 s: %v, want OK", r)
	}

	strict := leewayVerifier(t, keys, -1, testNow) // negative: none
	fresh := keys.sign(t, esHeader(), with(baseClaims(), "exp", float64(testNow.Add(-1*time.Second).Unix())))
	if r := strict.Verify(t.Context(), fresh, baton.VerifyOptions{}); r.Reason != baton.ReasonExpired {
		t.Errorf("expired 1 s ago, no leeway: %v, want EXPIRED", r)
	}
}

// The proof window is not the leeway: with the default 5 s leeway, a proof
// made 20 s ago (by the verifier's clock) is still within the 30 s window,
// and one made 40 s ago is not.
func TestVerifierProofWindowStaysThirtySeconds(t *testing.T) {
	keys := newTestKeys(t)
	agent, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	const htm = "/ehr.v1.Records/Get"
	for _, tc := range []struct {
		ahead time.Duration
		want  baton.Reason
	}{{20 * time.Second, ""}, {40 * time.Second, baton.ReasonProofInvalid}} {
		now := time.Now().Add(tc.ahead) // the verifier's clock; the proof's iat is the real now
		tok := keys.sign(t, esHeader(), with(baseClaims(), "cnf", map[string]any{"jkt": agent.Thumbprint()},
			"iat", float64(now.Unix()), "nbf", float64(now.Unix()), "exp", float64(now.Add(time.Minute).Unix())))
		proof, err := agent.Proof(htm, tok)
		if err != nil {
			t.Fatal(err)
		}
		v := leewayVerifier(t, keys, 0, now)
		r := v.Verify(t.Context(), tok, baton.VerifyOptions{Proof: proof, HTM: htm})
		if (tc.want == "") != r.OK || r.Reason != tc.want {
			t.Errorf("proof %v old, default leeway: %v, want %q", tc.ahead, r, tc.want)
		}
	}
}
