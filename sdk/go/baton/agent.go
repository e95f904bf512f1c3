package baton

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// AgentCredentials returns per-RPC credentials for an agent: its token as
// `authorization: Bearer <token>` and, when key is not nil, a fresh proof of
// possession ([AgentKey.Proof]) in `baton-proof` metadata on every call,
// bound to the method being called and to token. A key-bound token (one
// issued or delegated with `agent_public_key_jwk`) needs the key; without
// it the broker answers PROOF_REQUIRED.
//
// Use them for a whole connection with [WithAgentCredentials], or for one
// call with [AsAgent]. Like [BearerToken], they do not demand a secure
// transport, and never send a token longer than [MaxTokenLength].
func AgentCredentials(token string, key *AgentKey) credentials.PerRPCCredentials {
	return agentCredentials{token: token, key: key}
}

type agentCredentials struct {
	token string
	key   *AgentKey
}

// GetRequestMetadata implements credentials.PerRPCCredentials. gRPC calls
// it for every attempt of every call (retries included), so each attempt
// gets its own proof.
func (a agentCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if err := checkToken(a.token); err != nil {
		return nil, err
	}
	md := map[string]string{"authorization": "Bearer " + a.token}
	if a.key == nil {
		return md, nil
	}
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok || ri.Method == "" {
		return nil, errors.New("baton: the called gRPC method is unknown, so no proof of possession can be made for it")
	}
	proof, err := a.key.Proof(ri.Method, a.token)
	if err != nil {
		return nil, fmt.Errorf("baton: signing a proof of possession: %w", err)
	}
	md[ProofMetadataKey] = proof
	return md, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (agentCredentials) RequireTransportSecurity() bool { return false }

func (a agentCredentials) bearerToken() string { return a.token }

// WithAgentCredentials authenticates every call as an agent (see
// [AgentCredentials]): a Client for one agent's own calls.
func WithAgentCredentials(token string, key *AgentKey) Option {
	return func(o *options) { o.perRPC = AgentCredentials(token, key) }
}

// AsAgent is a call option that authenticates one call as an agent (see
// [AgentCredentials]), instead of with the credentials given to [Dial]:
//
//	resp, err := client.Delegate(ctx, req, baton.AsAgent(token, key))
//
// Any grpc.PerRPCCredentials call option replaces the Client's credentials
// for that call in the same way.
func AsAgent(token string, key *AgentKey) grpc.CallOption {
	return grpc.PerRPCCredentials(AgentCredentials(token, key))
}

// DelegateAs asks, as the agent holding token (and key, when the token is
// key-bound), for a token for a sub-agent with the same or less authority.
// It is Delegate with [AsAgent](token, key).
//
// To bind the child token to the sub-agent's own key, set
// req.AgentPublicKeyJwk to that key's [AgentKey.PublicJWK].
func (c *Client) DelegateAs(ctx context.Context, token string, key *AgentKey, req *batonv1.DelegateRequest, opts ...grpc.CallOption) (*batonv1.DelegateResponse, error) {
	return c.Delegate(ctx, req, append(opts, AsAgent(token, key))...)
}

// RenewAs trades, as the agent holding token (and key, when the token is
// key-bound), that token for a new one with the same agent, scopes,
// audiences, lineage and key binding, whose claims name the old token
// (RenewedFromTokenId). The old token, and everything delegated from it, is
// revoked in the same transaction. Use the same key with the new token. It
// is Renew with [AsAgent](token, key); req may be nil for the broker's
// default TTL. Once the app's task lifetime maximum is reached it fails with
// reason TASK_LIFETIME_EXCEEDED (FailedPrecondition, metadata
// `task_expire_time`): the app must issue a new token.
func (c *Client) RenewAs(ctx context.Context, token string, key *AgentKey, req *batonv1.RenewRequest, opts ...grpc.CallOption) (*batonv1.RenewResponse, error) {
	if req == nil {
		req = &batonv1.RenewRequest{}
	}
	return c.Renew(ctx, req, append(opts, AsAgent(token, key))...)
}

// Release revokes, as the agent holding token (and key, when the token is
// key-bound), that token and every token delegated from it, at once and
// persistently: what an agent calls when its work is done. reason is for
// the audit trail and may be empty.
func (c *Client) Release(ctx context.Context, token string, key *AgentKey, reason string, opts ...grpc.CallOption) (*batonv1.Revocation, error) {
	// TOKEN with an empty id: "the token I am calling with".
	resp, err := c.Revoke(ctx, &batonv1.RevokeRequest{
		Target: batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN,
		Reason: reason,
	}, append(opts, AsAgent(token, key))...)
	if err != nil {
		return nil, err
	}
	return resp.GetRevocation(), nil
}

// overrideKey marks a call's context when the call brings its own per-RPC
// credentials, so that the Client's are not sent as well (two
// `authorization` headers).
type overrideKey struct{}

// withCallCredentials marks ctx when opts hold per-RPC credentials, and
// refuses them when they carry a bearer token longer than MaxTokenLength:
// the call then fails before a connection is even chosen.
func withCallCredentials(ctx context.Context, opts []grpc.CallOption) (context.Context, error) {
	for _, opt := range opts {
		var creds credentials.PerRPCCredentials
		switch o := opt.(type) {
		case grpc.PerRPCCredsCallOption:
			creds = o.Creds
		case *grpc.PerRPCCredsCallOption:
			if o != nil {
				creds = o.Creds
			}
		}
		if creds != nil {
			if err := checkCredentials(creds); err != nil {
				return ctx, err
			}
			return context.WithValue(ctx, overrideKey{}, true), nil
		}
	}
	return ctx, nil
}

// dialCredentials are the credentials given to [Dial]; they step aside for
// a call that brings its own.
type dialCredentials struct{ credentials.PerRPCCredentials }

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (d dialCredentials) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	if ctx.Value(overrideKey{}) != nil {
		return nil, nil
	}
	return d.PerRPCCredentials.GetRequestMetadata(ctx, uri...)
}
