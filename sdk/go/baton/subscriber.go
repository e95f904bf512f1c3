package baton

// Subscriber: a resource server's live copy of the broker's revocations
// (DESIGN §6, §7), as the TypeScript SDK's RevocationSubscriber.
//
//   first connect:  no cursor: snapshot, SnapshotComplete, then live events
//   reconnect:      from the last cursor it applied (replay, then live), after
//                   exponential backoff with full jitter
//   CURSOR_EXPIRED / CURSOR_INVALID: forget the cursor and take a fresh
//                   snapshot; the old set keeps answering (with the snapshot
//                   received so far) until SnapshotComplete, then is replaced
//   SUBSCRIBER_TOO_SLOW / SHUTTING_DOWN: resume from its own applied cursor.
//                   The error's `cursor` metadata names the last one the
//                   broker handed over; ours is what actually reached the
//                   set, so it is the one that cannot skip an event.
//   silence:        no message at all (the broker sends a Checkpoint every
//                   CheckpointInterval) for IdleTimeout: drop the connection,
//                   dial a new one and resume from the cursor. A half-open
//                   TCP connection otherwise looks alive for minutes, and a
//                   new stream on it would hang just the same.
//
// The subscriber dials a connection of its own, never shared with unary
// calls: a stream held open on a connection the broker has given up on
// must not hold other calls up, nor they it.
//
// FreshAt is the local time up to which the set is known complete: the
// receipt time of SnapshotComplete (the snapshot was read just before), then
// on each Checkpoint min(now, observe_time), observe_time being when the
// broker's own view last matched its database. A broker that still streams
// checkpoints but lost its database thus goes stale, and a broker clock
// ahead of ours never makes us look fresher. Revocation events do not
// advance it; it never goes backwards.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// SubscriberState is where a [Subscriber] is.
type SubscriberState string

const (
	// StateIdle: not started.
	StateIdle SubscriberState = "idle"
	// StateConnecting: stream opened, nothing received yet.
	StateConnecting SubscriberState = "connecting"
	// StateSnapshot: receiving a snapshot.
	StateSnapshot SubscriberState = "snapshot"
	// StateLive: the set is complete, following events.
	StateLive SubscriberState = "live"
	// StateBackoff: the stream ended; waiting to reconnect.
	StateBackoff SubscriberState = "backoff"
	// StateClosed: closed.
	StateClosed SubscriberState = "closed"
)

// ErrSubscriberClosed is returned by [Subscriber.Ready] and
// [Subscriber.Start] once the subscriber is closed.
var ErrSubscriberClosed = errors.New("baton: the subscriber is closed")

