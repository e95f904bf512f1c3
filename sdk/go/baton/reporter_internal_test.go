package baton

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// Outcomes use the canonical code names, as the TypeScript and Python SDKs
// report them, not Go's "PermissionDenied".
func TestCodeNames(t *testing.T) {
	for c, want := range map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.PermissionDenied: "PERMISSION_DENIED",
		codes.Unauthenticated: "UNAUTHENTICATED", codes.NotFound: "NOT_FOUND", codes.Code(99): "99",
	} {
		if got := codeName(c); got != want {
			t.Errorf("codeName(%v) = %q, want %q", c, got, want)
		}
	}
}

// Text fields are cut and cleaned so that one long or odd path cannot make
// the broker refuse a report.
func TestWireCleansText(t *testing.T) {
	r := &Reporter{audience: "ehr-api"}
	w := r.wire(AccessDecision{TokenID: "t", AgentID: "a", Resource: strings.Repeat("é", 600) + "\n", Reason: "a\x00b", Outcome: strings.Repeat("x", 200)})
	if n := len([]rune(w.GetResource())); n != 512 {
		t.Errorf("resource cut to %d characters, want 512", n)
	}
	if w.GetReason() != "a?b" || len(w.GetOutcome()) != 128 || w.GetAudience() != "ehr-api" {
		t.Errorf("wire = %v", w)
	}
}
