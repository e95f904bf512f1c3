package baton

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// MaxAccessReportBatch is the most reports one ReportAccess call may carry:
// the broker's limit.
const MaxAccessReportBatch = 500

// AccessDecision is one access decision a resource server made.
type AccessDecision struct {
	// TokenID is the `jti` of the token presented. Required.
	TokenID string
	// AgentID is the `sub` of the token presented (the agent). Required.
	AgentID string
	// Allowed is true when the request was let through.
	Allowed bool
	// Scope is the scope the request needed; optional.
	Scope string
	// Resource is what was accessed, e.g. `GET /records/P-1042` (cut to
	// 512 characters). Never a credential.
	Resource string
	// Reason is why it was denied: a TokenStatus name
	// (`TOKEN_STATUS_REVOKED`) or a code of your own (cut to 128).
	Reason string
	// Outcome is the outcome, e.g. an HTTP or gRPC status (cut to 128).
	Outcome string
	// Audience is the audience checked; the reporter's own when "".
	Audience string
	// DecideTime is when the decision was made; now when zero.
	DecideTime time.Time
}

// ReporterOptions configure [NewReporter].
type ReporterOptions struct {
	// Target is the broker's address (`host:port` or a gRPC target URI).
	Target string
	// ResourceServerID and ResourceServerSecret are this resource server's
	// client id (`rs_...`) and secret.
	ResourceServerID, ResourceServerSecret string
	// Audience is the audience this resource server serves, used when a
	// decision names none. Required.
	Audience string
	// DialOptions are passed to [Dial] (TLS with
	// [WithTransportCredentials] off loopback, for example).
	DialOptions []Option
	// BufferSize is the most decisions held; past it new ones are dropped
	// and counted. Default 10000.
	BufferSize int
	// BatchSize is the number of reports per call, 1 to 500. Default 500.
	BatchSize int
	// FlushInterval is how often the buffer is sent. Default 1s.
	FlushInterval time.Duration
	// MinBackoff is the first retry's delay after a failed send, doubling
	// up to MaxBackoff. Defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Timeout is each call's deadline. Default 5s.
	Timeout time.Duration
	// OnError, when set, is told of every failed send (for logging). It
	// runs on the reporter's goroutine and must not block.
	OnError func(error)
}

// ReporterStats are what a [Reporter] has done so far.
type ReporterStats struct {
	// Sent counts reports the broker stored.
	Sent uint64
	// Dropped counts decisions dropped because the buffer was full (or the
	// reporter closed).
	Dropped uint64
	// FailedBatches counts send attempts that failed (each retry counts).
	FailedBatches uint64
	// Rejected counts reports discarded because the broker refused them as
	// invalid.
	Rejected uint64
	// Pending is the number of decisions waiting to be sent.
	Pending int
}

// Reporter tells the broker what this resource server decided when agents
// used their tokens (BrokerService.ReportAccess), so the audit trail shows
// use as well as issuance.
//
// [Reporter.Report] never blocks on the network: it appends the decision to
// a bounded buffer under a mutex and returns. A goroutine sends the buffer
// in batches (at most 500) every FlushInterval, or as soon as a batch
// fills. When the broker is unreachable (Unavailable, DeadlineExceeded,
// ResourceExhausted, Aborted) the batch stays at the head of the buffer and
// is retried with exponential backoff; once the buffer is full new
// decisions are dropped and counted. The broker takes a batch all or
// nothing; when it refuses one as wrong (a report about a token it does not
// know: one long expired and pruned, say) it names the report, which is
// discarded and counted as rejected, and the rest is sent again. A refusal
// naming none discards the batch.
//
// A Reporter is safe for concurrent use; Close it when done.
type Reporter struct {
	client                                    *Client
	audience                                  string
	bufferSize, batchSize                     int
	interval, minBackoff, maxBackoff, timeout time.Duration
	onError                                   func(error)

	mu                              sync.Mutex
	buf                             []AccessDecision
	closed                          bool
	sent, dropped, failed, rejected uint64
	kick                            chan struct{}
	// ctx ends the background sends when the reporter closes.
	ctx     context.Context
	cancel  context.CancelFunc
	flushes chan flushRequest
	stop    chan struct{}
	done    chan struct{}
}

