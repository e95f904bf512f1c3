// loadgen drives one Baton RPC for -duration and prints calls per second and
// p50/p99/p999 latency, and with -json one machine-readable line
// (bench/load.ts reads it). Two modes:
//
//   - closed loop (default): each of -concurrency workers sends a call,
//     waits for its answer and sends the next. The rate is whatever the
//     broker sustains; a slow answer also delays the calls behind it, so
//     the latency figures understate the tail (coordinated omission).
//
//   - open loop (-rate N): calls are scheduled N per second, evenly spaced,
//     whatever the answers do, with up to -max-inflight outstanding. Latency
//     runs from each call's scheduled send time, so time spent waiting to be
//     sent counts. It also reports the rate achieved, calls sent more than
//     1 ms late, and calls dropped: scheduled in the window but never sent
//     because -max-inflight calls were outstanding until it ended.
//
//     go run . -addr 127.0.0.1:50051 -client-id app_... -client-secret ... \
//     -rpc revoke -concurrency 64 -duration 10s
//     go run . ... -rpc issue -rate 1500 -duration 10s
//
// With -addr a,b (replicas on one database) worker w calls the w-th address
// modulo their number.
//
// RPCs: issue, delegate (from one parent token per worker), validate (one
// token, checked by the app), revoke (a fresh task id per call: the full
// write path without needing a pool of tokens), revoke-many (-bulk task
// targets per call). The app needs the ceiling read:records:*, the audience
// ehr-api, and a delegation depth of at least 1 for delegate.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baton-dev/baton/sdk/go/batonv1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	audience = "ehr-api"
	scope    = "read:records:P-1"
)

// result is what -json prints.
type result struct {
	RPC         string         `json:"rpc"`
	Concurrency int            `json:"concurrency"`
	Seconds     float64        `json:"seconds"`
	Calls       int            `json:"calls"`
	Errors      map[string]int `json:"errors"`
	PerSecond   float64        `json:"per_second"`
	P50ms       float64        `json:"p50_ms"`
	P99ms       float64        `json:"p99_ms"`
	P999ms      float64        `json:"p999_ms"`
	// Revocations per second (revoke-many: calls times -bulk).
	TargetsPerSecond float64 `json:"targets_per_second,omitempty"`
	// Open loop only: the rate asked for, calls sent in the window, calls
	// sent more than lateAfter past their scheduled time, and scheduled
	// calls never sent (the in-flight bound was full until the window ended).
	Rate    float64 `json:"rate,omitempty"`
	Sent    int     `json:"sent,omitempty"`
	Late    int     `json:"late"`
	Dropped int     `json:"dropped"`
	// CPU seconds loadgen itself used, set-up and warm-up included (user +
	// system, from getrusage): it shares the machine with the broker.
	CPUSeconds float64 `json:"cpu_seconds"`
}

// An open-loop call sent later than this after its scheduled time is late.
const lateAfter = time.Millisecond

type op func(ctx context.Context, worker, n int) error