// SubscriberOptions configure [NewSubscriber]. Zero durations mean the
// defaults.
type SubscriberOptions struct {
	// Target is the broker (`host:port` or a gRPC target URI). Ignored when
	// TargetFunc is set.
	Target string
	// TargetFunc, when set, is called at every (re)connect for the target:
	// a list of replicas to rotate through, or a discovery lookup.
	TargetFunc func() string
	// Credentials authenticate the subscriber: [BasicAuth] with a resource
	// server's id and secret (every revocation that can affect a token for
	// its audiences) or an app's (only the app's own revocations),
	// [BearerToken] for an operator. Required.
	Credentials credentials.PerRPCCredentials
	// TransportCredentials is the transport security. Without it the
	// connection is plaintext, which is allowed only to a loopback address
	// (the credentials travel on the stream).
	TransportCredentials credentials.TransportCredentials
	// DialOptions are added to the connection's (keepalive, ...).
	DialOptions []grpc.DialOption
	// Cursor resumes after this cursor instead of starting with a snapshot.
	// The set starts empty, so this only makes sense with a set the caller
	// restores itself; an expired or unknown cursor falls back to a
	// snapshot.
	Cursor string
	// BackoffBase is the longest first reconnect wait; each failure doubles
	// it. Default 200 ms.
	BackoffBase time.Duration
	// BackoffMax is the longest reconnect wait. Default 15 s.
	BackoffMax time.Duration
	// PruneInterval is how often expired revocations are forgotten.
	// Default 1 min.
	PruneInterval time.Duration
	// CheckpointInterval is how often the broker sends a Checkpoint on a
	// quiet stream (its BATON_STREAM_CHECKPOINT_SECONDS). It only sets the
	// default IdleTimeout. Default 5 s, the broker's default.
	CheckpointInterval time.Duration
	// IdleTimeout: when no message at all (not even a Checkpoint) arrived
	// for this long, close the connection, dial a new one and resume from
	// the cursor, since a half-open connection otherwise looks alive.
	// Default 2 x CheckpointInterval; negative disables it. Keep it above
	// the broker's checkpoint interval. Meanwhile FreshAt does not advance,
	// so a [Verifier] answers STALE once MaxStaleness has passed.
	IdleTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Subscriber keeps a local copy of the broker's live revocations through
// StreamRevocations, in a goroutine that reconnects and resumes as needed,
// and answers [Subscriber.IsRevoked] from memory. A [Verifier] uses it.
//
//	sub, err := baton.NewSubscriber(baton.SubscriberOptions{
//		Target:      "127.0.0.1:50051",
//		Credentials: baton.BasicAuth(clientID, clientSecret),
//	})
//	if err != nil { ... }
//	sub.Start()
//	defer sub.Close()
//	if err := sub.Ready(ctx); err != nil { ... } // the first snapshot is in
//
// Its methods are safe for concurrent use. Listeners (OnRevocation,
// OnKeySet, OnStateChange) are called from the subscriber's goroutine, one
// at a time; a listener that blocks holds the stream up, and a panic in one
// is recovered.
type Subscriber struct {
	opts          SubscriberOptions
	now           func() time.Time
	backoffBase   time.Duration
	backoffMax    time.Duration
	pruneInterval time.Duration
	idleTimeout   time.Duration

	mu      sync.RWMutex
	set     *RevocationSet
	pending *RevocationSet // the snapshot being received; replaces set at SnapshotComplete
	cursor  string         // the last cursor applied to set; "" means the next connect takes a snapshot
	freshAt time.Time
	state   SubscriberState
	started bool
	closed  bool

	listenMu       sync.Mutex
	nextListener   int
	revListeners   map[int]func(*batonv1.Revocation, bool)
	keyListeners   map[int]func(string)
	stateListeners map[int]func(SubscriberState, error)

	ready     chan struct{}
	readyOnce sync.Once
	closing   chan struct{} // closed by Close
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewSubscriber returns a subscriber; [Subscriber.Start] starts it. It
// fails when an option is invalid, when Target is not a loopback address
// and no TransportCredentials are given, or (with a [*TokenTooLongError])
// when the Credentials' bearer token is longer than [MaxTokenLength].
func NewSubscriber(opts SubscriberOptions) (*Subscriber, error) {
	if opts.Target == "" && opts.TargetFunc == nil {
		return nil, errors.New("baton: SubscriberOptions needs Target or TargetFunc")
	}
	if opts.Credentials == nil {
		return nil, errors.New("baton: SubscriberOptions needs Credentials (BasicAuth for an app, BearerToken for an operator)")
	}
	if opts.TargetFunc == nil && opts.TransportCredentials == nil && !isLoopbackTarget(opts.Target) {
		return nil, fmt.Errorf("baton: plaintext is only allowed to a loopback address, not %q: set TransportCredentials", opts.Target)
	}
	if err := checkCredentials(opts.Credentials); err != nil {
		return nil, err
	}
	for _, d := range []time.Duration{opts.BackoffBase, opts.BackoffMax, opts.PruneInterval, opts.CheckpointInterval} {
		if d < 0 {
			return nil, errors.New("baton: SubscriberOptions durations must not be negative (except IdleTimeout)")
		}
	}
	s := &Subscriber{
		opts:           opts,
		now:            opts.Now,
		backoffBase:    orDefault(opts.BackoffBase, 200*time.Millisecond),
		backoffMax:     orDefault(opts.BackoffMax, 15*time.Second),
		pruneInterval:  orDefault(opts.PruneInterval, time.Minute),
		idleTimeout:    orDefault(opts.IdleTimeout, 2*orDefault(opts.CheckpointInterval, 5*time.Second)),
		set:            NewRevocationSet(),
		cursor:         opts.Cursor,
		state:          StateIdle,
		revListeners:   map[int]func(*batonv1.Revocation, bool){},
		keyListeners:   map[int]func(string){},
		stateListeners: map[int]func(SubscriberState, error){},
		ready:          make(chan struct{}),
		closing:        make(chan struct{}),
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Start opens the stream in a new goroutine. Calling it again does nothing;
// after Close it returns [ErrSubscriberClosed].
func (s *Subscriber) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrSubscriberClosed
	}
	if s.started {
		return nil
	}
	s.started = true
	s.wg.Add(2)
	go s.run()
	go s.pruneLoop()
	return nil
}

// Ready waits until the set is first known complete (SnapshotComplete, or a
// Checkpoint when resuming from a cursor). It returns [ErrSubscriberClosed]
// if the subscriber is closed first, or ctx's error.
func (s *Subscriber) Ready(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	default:
	}
	select {
	case <-s.ready:
		return nil
	case <-s.closing:
		return ErrSubscriberClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IsRevoked reports whether a token is revoked, by the rules of DESIGN §6
// (see [RevocationSet]). During a re-snapshot both the old set and the
// snapshot received so far are consulted: either may only add revocations,
// never lift one.
func (s *Subscriber) IsRevoked(f RevocationFacts) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.set.IsRevoked(f) || s.pending.IsRevoked(f)
}

// FreshAt returns the local time up to which the set is known complete (see
// the package documentation of Subscriber); the zero Time before the first
// snapshot completes.
func (s *Subscriber) FreshAt() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.freshAt
}

// Cursor returns the last cursor applied: "" before the first snapshot
// completes or after a cursor error.
func (s *Subscriber) Cursor() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cursor
}

