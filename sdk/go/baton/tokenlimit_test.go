package baton_test

// Issue 7 item 6, SDK side: a bearer token longer than MaxTokenLength is
// refused before anything is sent (the broker would close the whole
// connection with GOAWAY), however it is given to the SDK.

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

func wantTooLong(t *testing.T, what string, err error, length int) {
	t.Helper()
	var tooLong *baton.TokenTooLongError
	if !errors.As(err, &tooLong) || tooLong.Length != length {
		t.Fatalf("%s: err = %v (%T), want a *baton.TokenTooLongError of length %d", what, err, err, length)
	}
	if strings.Contains(err.Error(), "xxxxxxxx") {
		t.Fatalf("%s: the error contains the token", what)
	}
}

func TestOversizedBearerTokenIsNeverSent(t *testing.T) {
	if baton.MaxTokenLength != 16384 {
		t.Fatalf("MaxTokenLength = %d, want 16384", baton.MaxTokenLength)
	}
	fake, client := startAgentFake(t, baton.WithBasicAuth("app", "secret"))
	ctx := t.Context()
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", baton.MaxTokenLength+1)
	scopes := &batonv1.DelegateRequest{Scopes: []string{"read:records:P-1"}}

	_, err = client.DelegateAs(ctx, long, key, scopes)
	wantTooLong(t, "DelegateAs", err, len(long))
	_, err = client.Release(ctx, long, nil, "done")
	wantTooLong(t, "Release", err, len(long))
	_, err = client.Issue(ctx, &batonv1.IssueRequest{}, grpc.PerRPCCredentials(baton.BearerToken(long)))
	wantTooLong(t, "Issue with a BearerToken call option", err, len(long))

	_, err = baton.Dial("127.0.0.1:1", baton.WithBearerToken(long))
	wantTooLong(t, "Dial WithBearerToken", err, len(long))
	_, err = baton.Dial("127.0.0.1:1", baton.WithAgentCredentials(long, key))
	wantTooLong(t, "Dial WithAgentCredentials", err, len(long))
	_, err = baton.NewSubscriber(baton.SubscriberOptions{Target: "127.0.0.1:1", Credentials: baton.BearerToken(long)})
	wantTooLong(t, "NewSubscriber", err, len(long))

	fake.mu.Lock()
	n := len(fake.calls)
	fake.mu.Unlock()
	if n != 0 {
		t.Fatalf("the broker got %d calls with an oversized token, want none", n)
	}

	// At the limit exactly, the token goes.
	exact := strings.Repeat("y", baton.MaxTokenLength)
	if _, err := client.DelegateAs(ctx, exact, key, scopes); err != nil {
		t.Fatalf("DelegateAs with a token of exactly MaxTokenLength: %v", err)
	}
	if got := fake.last(t).authorization; len(got) != 1 || got[0] != "Bearer "+exact {
		t.Fatalf("the token at the limit did not arrive whole")
	}
}

// The credentials alone, on a connection of the caller's own: the call
// fails on the client and the server sees nothing.
func TestOversizedBearerTokenOnAPlainConnection(t *testing.T) {
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	fake := &agentFake{}
	batonv1.RegisterBrokerServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", baton.MaxTokenLength+1)
	for _, creds := range []struct {
		name string
		c    grpc.DialOption
	}{
		{"BearerToken", grpc.WithPerRPCCredentials(baton.BearerToken(long))},
		{"AgentCredentials", grpc.WithPerRPCCredentials(baton.AgentCredentials(long, key))},
	} {
		conn, err := grpc.NewClient("passthrough:///bufnet", creds.c,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
		if err != nil {
			t.Fatal(err)
		}
		_, err = batonv1.NewBrokerServiceClient(conn).Delegate(t.Context(), &batonv1.DelegateRequest{})
		_ = conn.Close()
		if err == nil || !strings.Contains(err.Error(), "MaxTokenLength") || strings.Contains(err.Error(), "xxxxxxxx") {
			t.Fatalf("%s: err = %v, want the SDK's refusal, without the token", creds.name, err)
		}
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.calls) != 0 {
		t.Fatalf("the server got %d calls, want none", len(fake.calls))
	}
}