type flushRequest struct {
	ctx  context.Context
	done chan bool
}

func intOrDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// NewReporter starts a reporter. It dials the broker lazily: nothing is
// sent until the first batch.
func NewReporter(opts ReporterOptions) (*Reporter, error) {
	if opts.Target == "" || opts.ResourceServerID == "" || opts.ResourceServerSecret == "" {
		return nil, errors.New("baton: NewReporter needs Target, ResourceServerID and ResourceServerSecret")
	}
	if opts.Audience == "" {
		return nil, errors.New("baton: NewReporter needs the Audience this resource server serves")
	}
	r := &Reporter{
		audience:   opts.Audience,
		bufferSize: intOrDefault(opts.BufferSize, 10_000),
		batchSize:  intOrDefault(opts.BatchSize, MaxAccessReportBatch),
		interval:   orDefault(opts.FlushInterval, time.Second),
		minBackoff: orDefault(opts.MinBackoff, 500*time.Millisecond),
		maxBackoff: orDefault(opts.MaxBackoff, 30*time.Second),
		timeout:    orDefault(opts.Timeout, 5*time.Second),
		onError:    opts.OnError,
		kick:       make(chan struct{}, 1),
		flushes:    make(chan flushRequest),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	if r.bufferSize < 1 || r.batchSize < 1 || r.batchSize > MaxAccessReportBatch {
		return nil, fmt.Errorf("baton: BufferSize must be positive and BatchSize 1 to %d", MaxAccessReportBatch)
	}
	if r.interval < 0 || r.minBackoff < 0 || r.maxBackoff < 0 || r.timeout < 0 {
		return nil, errors.New("baton: durations must not be negative")
	}
	c, err := Dial(opts.Target, append([]Option{WithBasicAuth(opts.ResourceServerID, opts.ResourceServerSecret)}, opts.DialOptions...)...)
	if err != nil {
		return nil, err
	}
	r.client = c
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.run()
	return r, nil
}

// Report queues one decision and returns at once: no I/O. It returns false
// when the decision was dropped (buffer full, or the reporter closed).
func (r *Reporter) Report(d AccessDecision) bool {
	if d.DecideTime.IsZero() {
		d.DecideTime = time.Now()
	}
	r.mu.Lock()
	if r.closed || len(r.buf) >= r.bufferSize {
		r.dropped++
		r.mu.Unlock()
		return false
	}
	r.buf = append(r.buf, d)
	full := len(r.buf)%r.batchSize == 0
	r.mu.Unlock()
	if full {
		// Once per batch filled; never blocks: one pending kick is enough.
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// Stats returns the counters.
func (r *Reporter) Stats() ReporterStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReporterStats{Sent: r.sent, Dropped: r.dropped, FailedBatches: r.failed, Rejected: r.rejected, Pending: len(r.buf)}
}

// Flush sends everything buffered now, ignoring the backoff, until ctx is
// done. It returns nil when the buffer is empty, else ctx's error.
func (r *Reporter) Flush(ctx context.Context) error {
	req := flushRequest{ctx: ctx, done: make(chan bool, 1)}
	select {
	case r.flushes <- req:
	case <-r.done:
		return errors.New("baton: the reporter is closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case drained := <-req.done:
		if drained {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		return errors.New("baton: reports are still pending")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking decisions, flushes what is buffered until ctx is done,
// then stops the goroutine and closes the connection. It returns Flush's
// error.
func (r *Reporter) Close(ctx context.Context) error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	r.mu.Unlock()
	if already {
		return nil
	}
	err := r.Flush(ctx)
	r.cancel()
	close(r.stop)
	<-r.done
	r.client.Close()
	return err
}

func (r *Reporter) run() {
	defer close(r.done)
	tick := time.NewTicker(r.interval)
	defer tick.Stop()
	var retryAt time.Time
	var backoff time.Duration
	for {
		select {
		case <-r.stop:
			return
		case f := <-r.flushes:
			f.done <- r.flush(f.ctx, &backoff)
			continue
		case <-tick.C:
		case <-r.kick:
		}
		if time.Now().Before(retryAt) {
			continue
		}
		if !r.sendAll(r.ctx, &backoff) {
			// Jitter: resource servers coming back together do not retry in step.
			retryAt = time.Now().Add(time.Duration(float64(backoff) * (0.5 + rand.Float64()/2)))
		}
	}
}

// flush sends until the buffer is empty or ctx is done, waiting a little
// between failed attempts. It reports whether the buffer was emptied.
func (r *Reporter) flush(ctx context.Context, backoff *time.Duration) bool {
	for ctx.Err() == nil {
		if r.sendAll(ctx, backoff) {
			return true
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.minBackoff):
		}
	}
	return r.Stats().Pending == 0
}

// retryable are the failures that go away by themselves: the batch is kept.
func retryable(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// sendAll sends batches from the head of the buffer until it is empty
// (true) or a send fails and must be retried later (false).
func (r *Reporter) sendAll(ctx context.Context, backoff *time.Duration) bool {
	for ctx.Err() == nil {
		r.mu.Lock()
		n := min(len(r.buf), r.batchSize)
		batch := make([]*batonv1.AccessReport, n)
		for i, d := range r.buf[:n] {
			batch[i] = r.wire(d)
		}
		r.mu.Unlock()
		if n == 0 {
			return true
		}
		cctx, cancel := context.WithTimeout(ctx, r.timeout)
		_, err := r.client.ReportAccess(cctx, &batonv1.ReportAccessRequest{Reports: batch})
		cancel()
		r.mu.Lock()
		switch {
		case err == nil:
			r.sent += uint64(n)
			r.buf = r.buf[n:]
			*backoff = 0
		case retryable(status.Code(err)):
			r.failed++
		default:
			r.failed++
			// The broker names the report it refused: drop that one and
			// send the rest again. Without an index the batch is at fault.
			if i, ok := refusedIndex(err, n); ok {
				r.rejected++
				r.buf = append(r.buf[:i:i], r.buf[i+1:]...)
			} else {
				r.rejected += uint64(n)
				r.buf = r.buf[n:]
			}
		}
		r.mu.Unlock()
		if err != nil && r.onError != nil {
			r.onError(err)
		}
		if err != nil && retryable(status.Code(err)) {
			*backoff = min(r.maxBackoff, max(r.minBackoff, *backoff*2))
			return false
		}
	}
	return false
}

// refusedIndex is the position of the report a refusal names, if it names
// one within the batch.
func refusedIndex(err error, n int) (int, bool) {
	var e *Error
	if !errors.As(FromError(err), &e) {
		return 0, false
	}
	i, perr := strconv.Atoi(e.Metadata["index"])
	return i, perr == nil && i >= 0 && i < n
}

// wire is the report as sent, with the reporter's defaults and the text
// fields cut and cleaned so that one long path cannot refuse a whole batch.
func (r *Reporter) wire(d AccessDecision) *batonv1.AccessReport {
	aud := d.Audience
	if aud == "" {
		aud = r.audience
	}
	return &batonv1.AccessReport{
		TokenId:    d.TokenID,
		AgentId:    d.AgentID,
		Audience:   aud,
		Scope:      d.Scope,
		Resource:   clean(d.Resource, 512),
		Allowed:    d.Allowed,
		Reason:     clean(d.Reason, 128),
		Outcome:    clean(d.Outcome, 128),
		DecideTime: timestamppb.New(d.DecideTime),
	}
}

// clean cuts s to max characters and replaces control characters, which
// the broker refuses.
func clean(s string, max int) string {
	if rs := []rune(s); len(rs) > max {
		s = string(rs[:max])
	}
	return strings.Map(func(c rune) rune {
		if unicode.IsControl(c) || c == unicode.ReplacementChar {
			return '?'
		}
		return c
	}, s)
}

// codeNames are the canonical gRPC code names (codes.Code.String() says
// "PermissionDenied"), as the other SDKs report outcomes.
var codeNames = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
	"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprint(uint32(c))
}