// State returns the current state.
func (s *Subscriber) State() SubscriberState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.state
}

// Len returns the number of entries in the set in force.
func (s *Subscriber) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.set.Len()
}

// Prune forgets expired revocations now (the subscriber also does it every
// PruneInterval) and returns how many.
func (s *Subscriber) Prune() int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.Prune(now) + s.pending.Prune(now)
}

// OnRevocation calls fn for every revocation received; snapshot is true for
// an entry of a snapshot (not in force until SnapshotComplete). It returns
// a function that removes fn.
func (s *Subscriber) OnRevocation(fn func(r *batonv1.Revocation, snapshot bool)) (unsubscribe func()) {
	return addListener(s, s.revListeners, fn)
}

// OnKeySet calls fn with the new JWK set (JSON) on every KeySetChanged. It
// returns a function that removes fn.
func (s *Subscriber) OnKeySet(fn func(jwksJSON string)) (unsubscribe func()) {
	return addListener(s, s.keyListeners, fn)
}

// OnStateChange calls fn on every state change; StateBackoff comes with
// the error that ended the stream (an [*Error] when from gRPC), if any. It
// returns a function that removes fn.
func (s *Subscriber) OnStateChange(fn func(state SubscriberState, err error)) (unsubscribe func()) {
	return addListener(s, s.stateListeners, fn)
}

func addListener[F any](s *Subscriber, m map[int]F, fn F) func() {
	s.listenMu.Lock()
	defer s.listenMu.Unlock()
	id := s.nextListener
	s.nextListener++
	m[id] = fn
	return func() {
		s.listenMu.Lock()
		defer s.listenMu.Unlock()
		delete(m, id)
	}
}

// emit calls every listener of m with call, recovering from panics: a
// listener's bug must not stop the set from being kept current.
func emit[F any](s *Subscriber, m map[int]F, call func(F)) {
	s.listenMu.Lock()
	fns := make([]F, 0, len(m))
	for _, fn := range m {
		fns = append(fns, fn)
	}
	s.listenMu.Unlock()
	for _, fn := range fns {
		func() {
			defer func() { _ = recover() }()
			call(fn)
		}()
	}
}

// Close cancels the stream, closes the connection and stops the
// subscriber's goroutines, waiting for them to return. Ready waiters get
// [ErrSubscriberClosed]. Calling it again does nothing. Do not call it from
// a listener.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.closing)
		s.cancel()
		s.wg.Wait()
		s.mu.Lock()
		s.pending = nil
		s.mu.Unlock()
		s.setState(StateClosed, nil)
	})
	return nil
}

