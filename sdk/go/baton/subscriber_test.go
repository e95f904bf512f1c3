package baton_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// streamBroker serves StreamRevocations from a script: each stream calls the
// next handler (the last one repeats).
type streamBroker struct {
	batonv1.UnimplementedBrokerServiceServer
	mu       sync.Mutex
	handlers []func(req *batonv1.StreamRevocationsRequest, s grpc.ServerStreamingServer[batonv1.StreamRevocationsResponse]) error
	calls    int
	cursors  chan string
	auth     chan string
}

func (f *streamBroker) StreamRevocations(req *batonv1.StreamRevocationsRequest, s grpc.ServerStreamingServer[batonv1.StreamRevocationsResponse]) error {
	f.mu.Lock()
	h := f.handlers[min(f.calls, len(f.handlers)-1)]
	f.calls++
	f.mu.Unlock()
	md, _ := metadata.FromIncomingContext(s.Context())
	select {
	case f.auth <- first(md.Get("authorization")):
	default:
	}
	select {
	case f.cursors <- req.GetCursor():
	default:
	}
	return h(req, s)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func startStreamBroker(t *testing.T, handlers ...func(*batonv1.StreamRevocationsRequest, grpc.ServerStreamingServer[batonv1.StreamRevocationsResponse]) error) (string, *streamBroker) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &streamBroker{handlers: handlers, cursors: make(chan string, 100), auth: make(chan string, 100)}
	srv := grpc.NewServer()
	batonv1.RegisterBrokerServiceServer(srv, fb)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), fb
}

func rev(target batonv1.RevocationTarget, id, cursor string) *batonv1.StreamRevocationsResponse {
	return &batonv1.StreamRevocationsResponse{Event: &batonv1.StreamRevocationsResponse_Revocation{Revocation: &batonv1.Revocation{
		Target: target, Id: id, AppId: "app", RevokeTime: ts(time.Now()), ExpireTime: ts(time.Now().Add(time.Hour)), Cursor: cursor}}}
}

func snapshotComplete(cursor string) *batonv1.StreamRevocationsResponse {
	return &batonv1.StreamRevocationsResponse{Event: &batonv1.StreamRevocationsResponse_SnapshotComplete{SnapshotComplete: &batonv1.SnapshotComplete{Cursor: cursor}}}
}

func checkpoint(cursor string, observed time.Time) *batonv1.StreamRevocationsResponse {
	return &batonv1.StreamRevocationsResponse{Event: &batonv1.StreamRevocationsResponse_Checkpoint{Checkpoint: &batonv1.Checkpoint{Cursor: cursor, ObserveTime: ts(observed)}}}
}

type streamServer = grpc.ServerStreamingServer[batonv1.StreamRevocationsResponse]

// sendThen sends msgs, then returns err (or, when hold, waits for the client to go).
func sendThen(err error, hold bool, msgs ...*batonv1.StreamRevocationsResponse) func(*batonv1.StreamRevocationsRequest, streamServer) error {
	return func(_ *batonv1.StreamRevocationsRequest, s streamServer) error {
		for _, m := range msgs {
			if e := s.Send(m); e != nil {
				return e
			}
		}
		if hold {
			<-s.Context().Done()
		}
		return err
	}
}

func batonStatus(code codes.Code, reason string, md map[string]string) error {
	st, _ := status.New(code, reason).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: baton.ErrorDomain, Metadata: md})
	return st.Err()
}

