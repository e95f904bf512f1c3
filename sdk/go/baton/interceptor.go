package baton

import (
	"context"
	"regexp"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// InterceptorOptions configure [UnaryServerInterceptor] and
// [StreamServerInterceptor].
type InterceptorOptions struct {
	// RequiredScopes returns the scopes a method (full path,
	// `/pkg.Service/Method`) needs; nil means a valid token and no
	// particular scope.
	RequiredScopes func(method string) []string
	// PublicMethods are full paths of methods that need no token at all
	// (health checks, reflection).
	PublicMethods []string
}

type claimsKey struct{}

// ClaimsFromContext returns the claims the interceptor verified for this
// call; false for a public method or without the interceptor.
func ClaimsFromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// UnaryServerInterceptor verifies every call's token (`authorization:
// Bearer <token>`) and, for a key-bound token, its proof (`baton-proof`
// metadata, `htm` the full method) before the handler runs, which gets the
// claims through [ClaimsFromContext]. Refusals are, as in the TypeScript
// SDK's middleware, with a Baton ErrorInfo:
//
//	no Bearer token           UNAUTHENTICATED    CREDENTIALS_MISSING
//	scope not covered         PERMISSION_DENIED  TOKEN_INVALID, token_status
//	view stale                UNAVAILABLE        UNAVAILABLE
//	proof missing/bad/replay  UNAUTHENTICATED    PROOF_REQUIRED / PROOF_INVALID / PROOF_REPLAYED
//	anything else             UNAUTHENTICATED    TOKEN_INVALID, token_status
func UnaryServerInterceptor(v *Verifier, opts InterceptorOptions) grpc.UnaryServerInterceptor {
	a := newAuthorizer(v, opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is [UnaryServerInterceptor] for streaming calls.
func StreamServerInterceptor(v *Verifier, opts InterceptorOptions) grpc.StreamServerInterceptor {
	a := newAuthorizer(v, opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, claimsStream{ss, ctx})
	}
}

type claimsStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s claimsStream) Context() context.Context { return s.ctx }

type authorizer struct {
	v      *Verifier
	scopes func(string) []string
	public map[string]bool
}

func newAuthorizer(v *Verifier, opts InterceptorOptions) *authorizer {
	a := &authorizer{v: v, scopes: opts.RequiredScopes, public: map[string]bool{}}
	for _, m := range opts.PublicMethods {
		a.public[m] = true
	}
	return a
}

var bearerRE = regexp.MustCompile(`(?i)^Bearer +([^\s]+)\s*$`)

func (a *authorizer) check(ctx context.Context, method string) (context.Context, error) {
	if a.public[method] {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	auth := md.Get("authorization")
	var token string
	if len(auth) == 1 {
		if m := bearerRE.FindStringSubmatch(auth[0]); m != nil {
			token = m[1]
		}
	}
	if token == "" {
		return nil, refusal(codes.Unauthenticated, "credentials missing: send authorization: Bearer <token>", "CREDENTIALS_MISSING", nil)
	}
	var proof string
	switch proofs := md.Get(ProofMetadataKey); len(proofs) {
	case 0:
	case 1:
		proof = proofs[0]
	default:
		proof = "several proofs" // not a JWS: refused as invalid
	}
	var required []string
	if a.scopes != nil {
		required = a.scopes(method)
	}
	r := a.v.Verify(ctx, token, VerifyOptions{RequiredScopes: required, Proof: proof, HTM: method})
	if r.OK {
		return context.WithValue(ctx, claimsKey{}, r.Claims), nil
	}
	switch r.Reason {
	case ReasonStale:
		return nil, refusal(codes.Unavailable, "the service cannot check revocations right now; retry", "UNAVAILABLE", nil)
	case ReasonProofRequired, ReasonProofInvalid, ReasonProofReplayed:
		return nil, refusal(codes.Unauthenticated, "token refused: "+string(r.Reason), string(r.Reason), nil)
	case ReasonInsufficientScope:
		return nil, refusal(codes.PermissionDenied, "token refused: "+string(r.Reason), "TOKEN_INVALID", map[string]string{"token_status": string(r.Reason)})
	default:
		return nil, refusal(codes.Unauthenticated, "token refused: "+string(r.Reason), "TOKEN_INVALID", map[string]string{"token_status": string(r.Reason)})
	}
}

func refusal(code codes.Code, msg, reason string, md map[string]string) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: md}); err == nil {
		st = withInfo
	}
	return st.Err()
}