func (s *Subscriber) setState(st SubscriberState, err error) {
	s.mu.Lock()
	same := s.state == st
	s.state = st
	s.mu.Unlock()
	if same && err == nil {
		return
	}
	emit(s, s.stateListeners, func(fn func(SubscriberState, error)) { fn(st, err) })
}

func (s *Subscriber) pruneLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.pruneInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.Prune()
		}
	}
}

// run connects, follows the stream until it ends, and reconnects after a
// backoff, until Close.
func (s *Subscriber) run() {
	defer s.wg.Done()
	var conn *grpc.ClientConn
	var connTarget string
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	attempt := 0
	for s.ctx.Err() == nil {
		target := s.opts.Target
		if s.opts.TargetFunc != nil {
			target = s.opts.TargetFunc()
		}
		var err error
		received, idle := false, false
		switch {
		case s.opts.TransportCredentials == nil && !isLoopbackTarget(target):
			err = &Error{Code: codes.FailedPrecondition, Metadata: map[string]string{},
				Message: fmt.Sprintf("plaintext is only allowed to a loopback address, not %q: set TransportCredentials", target),
				status:  status.New(codes.FailedPrecondition, "plaintext is only allowed to a loopback address")}
		default:
			if conn == nil || connTarget != target {
				if conn != nil {
					_ = conn.Close()
					conn = nil
				}
				conn, err = s.dial(target)
				if err == nil {
					connTarget = target
				}
			}
			if err == nil {
				received, idle, err = s.follow(batonv1.NewBrokerServiceClient(conn))
			}
			if idle {
				// The connection itself may be dead without knowing it:
				// the next attempt dials a new one.
				_ = conn.Close()
				conn = nil
			}
		}
		if s.ctx.Err() != nil {
			return
		}
		if received {
			attempt = 0
		}
		// Full jitter: uniform in [0, min(max, base * 2^attempt)].
		ceiling := min(s.backoffMax, s.backoffBase<<min(attempt, 30))
		if ceiling <= 0 { // overflow
			ceiling = s.backoffMax
		}
		attempt++
		s.setState(StateBackoff, err)
		wait := time.Duration(rand.Int64N(int64(ceiling) + 1))
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Subscriber) dial(target string) (*grpc.ClientConn, error) {
	tc := s.opts.TransportCredentials
	if tc == nil {
		tc = insecure.NewCredentials()
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(tc),
		grpc.WithPerRPCCredentials(s.opts.Credentials),
	}, s.opts.DialOptions...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, &Error{Code: codes.InvalidArgument, Metadata: map[string]string{}, Message: err.Error(),
			status: status.New(codes.InvalidArgument, err.Error())}
	}
	return conn, nil
}

var errIdle = errors.New("idle")

// follow runs one stream to its end. It returns whether any message was
// received, whether it was ended by the idle timeout, and the error that
// ended it (nil for a clean end).
func (s *Subscriber) follow(client batonv1.BrokerServiceClient) (received, idle bool, err error) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)

	s.mu.Lock()
	cursor := s.cursor
	if cursor == "" {
		s.pending = NewRevocationSet()
	} else {
		s.pending = nil
	}
	s.mu.Unlock()
	defer func() {
		// A snapshot cut short is discarded whole; the next connect takes a
		// new one. After a cursor error, so is the cursor.
		s.mu.Lock()
		s.pending = nil
		var berr *Error
		if errors.As(err, &berr) && (berr.Reason == ReasonOf(batonv1.ErrorReason_ERROR_REASON_CURSOR_EXPIRED) ||
			berr.Reason == ReasonOf(batonv1.ErrorReason_ERROR_REASON_CURSOR_INVALID)) {
			s.cursor = ""
		}
		s.mu.Unlock()
	}()

	var silence *time.Timer
	if s.idleTimeout > 0 {
		silence = time.AfterFunc(s.idleTimeout, func() { cancel(errIdle) })
		defer silence.Stop()
	}
	stream, err := client.StreamRevocations(ctx, &batonv1.StreamRevocationsRequest{Cursor: cursor})
	if err != nil {
		idle, err = s.streamError(ctx, err)
		return false, idle, err
	}
	s.setState(StateConnecting, nil)
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return received, false, nil
			}
			idle, err = s.streamError(ctx, err)
			return received, idle, err
		}
		if silence != nil {
			silence.Reset(s.idleTimeout)
		}
		received = true
		s.apply(ctx, msg)
	}
}

