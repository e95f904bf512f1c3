package baton_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
)

// A listener that accepts connections and never answers: a send to it
// hangs until its deadline.
func hangingBroker(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int32
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String(), &accepted
}

// An address where nothing listens.
func deadBroker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestReporterDoesNotWaitOnTheNetwork(t *testing.T) {
	addr, accepted := hangingBroker(t)
	r, err := baton.NewReporter(baton.ReporterOptions{
		Target: addr, ResourceServerID: "rs_x", ResourceServerSecret: "s", Audience: "ehr-api",
		BatchSize: 10, BufferSize: 100, FlushInterval: time.Hour, Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		_ = r.Close(ctx)
	}()
	d := baton.AccessDecision{TokenID: "t", AgentID: "a", Allowed: true}
	for range 10 {
		r.Report(d)
	}
	// The full batch is being sent, to a broker that never answers.
	waitFor(t, "the send to start", func() bool { return accepted.Load() > 0 })
	// Reports keep returning while that send hangs, up to the bound.
	for i := range 100 {
		if got := r.Report(d); got != (i < 90) {
			t.Fatalf("Report #%d = %v", i, got)
		}
	}
	if s := r.Stats(); s.Pending != 100 || s.Dropped != 10 || s.Sent != 0 || s.FailedBatches != 0 {
		t.Fatalf("stats %+v, want 100 pending, 10 dropped, nothing sent or failed yet", s)
	}
}

func TestReporterBrokerUnreachable(t *testing.T) {
	r, err := baton.NewReporter(baton.ReporterOptions{
		Target: deadBroker(t), ResourceServerID: "rs_x", ResourceServerSecret: "s", Audience: "ehr-api",
		BatchSize: 50, BufferSize: 100, FlushInterval: 10 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	d := baton.AccessDecision{TokenID: "t", AgentID: "a", Allowed: true}
	kept := 0
	for range 150 {
		if r.Report(d) {
			kept++
		}
	}
	if kept != 100 {
		t.Fatalf("kept %d of 150, want the buffer's 100", kept)
	}
	waitFor(t, "retries", func() bool { return r.Stats().FailedBatches >= 2 })
	if s := r.Stats(); s.Pending != 100 || s.Dropped != 50 || s.Sent != 0 || s.Rejected != 0 {
		t.Fatalf("stats %+v, want the batches kept for retry and 50 dropped", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.Flush(ctx); err == nil {
		t.Fatal("Flush to a dead broker succeeded")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := r.Close(ctx2); err == nil {
		t.Fatal("Close with reports pending returned nil")
	}
	if r.Report(d) {
		t.Fatal("Report after Close was kept")
	}
	if s := r.Stats(); s.Dropped != 51 {
		t.Fatalf("dropped %d, want 51", s.Dropped)
	}
}

func TestReporterOptions(t *testing.T) {
	for _, o := range []baton.ReporterOptions{
		{ResourceServerID: "rs_x", ResourceServerSecret: "s", Audience: "a"},
		{Target: "127.0.0.1:1", ResourceServerID: "rs_x", ResourceServerSecret: "s"},
		{Target: "127.0.0.1:1", ResourceServerID: "rs_x", ResourceServerSecret: "s", Audience: "a", BatchSize: 501},
	} {
		if _, err := baton.NewReporter(o); err == nil {
			t.Errorf("NewReporter(%+v) succeeded", o)
		}
	}
}