func main() {
	addr := flag.String("addr", "127.0.0.1:50051", "broker gRPC address (plaintext); several, comma-separated: worker w uses the w-th modulo their number (replicas)")
	clientID := flag.String("client-id", os.Getenv("BATON_CLIENT_ID"), "app client id (default $BATON_CLIENT_ID)")
	secret := flag.String("client-secret", "", "app client secret (default $BATON_CLIENT_SECRET; prefer the variable: flags show in ps)")
	rpc := flag.String("rpc", "issue", "issue, delegate, validate, revoke or revoke-many")
	concurrency := flag.Int("concurrency", 16, "closed loop: workers, each with one call in flight; open loop: parent tokens (delegate) shared round robin")
	rate := flag.Float64("rate", 0, "open loop: calls per second, evenly spaced (0: closed loop)")
	maxInFlight := flag.Int("max-inflight", 2000, "open loop: most calls outstanding at once")
	duration := flag.Duration("duration", 10*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", time.Second, "calls before measuring, not counted")
	bulk := flag.Int("bulk", 10, "targets per revoke-many call")
	asJSON := flag.Bool("json", false, "print one JSON line instead of text")
	flag.Parse()
	if *secret == "" {
		*secret = os.Getenv("BATON_CLIENT_SECRET")
	}
	if *clientID == "" || *secret == "" || *concurrency < 1 {
		fmt.Fprintln(os.Stderr, "loadgen: -client-id and a secret ($BATON_CLIENT_SECRET) are required, -concurrency >= 1")
		os.Exit(2)
	}

	var clients []batonv1.BrokerServiceClient
	for _, a := range strings.Split(*addr, ",") {
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fail(err)
		}
		defer conn.Close()
		clients = append(clients, batonv1.NewBrokerServiceClient(conn))
	}
	appMD := metadata.Pairs("authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(*clientID+":"+*secret)))
	// Task ids unique to this run, so repeated runs on one database never collide.
	run := time.Now().UnixNano()

	do, err := prepare(appMD, clients, *rpc, *concurrency, *bulk, run)
	if err != nil {
		fail(err)
	}
	var res result
	if *rate > 0 {
		res = measureOpen(do, *rate, *maxInFlight, *concurrency, *warmup, *duration)
	} else {
		res = measure(do, *concurrency, *warmup, *duration)
	}
	res.RPC = *rpc
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if *rpc == "revoke-many" {
		res.TargetsPerSecond = res.PerSecond * float64(*bulk)
	}
	if *asJSON {
		out, err := json.Marshal(res)
		if err != nil {
			fail(err)
		}
		fmt.Println(string(out))
		return
	}
	if res.Rate > 0 {
		fmt.Printf("%-11s rate=%-5.0f %8.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  p999 %7.2f ms  calls %d  late %d  dropped %d  errors %v\n",
			res.RPC, res.Rate, res.PerSecond, res.P50ms, res.P99ms, res.P999ms, res.Calls, res.Late, res.Dropped, res.Errors)
	} else {
		fmt.Printf("%-11s c=%-3d %8.0f ops/s  p50 %7.2f ms  p99 %7.2f ms  p999 %7.2f ms  calls %d  errors %v\n",
			res.RPC, res.Concurrency, res.PerSecond, res.P50ms, res.P99ms, res.P999ms, res.Calls, res.Errors)
	}
	if res.TargetsPerSecond > 0 {
		fmt.Printf("%-11s %8.0f revocations/s\n", "", res.TargetsPerSecond)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

func issueReq(task string) *batonv1.IssueRequest {
	return &batonv1.IssueRequest{TaskId: task, Scopes: []string{scope}, Audiences: []string{audience}}
}

// prepare does the setup an RPC needs (not measured) and returns one call.
// Worker w talks to clients[w % len(clients)].
func prepare(appMD metadata.MD, clients []batonv1.BrokerServiceClient, rpc string, workers, bulk int, run int64) (op, error) {
	of := func(w int) batonv1.BrokerServiceClient { return clients[w%len(clients)] }
	asApp := func(ctx context.Context) context.Context { return metadata.NewOutgoingContext(ctx, appMD) }
	setup, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch rpc {
	case "issue":
		return func(ctx context.Context, w, n int) error {
			_, err := of(w).Issue(asApp(ctx), issueReq(fmt.Sprintf("load-%d-%d", run, w)))
			return err
		}, nil
	case "delegate":
		parents := make([]metadata.MD, workers)
		for w := range parents {
			r, err := of(w).Issue(asApp(setup), issueReq(fmt.Sprintf("load-%d-%d", run, w)))
			if err != nil {
				return nil, fmt.Errorf("issuing a parent token: %w", err)
			}
			parents[w] = metadata.Pairs("authorization", "Bearer "+r.GetAccessToken())
		}
		return func(ctx context.Context, w, n int) error {
			_, err := of(w).Delegate(metadata.NewOutgoingContext(ctx, parents[w]), &batonv1.DelegateRequest{Scopes: []string{scope}})
			return err
		}, nil
	case "validate":
		r, err := of(0).Issue(asApp(setup), issueReq(fmt.Sprintf("load-%d", run)))
		if err != nil {
			return nil, fmt.Errorf("issuing the token to validate: %w", err)
		}
		req := &batonv1.ValidateRequest{Token: r.GetAccessToken(), Audience: audience}
		return func(ctx context.Context, w, n int) error {
			v, err := of(w).Validate(asApp(ctx), req)
			if err == nil && !v.GetValid() {
				return fmt.Errorf("token not valid: %v", v.GetStatus())
			}
			return err
		}, nil
	case "revoke":
		return func(ctx context.Context, w, n int) error {
			_, err := of(w).Revoke(asApp(ctx), &batonv1.RevokeRequest{Target: batonv1.RevocationTarget_REVOCATION_TARGET_TASK, Id: fmt.Sprintf("rv-%d-%d-%d", run, w, n), Reason: "load"})
			return err
		}, nil
	case "revoke-many":
		return func(ctx context.Context, w, n int) error {
			targets := make([]*batonv1.RevokeRequest, bulk)
			for i := range targets {
				targets[i] = &batonv1.RevokeRequest{Target: batonv1.RevocationTarget_REVOCATION_TARGET_TASK, Id: fmt.Sprintf("rm-%d-%d-%d-%d", run, w, n, i), Reason: "load"}
			}
			_, err := of(w).RevokeMany(asApp(ctx), &batonv1.RevokeManyRequest{Targets: targets})
			return err
		}, nil
	}
	return nil, fmt.Errorf("unknown -rpc %q", rpc)
}

// measure runs the closed loop: warm-up first, then `duration` counted.
func measure(do op, workers int, warmup, duration time.Duration) result {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    = map[string]int{}
		wg        sync.WaitGroup
	)
	start := time.Now().Add(warmup)
	end := start.Add(duration)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myErrors := map[string]int{}
			for n := 0; ; n++ {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				err := do(ctx, w, n)
				cancel()
				if t0.Before(start) {
					continue
				}
				if err != nil {
					myErrors[status.Code(err).String()]++
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			for k, v := range myErrors {
				errors[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := summarise(latencies, duration)
	res.Concurrency = workers
	res.Errors = errors
	return res
}

// summarise sorts the latencies and computes the figures both modes share.
func summarise(latencies []time.Duration, duration time.Duration) result {
	slices.Sort(latencies)
	ms := func(p float64) float64 {
		if len(latencies) == 0 {
			return 0 // JSON has no NaN; Calls says there were none
		}
		i := min(len(latencies)-1, int(float64(len(latencies))*p))
		return float64(latencies[i].Microseconds()) / 1000
	}
	secs := duration.Seconds()
	return result{
		Seconds:   secs,
		Calls:     len(latencies),
		PerSecond: float64(len(latencies)) / secs,
		P50ms:     ms(0.50),
		P99ms:     ms(0.99),
		P999ms:    ms(0.999),
	}
}

// measureOpen runs the open loop: call i is scheduled at i/rate seconds, the
// first `warmup` of them not counted. A call waits for a free in-flight slot;
// its latency runs from its scheduled time, so that wait is measured rather
// than hidden. Calls are not sent after the window ends.
func measureOpen(do op, rate float64, maxInFlight, workers int, warmup, duration time.Duration) result {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errors    = map[string]int{}
		wg        sync.WaitGroup
		sent      int
		late      int
		dropped   int
	)
	slots := make(chan struct{}, maxInFlight)
	t0 := time.Now()
	start := t0.Add(warmup)
	end := start.Add(duration)
	at := func(i int) time.Time { return t0.Add(time.Duration(float64(i) / rate * float64(time.Second))) }
	for i := 0; ; i++ {
		scheduled := at(i)
		if !scheduled.Before(end) {
			break
		}
		time.Sleep(time.Until(scheduled))
		counted := !scheduled.Before(start)
		waited := false
		select {
		case slots <- struct{}{}:
		default:
			slots <- struct{}{}
			waited = true
		}
		now := time.Now()
		if waited && !now.Before(end) {
			// Held back by the in-flight bound until the window closed: this
			// call and every one scheduled after it in the window.
			<-slots
			for j := i; at(j).Before(end); j++ {
				if !at(j).Before(start) {
					dropped++
				}
			}
			break
		}
		if counted {
			sent++
			if now.Sub(scheduled) > lateAfter {
				late++
			}
		}
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := do(ctx, n%workers, n)
			took := time.Since(scheduled)
			cancel()
			<-slots
			if !counted {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errors[status.Code(err).String()]++
				return
			}
			latencies = append(latencies, took)
		}(i)
	}
	wg.Wait()
	res := summarise(latencies, duration)
	res.Concurrency = maxInFlight
	res.Errors = errors
	res.Rate = rate
	res.Sent = sent
	res.Late = late
	res.Dropped = dropped
	return res
}