// streamError is the error a stream ended with, and whether it was the
// idle timeout: the timeout's own error, or the call's as an [*Error].
func (s *Subscriber) streamError(ctx context.Context, err error) (idle bool, _ error) {
	if errors.Is(context.Cause(ctx), errIdle) {
		msg := fmt.Sprintf("no message from the broker in %v", s.idleTimeout)
		return true, &Error{Code: codes.DeadlineExceeded, Metadata: map[string]string{}, Message: msg, status: status.New(codes.DeadlineExceeded, msg)}
	}
	return false, FromError(err)
}

// apply applies one message of the stream whose context is ctx; a message
// of a stream already left (its context cancelled by the idle timeout or
// Close) is ignored.
func (s *Subscriber) apply(ctx context.Context, msg *batonv1.StreamRevocationsResponse) {
	s.mu.Lock()
	if ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	switch ev := msg.GetEvent().(type) {
	case *batonv1.StreamRevocationsResponse_Revocation:
		r := ev.Revocation
		snapshot := s.pending != nil
		next := StateLive
		if snapshot {
			s.pending.Add(r)
			next = StateSnapshot
		} else {
			s.set.Add(r)
			s.cursor = r.GetCursor()
		}
		s.mu.Unlock()
		s.setState(next, nil)
		emit(s, s.revListeners, func(fn func(*batonv1.Revocation, bool)) { fn(r, snapshot) })
	case *batonv1.StreamRevocationsResponse_SnapshotComplete:
		if s.pending != nil {
			s.set = s.pending
		}
		s.pending = nil
		s.cursor = ev.SnapshotComplete.GetCursor()
		s.freshLocked(s.now())
		s.mu.Unlock()
		s.becameFresh()
	case *batonv1.StreamRevocationsResponse_Checkpoint:
		// The broker sends none before SnapshotComplete; one would say
		// nothing about an incomplete set.
		if s.pending != nil {
			s.mu.Unlock()
			return
		}
		s.cursor = ev.Checkpoint.GetCursor()
		at := s.now()
		if ot := ev.Checkpoint.GetObserveTime(); ot != nil && ot.AsTime().Before(at) {
			at = ot.AsTime()
		}
		s.freshLocked(at)
		s.mu.Unlock()
		s.becameFresh()
	case *batonv1.StreamRevocationsResponse_KeySetChanged:
		s.mu.Unlock()
		jwks := ev.KeySetChanged.GetJwksJson()
		var doc struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if json.Unmarshal([]byte(jwks), &doc) != nil || doc.Keys == nil {
			return
		}
		emit(s, s.keyListeners, func(fn func(string)) { fn(jwks) })
	default:
		s.mu.Unlock()
	}
}

// freshLocked advances freshAt (never backwards); s.mu is held.
func (s *Subscriber) freshLocked(at time.Time) {
	if s.freshAt.IsZero() || at.After(s.freshAt) {
		s.freshAt = at
	}
}

func (s *Subscriber) becameFresh() {
	s.setState(StateLive, nil)
	s.readyOnce.Do(func() { close(s.ready) })
}

// isLoopbackTarget reports whether a gRPC target names a loopback address
// (or a Unix socket), where plaintext is acceptable.
func isLoopbackTarget(target string) bool {
	t := target
	if strings.HasPrefix(t, "unix:") || strings.HasPrefix(t, "unix-abstract:") {
		return true
	}
	for _, scheme := range []string{"dns:///", "passthrough:///", "ipv4:", "ipv6:"} {
		if strings.HasPrefix(t, scheme) {
			t = strings.TrimPrefix(t, scheme)
			break
		}
	}
	if strings.Contains(t, "://") || strings.Contains(t, ",") {
		return false
	}
	host := t
	if h, _, err := net.SplitHostPort(t); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
