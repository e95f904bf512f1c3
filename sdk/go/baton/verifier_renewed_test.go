package baton_test

// The claims of a renewed token, offline (issue 8): `rnw` is
// Claims.RenewedFromTokenID; `root_iat` without a lineage (a renewed root)
// is the chain's start, so a task revocation made after the line began but
// before the renewal still matches; a mistyped one is MALFORMED.

import (
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

func TestVerifierRenewedClaims(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: testNow}
	v, _ := newVerifier(t, keys, view, func() time.Time { return testNow })
	lineStart := testNow.Add(-time.Hour).Add(250 * time.Millisecond)
	renewed := keys.sign(t, esHeader(), with(baseClaims(), "rnw", "tok_old", "root_iat", float64(lineStart.UnixMilli())/1000))
	r := v.Verify(t.Context(), renewed, baton.VerifyOptions{})
	if !r.OK || r.Claims.RenewedFromTokenID != "tok_old" || !r.Claims.RootIssuedAt.Equal(lineStart) {
		t.Fatalf("renewed token: %+v, want OK with RenewedFromTokenID tok_old and RootIssuedAt %v", r, lineStart)
	}
	if p := v.Verify(t.Context(), keys.sign(t, esHeader(), baseClaims()), baton.VerifyOptions{}); !p.OK || p.Claims.RenewedFromTokenID != "" {
		t.Fatalf("issued token: %+v, want OK without RenewedFromTokenID", p)
	}

	// A task revocation after the line began, before this token's iat.
	view.set.Add(&batonv1.Revocation{Target: batonv1.RevocationTarget_REVOCATION_TARGET_TASK, Id: "task-1", AppId: "app_1",
		RevokeTime: ts(testNow.Add(-time.Minute)), ExpireTime: ts(testNow.Add(time.Hour)), Cursor: "1"})
	if r := v.Verify(t.Context(), renewed, baton.VerifyOptions{}); r.Reason != baton.ReasonRevoked {
		t.Fatalf("renewed token after a task revocation: %v, want REVOKED", r.Reason)
	}

	for name, kv := range map[string][]any{
		"empty rnw":         {"rnw", ""},
		"numeric rnw":       {"rnw", 7},
		"string root_iat":   {"root_iat", "x"},
		"negative root_iat": {"root_iat", -1},
	} {
		if r := v.Verify(t.Context(), keys.sign(t, esHeader(), with(baseClaims(), kv...)), baton.VerifyOptions{}); r.Reason != baton.ReasonMalformed {
			t.Errorf("%s: %v, want MALFORMED", name, r.Reason)
		}
	}
}
