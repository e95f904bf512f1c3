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
	// Reporter, when set, is given every decision about a token whose
	// signature verified: allowed, with the code the call ended with as
	// outcome (`OK`, `NOT_FOUND`, ...), or denied, with the reason
	// (`TOKEN_STATUS_<status>` for a TokenStatus, else the verifier's:
	// STALE, PROOF_REQUIRED, ...) and the refusal's code. The resource is
	// the method path; the scope, the first the method needs. Report only
	// buffers, so this adds no I/O to the call. A call with no token, or
	// one whose signature did not verify, is not reported: it names no
	// trustworthy token and agent.
	Reporter *Reporter
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
		ctx, allowed, err := a.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		res, err := handler(ctx, req)
		a.reportAllowed(allowed, info.FullMethod, err)
		return res, err
	}
}

// StreamServerInterceptor is [UnaryServerInterceptor] for streaming calls.
func StreamServerInterceptor(v *Verifier, opts InterceptorOptions) grpc.StreamServerInterceptor {
	a := newAuthorizer(v, opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, allowed, err := a.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		err = handler(srv, claimsStream{ss, ctx})
		a.reportAllowed(allowed, info.FullMethod, err)
		return err
	}
}

type claimsStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s claimsStream) Context() context.Context { return s.ctx }

type authorizer struct {
	v        *Verifier
	scopes   func(string) []string
	public   map[string]bool
	reporter *Reporter
}

// allowedCall is what is reported about an allowed call once it ends.
type allowedCall struct {
	claims *Claims
	scope  string
}

// tokenStatuses are the verifier reasons that are TokenStatus values,
// reported as `TOKEN_STATUS_<reason>`.
var tokenStatuses = map[Reason]bool{
	ReasonMalformed: true, ReasonAlgorithmNotAllowed: true, ReasonUnknownKey: true, ReasonBadSignature: true,
	ReasonExpired: true, ReasonNotYetValid: true, ReasonWrongIssuer: true, ReasonWrongAudience: true,
	ReasonRevoked: true, ReasonInsufficientScope: true, ReasonWrongType: true,
}

func (a *authorizer) reportAllowed(c *allowedCall, method string, err error) {
	if a.reporter == nil || c == nil {
		return
	}
	a.reporter.Report(AccessDecision{TokenID: c.claims.TokenID, AgentID: c.claims.AgentID, Allowed: true, Scope: c.scope, Resource: method, Outcome: codeName(status.Code(err))})
}

func (a *authorizer) reportDenied(r Result, method, scope string, code codes.Code) {
	if a.reporter == nil || r.Claims == nil {
		return
	}
	reason := string(r.Reason)
	if tokenStatuses[r.Reason] {
		reason = "TOKEN_STATUS_" + reason
	}
	a.reporter.Report(AccessDecision{TokenID: r.Claims.TokenID, AgentID: r.Claims.AgentID, Scope: scope, Resource: method, Reason: reason, Outcome: codeName(code)})
}

func newAuthorizer(v *Verifier, opts InterceptorOptions) *authorizer {
	a := &authorizer{v: v, scopes: opts.RequiredScopes, public: map[string]bool{}, reporter: opts.Reporter}
	for _, m := range opts.PublicMethods {
		a.public[m] = true
	}
	return a
}

var bearerRE = regexp.MustCompile(`(?i)^Bearer +([^\s]+)\s*$`)

func (a *authorizer) check(ctx context.Context, method string) (context.Context, *allowedCall, error) {
	if a.public[method] {
		return ctx, nil, nil
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
		return nil, nil, refusal(codes.Unauthenticated, "credentials missing: send authorization: Bearer <token>", "CREDENTIALS_MISSING", nil)
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
	var scope string
	if len(required) > 0 {
		scope = required[0]
	}
	if r.OK {
		return context.WithValue(ctx, claimsKey{}, r.Claims), &allowedCall{claims: r.Claims, scope: scope}, nil
	}
	var err error
	switch r.Reason {
	case ReasonStale:
		err = refusal(codes.Unavailable, "the service cannot check revocations right now; retry", "UNAVAILABLE", nil)
	case ReasonProofRequired, ReasonProofInvalid, ReasonProofReplayed:
		err = refusal(codes.Unauthenticated, "token refused: "+string(r.Reason), string(r.Reason), nil)
	case ReasonInsufficientScope:
		err = refusal(codes.PermissionDenied, "token refused: "+string(r.Reason), "TOKEN_INVALID", map[string]string{"token_status": string(r.Reason)})
	default:
		err = refusal(codes.Unauthenticated, "token refused: "+string(r.Reason), "TOKEN_INVALID", map[string]string{"token_status": string(r.Reason)})
	}
	a.reportDenied(r, method, scope, status.Code(err))
	return nil, nil, err
}

func refusal(code codes.Code, msg, reason string, md map[string]string) error {
	st := status.New(code, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain, Metadata: md}); err == nil {
		st = withInfo
	}
	return st.Err()
}
