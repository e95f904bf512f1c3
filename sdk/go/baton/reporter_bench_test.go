package baton_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
)

// What Reporter.Report costs on the verification path: a decision buffered,
// and one dropped because the buffer is full. The broker address is dead, so
// nothing is ever sent. bench/access-report.sh prints the medians.
func benchReporter(b *testing.B, bufferSize int) *baton.Reporter {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	r, err := baton.NewReporter(baton.ReporterOptions{
		Target: addr, ResourceServerID: "rs_bench", ResourceServerSecret: "secret", Audience: "ehr-api",
		BufferSize: bufferSize, FlushInterval: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		_ = r.Close(ctx)
	})
	return r
}

var benchDecision = baton.AccessDecision{
	TokenID:  "tok_6f1d9c0e2b7a4c3d",
	AgentID:  "spiffe://baton.local/app/app_Nd1pJgiWaarTB3IuL1LXj0/task/visit-77/agent/a1b2c3",
	Allowed:  true,
	Scope:    "read:records:P-1042",
	Resource: "GET /records/P-1042",
	Outcome:  "200",
}

func BenchmarkReportBuffered(b *testing.B) {
	r := benchReporter(b, b.N+1)
	b.ResetTimer()
	for range b.N {
		r.Report(benchDecision)
	}
}

func BenchmarkReportDropped(b *testing.B) {
	r := benchReporter(b, 1)
	r.Report(benchDecision)
	b.ResetTimer()
	for range b.N {
		r.Report(benchDecision)
	}
}
