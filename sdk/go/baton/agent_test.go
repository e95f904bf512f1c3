package baton_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// seenCall is what one call brought to agentFake.
type seenCall struct {
	method        string
	authorization []string
	proof         []string
	revoke        *batonv1.RevokeRequest
}

// agentFake records the metadata of the agent calls it gets.
type agentFake struct {
	batonv1.UnimplementedBrokerServiceServer
	mu    sync.Mutex
	calls []seenCall
}

func (f *agentFake) record(ctx context.Context, method string, revoke *batonv1.RevokeRequest) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, seenCall{method: method, authorization: md.Get("authorization"), proof: md.Get(baton.ProofMetadataKey), revoke: revoke})
}

func (f *agentFake) last(t *testing.T) seenCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("the fake broker got no call")
	}
	return f.calls[len(f.calls)-1]
}

func (f *agentFake) Delegate(ctx context.Context, _ *batonv1.DelegateRequest) (*batonv1.DelegateResponse, error) {
	f.record(ctx, batonv1.BrokerService_Delegate_FullMethodName, nil)
	return &batonv1.DelegateResponse{AccessToken: "child"}, nil
}

func (f *agentFake) Revoke(ctx context.Context, req *batonv1.RevokeRequest) (*batonv1.RevokeResponse, error) {
	f.record(ctx, batonv1.BrokerService_Revoke_FullMethodName, req)
	return &batonv1.RevokeResponse{Revocation: &batonv1.Revocation{Target: req.GetTarget(), Id: "the-token-id"}}, nil
}

func (f *agentFake) Issue(ctx context.Context, _ *batonv1.IssueRequest) (*batonv1.IssueResponse, error) {
	f.record(ctx, batonv1.BrokerService_Issue_FullMethodName, nil)
	return &batonv1.IssueResponse{AccessToken: "issued"}, nil
}

func startAgentFake(t *testing.T, opts ...baton.Option) (*agentFake, *baton.Client) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	fake := &agentFake{}
	batonv1.RegisterBrokerServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	dialer := grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) })
	client, err := baton.Dial("passthrough:///bufnet", append(opts, baton.WithDialOptions(dialer))...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return fake, client
}

// checkAgentCall checks that a call carried exactly the agent's bearer token
// and one proof made for method and token.
func checkAgentCall(t *testing.T, call seenCall, method, token string, before time.Time) string {
	t.Helper()
	if len(call.authorization) != 1 || call.authorization[0] != "Bearer "+token {
		t.Errorf("authorization = %q, want exactly [Bearer %s]", call.authorization, token)
	}
	if len(call.proof) != 1 {
		t.Fatalf("baton-proof = %q, want one proof", call.proof)
	}
	d := decodeProof(t, call.proof[0])
	checkClaims(t, d, method, token, before, time.Now())
	return d.claims.JTI
}

func TestAgentCredentialsProveEachCall(t *testing.T) {
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	const token = "parent.token.value"
	fake, client := startAgentFake(t, baton.WithAgentCredentials(token, key))
	ctx := t.Context()
	before := time.Now()

	if _, err := client.Delegate(ctx, &batonv1.DelegateRequest{Scopes: []string{"read:records:1"}}); err != nil {
		t.Fatalf("Delegate: %v", err)
	}
	first := checkAgentCall(t, fake.last(t), batonv1.BrokerService_Delegate_FullMethodName, token, before)

	if _, err := client.Delegate(ctx, &batonv1.DelegateRequest{Scopes: []string{"read:records:1"}}); err != nil {
		t.Fatalf("Delegate: %v", err)
	}
	second := checkAgentCall(t, fake.last(t), batonv1.BrokerService_Delegate_FullMethodName, token, before)
	if first == second {
		t.Errorf("two calls carried the same jti %q", first)
	}

	// The proof names whichever method is called.
	if _, err := client.Issue(ctx, &batonv1.IssueRequest{}); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	checkAgentCall(t, fake.last(t), batonv1.BrokerService_Issue_FullMethodName, token, before)
}

func TestAgentCredentialsWithoutKeySendNoProof(t *testing.T) {
	fake, client := startAgentFake(t, baton.WithAgentCredentials("unbound.token", nil))
	if _, err := client.Delegate(t.Context(), &batonv1.DelegateRequest{}); err != nil {
		t.Fatalf("Delegate: %v", err)
	}
	call := fake.last(t)
	if len(call.authorization) != 1 || call.authorization[0] != "Bearer unbound.token" {
		t.Errorf("authorization = %q, want [Bearer unbound.token]", call.authorization)
	}
	if len(call.proof) != 0 {
		t.Errorf("baton-proof = %q, want none without a key", call.proof)
	}
}

// An app client that acts as an agent for one call sends the agent's
// credentials only, not its own as well.
func TestDelegateAsAndReleaseReplaceClientCredentials(t *testing.T) {
	key, err := baton.GenerateAgentKeyWithAlgorithm(baton.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	const token = "agent.token.value"
	fake, client := startAgentFake(t, baton.WithBasicAuth("app-1", "secret"))
	ctx := t.Context()
	before := time.Now()

	resp, err := client.DelegateAs(ctx, token, key, &batonv1.DelegateRequest{Scopes: []string{"read:records:1"}})
	if err != nil {
		t.Fatalf("DelegateAs: %v", err)
	}
	if resp.GetAccessToken() != "child" {
		t.Errorf("access_token = %q, want child", resp.GetAccessToken())
	}
	checkAgentCall(t, fake.last(t), batonv1.BrokerService_Delegate_FullMethodName, token, before)

	rev, err := client.Release(ctx, token, key, "done")
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if rev.GetId() != "the-token-id" {
		t.Errorf("revocation.id = %q, want the-token-id", rev.GetId())
	}
	call := fake.last(t)
	checkAgentCall(t, call, batonv1.BrokerService_Revoke_FullMethodName, token, before)
	if call.revoke.GetTarget() != batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN || call.revoke.GetId() != "" || call.revoke.GetReason() != "done" {
		t.Errorf("Revoke request = %v, want target TOKEN, empty id, reason done", call.revoke)
	}

	// The Client's own credentials are back for the next call.
	if _, err := client.Issue(ctx, &batonv1.IssueRequest{}); err != nil {
		t.Fatalf("Issue: %v", err)
	}
	call = fake.last(t)
	if len(call.authorization) != 1 || call.authorization[0][:6] != "Basic " || len(call.proof) != 0 {
		t.Errorf("app call after DelegateAs: authorization %q, proof %q; want the app's Basic only", call.authorization, call.proof)
	}
}