func newSub(t *testing.T, opts baton.SubscriberOptions) *baton.Subscriber {
	t.Helper()
	if opts.Credentials == nil {
		opts.Credentials = baton.BasicAuth("app", "secret")
	}
	if opts.BackoffBase == 0 {
		opts.BackoffBase = 5 * time.Millisecond
		opts.BackoffMax = 20 * time.Millisecond
	}
	s, err := baton.NewSubscriber(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func recvCursor(t *testing.T, fb *streamBroker) string {
	t.Helper()
	select {
	case c := <-fb.cursors:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no StreamRevocations call")
		return ""
	}
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const (
	tTOKEN = batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN
	tAGENT = batonv1.RevocationTarget_REVOCATION_TARGET_AGENT
)

func TestSubscriberSnapshotResumeAndFreshness(t *testing.T) {
	gate := make(chan struct{})
	addr, fb := startStreamBroker(t,
		// 1: snapshot, complete, a live event, then the broker goes away.
		func(_ *batonv1.StreamRevocationsRequest, s streamServer) error {
			_ = s.Send(rev(tTOKEN, "t1", "1"))
			_ = s.Send(snapshotComplete("2"))
			<-gate
			_ = s.Send(rev(tAGENT, "a1", "3"))
			return batonStatus(codes.Unavailable, "SHUTTING_DOWN", map[string]string{"cursor": "2"})
		},
		// 2: resumed; a checkpoint whose observe_time is behind our clock.
		sendThen(nil, true, checkpoint("4", time.Now().Add(-time.Hour))),
	)
	var mu sync.Mutex
	var states []baton.SubscriberState
	var snapshotFlags []bool
	s := newSub(t, baton.SubscriberOptions{Target: addr})
	s.OnStateChange(func(st baton.SubscriberState, _ error) { mu.Lock(); states = append(states, st); mu.Unlock() })
	s.OnRevocation(func(_ *batonv1.Revocation, snap bool) {
		mu.Lock()
		snapshotFlags = append(snapshotFlags, snap)
		mu.Unlock()
	})
	s.OnStateChange(func(baton.SubscriberState, error) { panic("a listener's bug") })
	if !s.FreshAt().IsZero() {
		t.Fatal("fresh before start")
	}
	before := time.Now()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx5(t)); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if c := recvCursor(t, fb); c != "" {
		t.Errorf("first connect cursor = %q, want a snapshot", c)
	}
	freshAfterSnapshot := s.FreshAt()
	if freshAfterSnapshot.Before(before) || freshAfterSnapshot.After(time.Now()) {
		t.Errorf("FreshAt = %v, want the SnapshotComplete receipt time", freshAfterSnapshot)
	}
	if !s.IsRevoked(baton.RevocationFacts{TokenID: "t1"}) || s.Cursor() != "2" || s.Len() != 1 {
		t.Errorf("after snapshot: revoked %v cursor %q len %d", s.IsRevoked(baton.RevocationFacts{TokenID: "t1"}), s.Cursor(), s.Len())
	}
	close(gate)
	if c := recvCursor(t, fb); c != "3" {
		t.Errorf("resume cursor = %q, want our applied %q (not the error's 2)", c, "3")
	}
	waitFor(t, "cursor 4", func() bool { return s.Cursor() == "4" })
	if !s.IsRevoked(baton.RevocationFacts{AgentID: "a1"}) {
		t.Error("live event not applied")
	}
	// The checkpoint's observe_time is an hour old: FreshAt never goes backwards.
	if !s.FreshAt().Equal(freshAfterSnapshot) {
		t.Errorf("FreshAt moved to %v after an old checkpoint", s.FreshAt())
	}
	mu.Lock()
	gotStates := append([]baton.SubscriberState(nil), states...)
	flags := append([]bool(nil), snapshotFlags...)
	mu.Unlock()
	if len(flags) != 2 || !flags[0] || flags[1] {
		t.Errorf("snapshot flags = %v, want [true false]", flags)
	}
	want := []baton.SubscriberState{baton.StateConnecting, baton.StateSnapshot, baton.StateLive, baton.StateBackoff, baton.StateConnecting, baton.StateLive}
	if len(gotStates) < len(want) {
		t.Fatalf("states = %v, want %v", gotStates, want)
	}
	for i := range want {
		if gotStates[i] != want[i] {
			t.Fatalf("states = %v, want prefix %v", gotStates, want)
		}
	}
	if a := <-fb.auth; a != "Basic YXBwOnNlY3JldA==" {
		t.Errorf("authorization = %q", a)
	}
}

func TestSubscriberCheckpointFreshness(t *testing.T) {
	observed := time.Now().Add(time.Hour) // a broker clock ahead of ours
	addr, _ := startStreamBroker(t, sendThen(nil, true, snapshotComplete("1"), checkpoint("2", observed)))
	s := newSub(t, baton.SubscriberOptions{Target: addr})
	_ = s.Start()
	if err := s.Ready(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "checkpoint", func() bool { return s.Cursor() == "2" })
	if f := s.FreshAt(); f.After(time.Now()) {
		t.Errorf("FreshAt = %v is ahead of now: min(now, observe_time) expected", f)
	}
}

func TestSubscriberCursorExpiredResnapshots(t *testing.T) {
	release := make(chan struct{})
	addr, fb := startStreamBroker(t,
		sendThen(batonStatus(codes.Unavailable, "SHUTTING_DOWN", nil), false, rev(tTOKEN, "old", "1"), snapshotComplete("1")),
		sendThen(batonStatus(codes.OutOfRange, "CURSOR_EXPIRED", nil), false),
		// The new snapshot: the old set answers until SnapshotComplete.
		func(_ *batonv1.StreamRevocationsRequest, s streamServer) error {
			_ = s.Send(rev(tTOKEN, "new", "9"))
			<-release
			_ = s.Send(snapshotComplete("9"))
			<-s.Context().Done()
			return nil
		},
	)
	s := newSub(t, baton.SubscriberOptions{Target: addr})
	_ = s.Start()
	if err := s.Ready(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"", "1", ""} {
		if c := recvCursor(t, fb); c != want {
			t.Fatalf("call %d cursor = %q, want %q", i, c, want)
		}
	}
	waitFor(t, "the new snapshot's first entry", func() bool { return s.IsRevoked(baton.RevocationFacts{TokenID: "new"}) })
	if !s.IsRevoked(baton.RevocationFacts{TokenID: "old"}) {
		t.Error("the old set stopped answering before SnapshotComplete")
	}
	close(release)
	waitFor(t, "SnapshotComplete", func() bool { return s.Cursor() == "9" })
	if s.IsRevoked(baton.RevocationFacts{TokenID: "old"}) || !s.IsRevoked(baton.RevocationFacts{TokenID: "new"}) || s.Len() != 1 {
		t.Error("the set was not replaced at SnapshotComplete")
	}
}

func TestSubscriberCursorOptionAndIdleTimeout(t *testing.T) {
	addr, fb := startStreamBroker(t,
		// Resumed from the given cursor: no snapshot; ready at the first checkpoint; then silence.
		sendThen(nil, true, rev(tTOKEN, "r", "6"), checkpoint("7", time.Now())),
	)
	s := newSub(t, baton.SubscriberOptions{Target: addr, Cursor: "5", IdleTimeout: 100 * time.Millisecond})
	var mu sync.Mutex
	var idleErr error
	s.OnStateChange(func(st baton.SubscriberState, err error) {
		if st == baton.StateBackoff && err != nil {
			mu.Lock()
			idleErr = err
			mu.Unlock()
		}
	})
	_ = s.Start()
	if c := recvCursor(t, fb); c != "5" {
		t.Fatalf("cursor = %q, want 5", c)
	}
	if err := s.Ready(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	if !s.IsRevoked(baton.RevocationFacts{TokenID: "r"}) {
		t.Error("event after the given cursor not applied")
	}
	if c := recvCursor(t, fb); c != "7" {
		t.Fatalf("after the idle timeout, cursor = %q, want 7", c)
	}
	mu.Lock()
	defer mu.Unlock()
	var berr *baton.Error
	if !errors.As(idleErr, &berr) || berr.Code != codes.DeadlineExceeded {
		t.Errorf("idle error = %v, want DeadlineExceeded", idleErr)
	}
}

func TestSubscriberCloseStopsEverything(t *testing.T) {
	addr, _ := startStreamBroker(t, sendThen(nil, true, snapshotComplete("1")))
	s := newSub(t, baton.SubscriberOptions{Target: addr})
	_ = s.Start()
	if err := s.Ready(ctx5(t)); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error)
	never := newSub(t, baton.SubscriberOptions{Target: "127.0.0.1:1"})
	_ = never.Start()
	go func() { waiting <- never.Ready(context.Background()) }()
	_ = s.Close()
	_ = never.Close()
	if err := <-waiting; !errors.Is(err, baton.ErrSubscriberClosed) {
		t.Errorf("Ready after Close = %v, want ErrSubscriberClosed", err)
	}
	if s.State() != baton.StateClosed || s.Start() != baton.ErrSubscriberClosed {
		t.Errorf("state %v after Close", s.State())
	}
	_ = s.Close() // twice: nothing
	// Close waits for the subscriber's goroutines: none may be left.
	if stacks := subscriberGoroutines(); stacks != "" {
		t.Errorf("goroutines left after Close:\n%s", stacks)
	}
}

// subscriberGoroutines returns the stacks of goroutines running the
// subscriber's code.
func subscriberGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "baton.(*Subscriber)") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

func TestSubscriberClosedPortNeverFresh(t *testing.T) {
	s := newSub(t, baton.SubscriberOptions{Target: "127.0.0.1:1"})
	var mu sync.Mutex
	backoffs := 0
	s.OnStateChange(func(st baton.SubscriberState, _ error) {
		if st == baton.StateBackoff {
			mu.Lock()
			backoffs++
			mu.Unlock()
		}
	})
	_ = s.Start()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	if err := s.Ready(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ready = %v, want the context's deadline", err)
	}
	if !s.FreshAt().IsZero() {
		t.Error("fresh without a broker")
	}
	mu.Lock()
	defer mu.Unlock()
	if backoffs < 2 {
		t.Errorf("%d reconnect attempts, want several", backoffs)
	}
}

func TestNewSubscriberRefusesPlaintextOffLoopback(t *testing.T) {
	creds := baton.BasicAuth("a", "b")
	for target, ok := range map[string]bool{
		"127.0.0.1:50051": true, "localhost:50051": true, "[::1]:50051": true, "dns:///localhost:1": true, "unix:///tmp/s": true,
		"broker.example:443": false, "10.0.0.1:50051": false, "dns:///broker:1": false,
	} {
		_, err := baton.NewSubscriber(baton.SubscriberOptions{Target: target, Credentials: creds})
		if (err == nil) != ok {
			t.Errorf("NewSubscriber(%q) err = %v, want ok=%v", target, err, ok)
		}
	}
	if _, err := baton.NewSubscriber(baton.SubscriberOptions{Target: "broker.example:443", Credentials: creds, TransportCredentials: insecure.NewCredentials()}); err != nil {
		t.Errorf("with transport credentials: %v", err)
	}
	if _, err := baton.NewSubscriber(baton.SubscriberOptions{Target: "127.0.0.1:1"}); err == nil {
		t.Error("no credentials accepted")
	}
}
