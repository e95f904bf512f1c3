package baton_test

// Low-S ES256 (issue 7 item 9): proofs are signed with s <= n/2, and the
// high-S twin (r, n - s) of a valid token or proof is refused. n is written
// out here, apart from the SDK's own code, so the test checks the rule
// independently.

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
)

var (
	p256Order, _ = new(big.Int).SetString("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)
	p256Half     = new(big.Int).Rsh(p256Order, 1)
)

// sOf is the s half of a 64-byte r || s signature.
func sOf(sig []byte) *big.Int { return new(big.Int).SetBytes(sig[32:]) }

// lowSSignature is sig with s replaced by n - s when s > n/2.
func lowSSignature(sig []byte) []byte {
	if sOf(sig).Cmp(p256Half) <= 0 {
		return sig
	}
	return twinSignature(sig)
}

// twinSignature is the other valid signature of the same input: (r, n - s).
func twinSignature(sig []byte) []byte {
	out := append([]byte(nil), sig...)
	new(big.Int).Sub(p256Order, sOf(sig)).FillBytes(out[32:])
	return out
}

// twinJWS is a compact JWS with its signature replaced by its twin.
func twinJWS(t *testing.T, compact string) string {
	t.Helper()
	dot := strings.LastIndexByte(compact, '.')
	sig, err := base64.RawURLEncoding.DecodeString(compact[dot+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("not a 64-byte signature: %v", err)
	}
	return compact[:dot+1] + base64.RawURLEncoding.EncodeToString(twinSignature(sig))
}

// isLowSJWS reports whether a compact ES256 JWS's s is at most n/2.
func isLowSJWS(t *testing.T, compact string) bool {
	t.Helper()
	sig, err := base64.RawURLEncoding.DecodeString(compact[strings.LastIndexByte(compact, '.')+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("not a 64-byte signature: %v", err)
	}
	return sOf(sig).Cmp(p256Half) <= 0
}

func TestProofES256IsAlwaysLowS(t *testing.T) {
	// An unnormalised signer gives high-S half the time: 2^-400 to pass by
	// chance.
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 400 {
		proof, err := key.Proof(delegateMethod, fmt.Sprint("token-", i))
		if err != nil {
			t.Fatal(err)
		}
		if !isLowSJWS(t, proof) {
			t.Fatalf("proof %d has s > n/2", i)
		}
	}
}

func TestVerifierRefusesHighSTwins(t *testing.T) {
	keys := newTestKeys(t)
	now := time.Now()
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: now}
	v, _ := newVerifier(t, keys, view, nil)
	agent, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	claims := with(baseClaims(), "cnf", map[string]any{"jkt": agent.Thumbprint()},
		"iat", float64(now.UnixMilli())/1000, "nbf", float64(now.Unix()), "exp", float64(now.Add(time.Minute).Unix()))
	const htm = "/ehr.v1.Records/Get"
	for i := range 20 {
		tok := keys.sign(t, esHeader(), claims)
		proof, err := agent.Proof(htm, tok)
		if err != nil {
			t.Fatal(err)
		}
		// The twin of the token is refused for its signature, even with a
		// proof made for the twin itself.
		twin := twinJWS(t, tok)
		twinProof, err := agent.Proof(htm, twin)
		if err != nil {
			t.Fatal(err)
		}
		if r := v.Verify(t.Context(), twin, baton.VerifyOptions{Proof: twinProof, HTM: htm}); r.Reason != baton.ReasonBadSignature {
			t.Fatalf("token twin %d: %v, want BAD_SIGNATURE", i, r)
		}
		// The twin of the proof is refused, and takes no place in the
		// replay cache: the proof itself still passes after it.
		r := v.Verify(t.Context(), tok, baton.VerifyOptions{Proof: twinJWS(t, proof), HTM: htm})
		if r.Reason != baton.ReasonProofInvalid || !strings.Contains(r.Detail, "bad signature") {
			t.Fatalf("proof twin %d: %v, want PROOF_INVALID bad signature", i, r)
		}
		if r := v.Verify(t.Context(), tok, baton.VerifyOptions{Proof: proof, HTM: htm}); !r.OK {
			t.Fatalf("token %d with its low-S proof: %v, want OK", i, r)
		}
	}
}
