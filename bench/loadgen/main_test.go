package main

import (
	"context"
	"testing"
	"time"
)

func sleeper(d time.Duration) op {
	return func(ctx context.Context, w, n int) error {
		time.Sleep(d)
		return nil
	}
}

// At a rate the calls keep up with, every scheduled call is sent and none dropped.
func TestOpenLoopSendsEveryScheduledCall(t *testing.T) {
	res := measureOpen(sleeper(0), 200, 100, 1, 0, time.Second)
	if res.Sent != 200 || res.Dropped != 0 || res.Calls != 200 {
		t.Fatalf("sent %d, dropped %d, calls %d; want 200, 0, 200", res.Sent, res.Dropped, res.Calls)
	}
}

// Calls of 20 ms, one at a time, scheduled 200 a second: at most ~50 can be
// sent. The rest wait (and count as late, their wait in their latency) or,
// once the window ends, are dropped. A closed loop would report ~20 ms.
func TestOpenLoopMeasuresFromTheSchedule(t *testing.T) {
	res := measureOpen(sleeper(20*time.Millisecond), 200, 1, 1, 0, time.Second)
	if res.Calls > 60 {
		t.Fatalf("%d calls completed; one at a time at 20 ms each allows about 50", res.Calls)
	}
	if res.Dropped < 100 {
		t.Fatalf("dropped %d; want most of the 200 scheduled", res.Dropped)
	}
	if res.Late < res.Sent/2 {
		t.Fatalf("late %d of %d sent; want most", res.Late, res.Sent)
	}
	if res.P99ms < 400 {
		t.Fatalf("p99 %.1f ms; calls queued behind each other for most of the second should show it", res.P99ms)
	}
	if res.Sent+res.Dropped != 200 {
		t.Fatalf("sent %d + dropped %d != 200 scheduled", res.Sent, res.Dropped)
	}
}

// The warm-up's calls are sent but not counted.
func TestOpenLoopWarmupNotCounted(t *testing.T) {
	res := measureOpen(sleeper(0), 100, 100, 1, 500*time.Millisecond, time.Second)
	if res.Sent != 100 || res.Calls != 100 {
		t.Fatalf("sent %d, calls %d; want 100 each (the window only)", res.Sent, res.Calls)
	}
}
