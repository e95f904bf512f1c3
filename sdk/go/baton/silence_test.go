package baton_test

// Issue 7 item 6, SDK side: a revocation stream that goes silent (no event,
// no Checkpoint) is given up after IdleTimeout, by default twice the
// CheckpointInterval, and the subscriber resumes from its cursor on a NEW
// connection of its own; meanwhile FreshAt stands still, so a verifier goes
// STALE.

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/peer"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// streamOpen is one StreamRevocations call as the server saw it.
type streamOpen struct {
	at     time.Time
	peer   string // the client's address: a new connection has a new port
	cursor string
}

// silentBroker answers the first stream with a snapshot (cursor "c1") and
// every later one with nothing; each stream is then held open, silent,
// until the client leaves.
func silentBroker(t *testing.T) (string, chan streamOpen) {
	t.Helper()
	opens := make(chan streamOpen, 10)
	first := true
	handler := func(req *batonv1.StreamRevocationsRequest, s streamServer) error {
		p, _ := peer.FromContext(s.Context())
		opens <- streamOpen{at: time.Now(), peer: p.Addr.String(), cursor: req.GetCursor()}
		if first {
			first = false
			if err := s.Send(snapshotComplete("c1")); err != nil {
				return err
			}
		}
		<-s.Context().Done()
		return nil
	}
	addr, _ := startStreamBroker(t, handler)
	return addr, opens
}

func nextOpen(t *testing.T, opens chan streamOpen, within time.Duration) streamOpen {
	t.Helper()
	select {
	case o := <-opens:
		return o
	case <-time.After(within):
		t.Fatalf("no new stream within %v", within)
		return streamOpen{}
	}
}

// checkSilenceReconnect waits for the subscriber to give a silent stream up
// and checks the reconnection: not before idle, well within idle plus
// slack, from the cursor, on a new connection.
func checkSilenceReconnect(t *testing.T, s *baton.Subscriber, opens chan streamOpen, idle time.Duration, whenReady func()) {
	t.Helper()
	first := nextOpen(t, opens, 5*time.Second)
	if first.cursor != "" {
		t.Fatalf("first stream cursor = %q, want a snapshot", first.cursor)
	}
	if err := s.Ready(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	fresh := s.FreshAt()
	readyAt := time.Now()
	whenReady()

	// Generous slack for a loaded 2-core machine; without the idle timeout
	// no second stream would come at all.
	second := nextOpen(t, opens, time.Until(readyAt.Add(idle+5*time.Second)))
	// The idle timer restarts on the snapshot's receipt, which comes after
	// the first stream opened.
	waited := second.at.Sub(first.at)
	t.Logf("new stream %v after the first (IdleTimeout %v)", waited.Round(time.Millisecond), idle)
	if waited < idle {
		t.Errorf("reconnected after %v, before IdleTimeout %v", waited, idle)
	}
	if second.cursor != "c1" {
		t.Errorf("second stream cursor = %q, want c1 (resumed)", second.cursor)
	}
	if second.peer == first.peer {
		t.Errorf("second stream on the same connection (%s), want a new one", second.peer)
	}
	if got := s.FreshAt(); !got.Equal(fresh) {
		t.Errorf("FreshAt moved from %v to %v with no message", fresh, got)
	}
}

func TestSubscriberReconnectsOnANewConnectionWhenSilent(t *testing.T) {
	addr, opens := silentBroker(t)
	// IdleTimeout unset: twice the CheckpointInterval.
	s := newSub(t, baton.SubscriberOptions{Target: addr, CheckpointInterval: time.Second})

	// A verifier on it: accepts while the view is fresh, STALE once the
	// silence outlasts MaxStaleness.
	keys := newTestKeys(t)
	v, err := baton.NewVerifier(baton.VerifierOptions{
		Audience: testAudience, Issuer: testIssuer, Revocations: s, MaxStaleness: time.Second,
		Keys: func(context.Context) ([]byte, error) { return keys.jwks, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token := keys.sign(t, esHeader(), with(baseClaims(), "iat", float64(now.Unix()),
		"nbf", float64(now.Unix()), "exp", float64(now.Add(time.Hour).Unix())))
	_ = s.Start()
	checkSilenceReconnect(t, s, opens, 2*time.Second, func() {
		if r := v.Verify(t.Context(), token, baton.VerifyOptions{}); !r.OK {
			t.Errorf("right after the snapshot: %v, want OK", r)
		}
	})
	if r := v.Verify(t.Context(), token, baton.VerifyOptions{}); r.Reason != baton.ReasonStale {
		t.Errorf("after the silence: %v, want STALE", r)
	}
}

// With every default: CheckpointInterval 5 s, so IdleTimeout 10 s.
func TestSubscriberSilenceDefaults(t *testing.T) {
	t.Parallel()
	addr, opens := silentBroker(t)
	s := newSub(t, baton.SubscriberOptions{Target: addr})
	_ = s.Start()
	checkSilenceReconnect(t, s, opens, 10*time.Second, func() {})
}
