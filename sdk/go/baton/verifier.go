package baton

// Verifier: offline verification of Baton access tokens at a resource
// server (DESIGN §2, §3, §5, §6), with no broker round trip per request, as
// the TypeScript SDK's TokenVerifier.
//
// Checks, in this order, each failure a reason:
//   form (compact JWS, at most 16 KiB)                     MALFORMED
//   alg ES256 or EdDSA, and equal to the key's own alg     ALGORITHM_NOT_ALLOWED
//   typ at+jwt                                             WRONG_TYPE
//   kid in the key set (refetched, rate-limited, if not)   UNKNOWN_KEY
//   signature (ES256: low-S only)                          BAD_SIGNATURE
//   claims present and well-typed                          MALFORMED
//   iss                                                    WRONG_ISSUER
//   exp / nbf, with leeway                                 EXPIRED / NOT_YET_VALID
//   aud contains the configured audience                   WRONG_AUDIENCE
//   required scopes covered by the token's scopes          INSUFFICIENT_SCOPE
//   revocation view fresh within MaxStaleness              STALE
//   token, lineage, agent, chain, task, app not revoked    REVOKED
//   cnf.jkt: a proof of possession for this call           PROOF_REQUIRED / PROOF_INVALID / PROOF_REPLAYED
//
// STALE comes after the checks that need no revocation data, so a token that
// is expired or for another audience is reported as such even while the
// stream is down; everything that would otherwise pass is refused. The proof
// comes last so that only a proof of an otherwise acceptable call takes a
// place in the replay cache. The algorithm is always the key's, never the
// token's. Hostile input never panics nor errors: every failure is a Result.

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	"github.com/baton-dev/baton/sdk/go/batonv1"
)

// Reason is why a [Verifier] refused a token.
type Reason string

// The reasons of a refusal.
const (
	ReasonMalformed           Reason = "MALFORMED"
	ReasonAlgorithmNotAllowed Reason = "ALGORITHM_NOT_ALLOWED"
	ReasonWrongType           Reason = "WRONG_TYPE"
	ReasonUnknownKey          Reason = "UNKNOWN_KEY"
	ReasonBadSignature        Reason = "BAD_SIGNATURE"
	ReasonWrongIssuer         Reason = "WRONG_ISSUER"
	ReasonExpired             Reason = "EXPIRED"
	ReasonNotYetValid         Reason = "NOT_YET_VALID"
	ReasonWrongAudience       Reason = "WRONG_AUDIENCE"
	ReasonInsufficientScope   Reason = "INSUFFICIENT_SCOPE"
	ReasonStale               Reason = "STALE"
	ReasonRevoked             Reason = "REVOKED"
	ReasonProofRequired       Reason = "PROOF_REQUIRED"
	ReasonProofInvalid        Reason = "PROOF_INVALID"
	ReasonProofReplayed       Reason = "PROOF_REPLAYED"
)

// Claims are the claims of a verified token, decoded. The embedded
// [RevocationFacts] hold TokenID (`jti`), AgentID (`sub`), AppID
// (`client_id`), TaskID, Lineage and RootIssuedAt.
type Claims struct {
	RevocationFacts
	// OrchestrationID is the orchestration run; "" when none.
	OrchestrationID string
	// HumanPrincipal is the human the work is done for; "" when none.
	HumanPrincipal string
	// Scopes is `scope`, split on spaces.
	Scopes []string
	// Audiences is `aud`.
	Audiences []string
	// Issuer is `iss`.
	Issuer string
	// IssuedAt, NotBefore and ExpiresAt are `iat`, `nbf` and `exp`.
	IssuedAt, NotBefore, ExpiresAt time.Time
	// Depth is the delegation depth: the number of ancestors.
	Depth int
	// KeyThumbprint is `cnf.jkt`, the thumbprint of the key the token is
	// bound to; "" when not bound.
	KeyThumbprint string
	// Approval is `apr`, the human approval the token was minted under; nil
	// when none was needed.
	Approval *TokenApproval
	// RenewedFromTokenID is `rnw`, the token this one replaced through
	// Renew; "" for an issued or delegated token.
	RenewedFromTokenID string
}

// TokenApproval is claim `apr`: the approval a token was minted under.
type TokenApproval struct {
	// ApprovalID is `apr.id`, the approval's id (`apr_...`).
	ApprovalID string
	// ApproverIDs is `apr.by`, the approvers who approved it, in order.
	ApproverIDs []string
}

// Result is a [Verifier]'s verdict on a token.
type Result struct {
	// OK is true when the token is accepted.
	OK bool
	// Reason says why not; "" when OK.
	Reason Reason
	// Detail is a short explanation for logs. It never contains the token.
	Detail string
	// Claims are set when the signature verified (an accepted token, or a
	// revoked or expired one, say); nil otherwise.
	Claims *Claims
}

// RevocationView is what a [Verifier] needs of a revocation view; a
// [*Subscriber] is one. A view that also has OnKeySet(func(string)) func()
// (as the Subscriber) has its key-set changes followed.
type RevocationView interface {
	// IsRevoked reports whether the token is revoked.
	IsRevoked(RevocationFacts) bool
	// FreshAt returns the local time up to which the view is known
	// complete; the zero Time when never.
	FreshAt() time.Time
}

type keySetSource interface {
	OnKeySet(func(jwksJSON string)) (unsubscribe func())
}

// KeySetFetcher returns the broker's JWK set, as JSON (`{"keys":[...]}`).
type KeySetFetcher func(ctx context.Context) ([]byte, error)

// KeySetFromClient fetches the key set with the broker's GetKeySet.
func KeySetFromClient(c *Client) KeySetFetcher {
	return func(ctx context.Context) ([]byte, error) {
		resp, err := c.GetKeySet(ctx, &batonv1.GetKeySetRequest{})
		if err != nil {
			return nil, err
		}
		return []byte(resp.GetJwksJson()), nil
	}
}

// VerifierOptions configure [NewVerifier]. For the durations and
// ReplayCacheSize, zero means the default and a negative value means none.
type VerifierOptions struct {
	// Audience is this resource server's name: a token is accepted only if
	// its `aud` contains it. Required.
	Audience string
	// Issuer is the broker's issuer (its BATON_ISSUER, by default
	// "https://baton.local"). Required.
	Issuer string
	// Keys fetches the key set (see [KeySetFromClient]). Required.
	Keys KeySetFetcher
	// Revocations is the revocation view, normally a started [*Subscriber],
	// whose key-set changes are then followed. Required.
	Revocations RevocationView
	// MaxStaleness: refuse everything (STALE) when the view is older than
	// this. Default 15 s.
	MaxStaleness time.Duration
	// Leeway is the clock-skew leeway on exp and nbf: a token is accepted
	// until exp + Leeway. Default 5 s: enough for the skew between
	// well-run clocks, and a token outlives its exp by no more. The broker
	// keeps a revocation in its stream for 30 s past the token's exp (by
	// default), so a Leeway above that could let a revoked token through.
	Leeway time.Duration
	// ProofWindow is how far a proof's iat may be from now. Default 30 s,
	// the broker's own proof window by default; independent of Leeway.
	ProofWindow time.Duration
	// ReplayCacheSize is the most proofs remembered for replay detection;
	// past it new proofs are refused. Default 100000.
	ReplayCacheSize int
	// KeyRefetchInterval: an unknown kid refetches the key set at most once
	// per this long. Default 30 s.
	KeyRefetchInterval time.Duration
	// KeyFetchTimeout bounds one key-set fetch. Default [DefaultTimeout].
	KeyFetchTimeout time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// VerifyOptions are the per-call options of [Verifier.Verify].
type VerifyOptions struct {
	// RequiredScopes are the scopes this call needs; each must be covered
	// by some scope of the token. A malformed one is covered by nothing.
	RequiredScopes []string
	// Proof is the proof of possession sent with the call (`baton-proof`),
	// if any.
	Proof string
	// HTM is what the proof's `htm` must be for this call: the full gRPC
	// method (`/pkg.Service/Method`) or, over HTTP, "<METHOD> <path>".
	// Without it a key-bound token is refused (PROOF_INVALID).
	HTM string
}

type verifyKey struct {
	alg KeyAlgorithm
	ec  *ecdsa.PublicKey
	ed  ed25519.PublicKey
}

// DefaultLeeway is the [VerifierOptions.Leeway] used when none is given.
const DefaultLeeway = 5 * time.Second

const (
	// defaultProofWindow was max(Leeway, 5 s) with the old 30 s Leeway: kept
	// at 30 s, as the broker's, now that Leeway is shorter.
	defaultProofWindow = 30 * time.Second
	maxProofLength     = 4096
	tokenType          = "at+jwt"
	// Seconds of 9999-12-31T23:59:59Z: later times are refused as malformed.
	maxNumericDate = 253402300799
)

var (
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	// P-256 (r || s) and Ed25519 signatures are both 64 bytes: 86 base64url
	// characters, the last with its two unused bits zero. Only that one
	// spelling is accepted, so a token has a single string form.
	signatureRE = regexp.MustCompile(`^[A-Za-z0-9_-]{85}[AQgw]$`)
)

// Verifier verifies Baton access tokens offline for one resource server.
// It is safe for concurrent use.
//
//	v, err := baton.NewVerifier(baton.VerifierOptions{
//		Audience:    "ehr-api",
//		Issuer:      "https://baton.local",
//		Keys:        baton.KeySetFromClient(client),
//		Revocations: subscriber,
//	})
//	if err != nil { ... }
//	defer v.Close()
//	r := v.Verify(ctx, token, baton.VerifyOptions{RequiredScopes: []string{"read:records:P-1"}, Proof: proof, HTM: "/ehr.v1.Records/Get"})
//	if !r.OK { deny(r.Reason) }
type Verifier struct {
	opts            VerifierOptions
	now             func() time.Time
	maxStaleness    time.Duration
	leeway          time.Duration
	proofWindow     time.Duration
	replayCacheSize int
	refetch         time.Duration
	fetchTimeout    time.Duration
	unsubscribe     func()

	keyMu     sync.Mutex
	keys      map[string]*verifyKey
	loaded    bool
	lastFetch time.Time
	fetching  chan struct{}

	proofMu    sync.Mutex
	seen       map[string]time.Time // jkt "." jti -> when the proof's window closes
	seenOrder  []seenEntry          // insertion order, roughly expiry order
	seenOffset int
}

type seenEntry struct {
	id    string
	until time.Time
}

func durationOption(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	default:
		return d
	}
}

// NewVerifier returns a verifier. It fetches no keys: the first token does,
// or call [Verifier.LoadKeys] to fail fast.
func NewVerifier(opts VerifierOptions) (*Verifier, error) {
	switch {
	case opts.Audience == "":
		return nil, errors.New("baton: VerifierOptions.Audience is required")
	case opts.Issuer == "":
		return nil, errors.New("baton: VerifierOptions.Issuer is required")
	case opts.Keys == nil:
		return nil, errors.New("baton: VerifierOptions.Keys is required")
	case opts.Revocations == nil:
		return nil, errors.New("baton: VerifierOptions.Revocations is required")
	}
	v := &Verifier{
		opts:         opts,
		now:          opts.Now,
		maxStaleness: durationOption(opts.MaxStaleness, 15*time.Second),
		leeway:       durationOption(opts.Leeway, DefaultLeeway),
		refetch:      durationOption(opts.KeyRefetchInterval, 30*time.Second),
		fetchTimeout: durationOption(opts.KeyFetchTimeout, DefaultTimeout),
		keys:         map[string]*verifyKey{},
		seen:         map[string]time.Time{},
	}
	v.proofWindow = durationOption(opts.ProofWindow, defaultProofWindow)
	switch {
	case opts.ReplayCacheSize == 0:
		v.replayCacheSize = 100_000
	case opts.ReplayCacheSize > 0:
		v.replayCacheSize = opts.ReplayCacheSize
	}
	if v.now == nil {
		v.now = time.Now
	}
	if src, ok := opts.Revocations.(keySetSource); ok {
		v.unsubscribe = src.OnKeySet(func(jwks string) { _ = v.SetKeySet([]byte(jwks)) })
	}
	return v, nil
}

// Close stops following the revocation view's key-set changes.
func (v *Verifier) Close() {
	if v.unsubscribe != nil {
		v.unsubscribe()
	}
}

// LoadKeys fetches the key set now (for example at start, to fail fast).
func (v *Verifier) LoadKeys(ctx context.Context) error {
	v.keyMu.Lock()
	v.lastFetch = v.now()
	v.keyMu.Unlock()
	jwks, err := v.opts.Keys(ctx)
	if err != nil {
		return err
	}
	return v.SetKeySet(jwks)
}

// SetKeySet replaces the key set with a JWK set (`{"keys":[...]}`). Keys
// that are not ES256 (EC P-256) or EdDSA (Ed25519) public signing keys with
// a kid are left out. It fails, keeping the keys it has, when jwks is not a
// JWK set.
func (v *Verifier) SetKeySet(jwks []byte) error {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &doc); err != nil || doc.Keys == nil {
		return errors.New("baton: not a JWK set")
	}
	keys := map[string]*verifyKey{}
	for _, raw := range doc.Keys {
		var jwk map[string]any
		if json.Unmarshal(raw, &jwk) != nil {
			continue
		}
		kid, ok := jwk["kid"].(string)
		if !ok {
			continue
		}
		alg, _ := jwk["alg"].(string)
		if k := importKey(jwk, alg); k != nil {
			keys[kid] = k
		}
	}
	v.keyMu.Lock()
	v.keys = keys
	v.loaded = true
	v.keyMu.Unlock()
	return nil
}

// Verify verifies a token for one call. It never panics on a hostile token
// or proof: every refusal is a Result with OK false.
func (v *Verifier) Verify(ctx context.Context, token string, opts VerifyOptions) (res Result) {
	defer func() {
		// Defence in depth: whatever slipped past the checks is a refusal,
		// not a crash.
		if recover() != nil {
			res = fail(ReasonMalformed, "the token could not be checked", nil)
		}
	}()
	return v.verify(ctx, token, opts)
}

func fail(reason Reason, detail string, claims *Claims) Result {
	return Result{Reason: reason, Detail: detail, Claims: claims}
}

func (v *Verifier) verify(ctx context.Context, token string, opts VerifyOptions) Result {
	if len(token) == 0 || len(token) > MaxTokenLength {
		return fail(ReasonMalformed, "not a token of acceptable length", nil)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || !segmentRE.MatchString(parts[0]) || !segmentRE.MatchString(parts[1]) {
		return fail(ReasonMalformed, "not a compact JWS", nil)
	}
	header := decodeJSONObject(parts[0])
	if header == nil {
		return fail(ReasonMalformed, "the header is not a JSON object", nil)
	}
	alg, _ := header["alg"].(string)
	if alg != string(ES256) && alg != string(EdDSA) {
		return fail(ReasonAlgorithmNotAllowed, "alg must be ES256 or EdDSA", nil)
	}
	if typ, _ := header["typ"].(string); typ != tokenType {
		return fail(ReasonWrongType, "typ must be "+tokenType, nil)
	}
	if _, ok := header["crit"]; ok {
		return fail(ReasonMalformed, "crit is not supported", nil)
	}
	kid, ok := header["kid"].(string)
	if !ok {
		return fail(ReasonUnknownKey, "no kid", nil)
	}
	key := v.key(ctx, kid)
	if key == nil {
		return fail(ReasonUnknownKey, "kid names no key of the broker", nil)
	}
	// Pinned: the key's own algorithm, whatever the header says.
	if KeyAlgorithm(alg) != key.alg {
		return fail(ReasonAlgorithmNotAllowed, "alg is not the key's algorithm", nil)
	}
	if !verifySignature(token, key) {
		return fail(ReasonBadSignature, "the signature does not verify", nil)
	}
	claims := parseClaims(decodeJSONObject(parts[1]))
	if claims == nil {
		return fail(ReasonMalformed, "claims are missing or of the wrong type", nil)
	}

	now := v.now()
	if claims.Issuer != v.opts.Issuer {
		return fail(ReasonWrongIssuer, "iss is not the configured issuer", claims)
	}
	if !now.Before(claims.ExpiresAt.Add(v.leeway)) {
		return fail(ReasonExpired, "exp has passed", claims)
	}
	if now.Add(v.leeway).Before(claims.NotBefore) {
		return fail(ReasonNotYetValid, "nbf is in the future", claims)
	}
	audOK := false
	for _, a := range claims.Audiences {
		if a == v.opts.Audience {
			audOK = true
			break
		}
	}
	if !audOK {
		return fail(ReasonWrongAudience, "not for "+v.opts.Audience, claims)
	}
	var missing []string
	for _, r := range opts.RequiredScopes {
		if !coveredByAny(claims.Scopes, r) {
			missing = append(missing, truncate(r, 256))
		}
	}
	if len(missing) > 0 {
		return fail(ReasonInsufficientScope, "not covered: "+strings.Join(missing, " "), claims)
	}

	fresh := v.opts.Revocations.FreshAt()
	if fresh.IsZero() || now.Sub(fresh) > v.maxStaleness {
		return fail(ReasonStale, "the revocation view is older than allowed", claims)
	}
	if v.opts.Revocations.IsRevoked(claims.RevocationFacts) {
		return fail(ReasonRevoked, "the token, an ancestor, its agent, chain, task or app was revoked", claims)
	}

	if claims.KeyThumbprint != "" {
		if opts.Proof == "" {
			return fail(ReasonProofRequired, "the token is key-bound; send a proof of possession", claims)
		}
		// A resource server that forgot to say which call this is cannot
		// check a proof: refuse.
		if opts.HTM == "" {
			return fail(ReasonProofInvalid, "the verifier was not told the call's htm", claims)
		}
		if problem := v.checkProof(opts.Proof, token, claims.KeyThumbprint, opts.HTM, now); problem != "" {
			reason := ReasonProofInvalid
			if problem == "replayed" {
				reason = ReasonProofReplayed
			}
			return fail(reason, "proof: "+problem, claims)
		}
	}
	return Result{OK: true, Claims: claims}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// key returns the key for kid, refetching the key set (at most once per
// KeyRefetchInterval once loaded) when it is unknown.
func (v *Verifier) key(ctx context.Context, kid string) *verifyKey {
	v.keyMu.Lock()
	if k := v.keys[kid]; k != nil {
		v.keyMu.Unlock()
		return k
	}
	if v.loaded && v.now().Sub(v.lastFetch) < v.refetch {
		v.keyMu.Unlock()
		return nil
	}
	if v.fetching == nil {
		done := make(chan struct{})
		v.fetching = done
		v.lastFetch = v.now()
		go func() {
			// Detached from the caller's context: others may wait on it.
			fctx, cancel := context.WithTimeout(context.Background(), v.fetchTimeout)
			defer cancel()
			if jwks, err := v.opts.Keys(fctx); err == nil {
				_ = v.SetKeySet(jwks)
			} // else keep the keys we have; the next unknown kid after the interval tries again
			v.keyMu.Lock()
			v.fetching = nil
			v.keyMu.Unlock()
			close(done)
		}()
	}
	done := v.fetching
	v.keyMu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil
	}
	v.keyMu.Lock()
	defer v.keyMu.Unlock()
	return v.keys[kid]
}

// checkProof checks a proof of possession (after RFC 9449, as the broker
// does) and returns the problem, or "" when valid.
func (v *Verifier) checkProof(proof, token, thumbprint, htm string, now time.Time) string {
	parts := strings.Split(proof, ".")
	if len(proof) > maxProofLength || len(parts) != 3 || !segmentRE.MatchString(parts[0]) || !segmentRE.MatchString(parts[1]) {
		return "not a compact JWS"
	}
	header := decodeJSONObject(parts[0])
	claims := decodeJSONObject(parts[1])
	if header == nil || claims == nil {
		return "not a compact JWS"
	}
	if typ, _ := header["typ"].(string); typ != ProofType {
		return "typ must be " + ProofType
	}
	alg, _ := header["alg"].(string)
	if alg != string(ES256) && alg != string(EdDSA) {
		return "alg must be ES256 or EdDSA"
	}
	jwk, ok := header["jwk"].(map[string]any)
	if !ok {
		return "the header must carry the public jwk"
	}
	if _, private := jwk["d"]; private {
		return "the header must carry the public jwk"
	}
	key := importKey(jwk, alg)
	if key == nil {
		return "jwk is not a valid public key for alg"
	}
	if jwkThumbprint(jwk) != thumbprint {
		return "signed by a key other than the token's"
	}
	if !verifySignature(proof, key) {
		return "bad signature"
	}
	if h, _ := claims["htm"].(string); h != htm {
		return "made for another method"
	}
	if ath, _ := claims["ath"].(string); ath != TokenHash(token) {
		return "made for another token"
	}
	iat, ok := claims["iat"].(float64)
	if !ok || math.IsNaN(iat) || math.IsInf(iat, 0) || math.Abs(iat) > maxNumericDate {
		return "iat is missing"
	}
	issuedAt := time.UnixMilli(int64(math.Round(iat * 1000)))
	if d := now.Sub(issuedAt); d > v.proofWindow || -d > v.proofWindow {
		return "stale or future iat"
	}
	jti, ok := claims["jti"].(string)
	if n := len(utf16.Encode([]rune(jti))); !ok || n < 16 || n > 128 {
		return "jti must be 16 to 128 characters"
	}
	return v.remember(thumbprint+"."+jti, issuedAt.Add(v.proofWindow), now)
}

// remember records a proof as used until until: "replayed" if seen, a
// problem if the cache is full, "" otherwise.
func (v *Verifier) remember(id string, until, now time.Time) string {
	v.proofMu.Lock()
	defer v.proofMu.Unlock()
	if seen, ok := v.seen[id]; ok && !seen.Before(now) {
		return "replayed"
	}
	// Windows are all the same length, so the oldest entries come first.
	for v.seenOffset < len(v.seenOrder) {
		e := v.seenOrder[v.seenOffset]
		if !e.until.Before(now) {
			break
		}
		if cur, ok := v.seen[e.id]; ok && cur.Equal(e.until) {
			delete(v.seen, e.id)
		}
		v.seenOrder[v.seenOffset] = seenEntry{}
		v.seenOffset++
	}
	if v.seenOffset > 1024 && v.seenOffset*2 > len(v.seenOrder) {
		v.seenOrder = append([]seenEntry(nil), v.seenOrder[v.seenOffset:]...)
		v.seenOffset = 0
	}
	if len(v.seen) >= v.replayCacheSize {
		order := v.seenOrder[:0:0]
		for _, e := range v.seenOrder[v.seenOffset:] {
			if cur, ok := v.seen[e.id]; ok && cur.Equal(e.until) {
				if e.until.Before(now) {
					delete(v.seen, e.id)
				} else {
					order = append(order, e)
				}
			}
		}
		v.seenOrder, v.seenOffset = order, 0
		// Fail closed: forgetting a live proof would let it be replayed.
		if len(v.seen) >= v.replayCacheSize {
			return "too many recent proofs to track; retry"
		}
	}
	v.seen[id] = until
	v.seenOrder = append(v.seenOrder, seenEntry{id, until})
	return ""
}

// decodeJSONObject decodes a base64url segment holding a JSON object; nil
// for anything else.
func decodeJSONObject(segment string) map[string]any {
	raw, err := base64.RawURLEncoding.DecodeString(segment)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return nil
	}
	return m
}

// importKey returns the public ES256 (EC P-256) or EdDSA (Ed25519) key of
// a JWK whose algorithm is alg; nil for anything else.
func importKey(jwk map[string]any, alg string) *verifyKey {
	if _, private := jwk["d"]; private {
		return nil
	}
	if use, ok := jwk["use"]; ok && use != "sig" {
		return nil
	}
	kty, _ := jwk["kty"].(string)
	crv, _ := jwk["crv"].(string)
	x, _ := jwk["x"].(string)
	switch {
	case alg == string(ES256) && kty == "EC" && crv == "P-256":
		y, _ := jwk["y"].(string)
		xb, err1 := base64.RawURLEncoding.DecodeString(x)
		yb, err2 := base64.RawURLEncoding.DecodeString(y)
		if err1 != nil || err2 != nil || len(xb) != 32 || len(yb) != 32 {
			return nil
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, xb...), yb...))
		if err != nil {
			return nil
		}
		return &verifyKey{alg: ES256, ec: pub}
	case alg == string(EdDSA) && kty == "OKP" && crv == "Ed25519":
		xb, err := base64.RawURLEncoding.DecodeString(x)
		if err != nil || len(xb) != ed25519.PublicKeySize {
			return nil
		}
		return &verifyKey{alg: EdDSA, ed: ed25519.PublicKey(xb)}
	default:
		return nil
	}
}

// jwkThumbprint is the RFC 7638 SHA-256 thumbprint of an EC or OKP public
// key (already accepted by importKey).
func jwkThumbprint(jwk map[string]any) string {
	m := jwkMembers{}
	m.Crv, _ = jwk["crv"].(string)
	m.Kty, _ = jwk["kty"].(string)
	m.X, _ = jwk["x"].(string)
	if m.Kty == "EC" {
		m.Y, _ = jwk["y"].(string)
	}
	canonical, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(canonical)
	return b64(sum[:])
}

func verifySignature(jws string, k *verifyKey) bool {
	dot := strings.LastIndexByte(jws, '.')
	sigText := jws[dot+1:]
	if !signatureRE.MatchString(sigText) {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(sigText)
	if err != nil || len(sig) != 64 {
		return false
	}
	data := []byte(jws[:dot])
	switch k.alg {
	case ES256:
		digest := sha256.Sum256(data)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		// Only the low-S form, as the broker: the high-S twin (r, n - s) of
		// a valid signature would be a second string for the same token or
		// proof, past any check keyed on the string.
		if s.Cmp(p256HalfN) > 0 {
			return false
		}
		return ecdsa.Verify(k.ec, digest[:], r, s)
	case EdDSA:
		return ed25519.Verify(k.ed, data, sig)
	default:
		return false
	}
}

func nonEmptyString(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok && s != ""
}

// numericDate is a JSON number of seconds, finite, positive and before the
// year 10000, as a time to the millisecond.
func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok || math.IsNaN(f) || f <= 0 || f > maxNumericDate {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(math.Round(f * 1000))), true
}

// parseClaims reads the claims as the broker signs them
// (server/crypto/tokens.ts); nil when any is missing or mistyped.
func parseClaims(p map[string]any) *Claims {
	if p == nil {
		return nil
	}
	c := &Claims{}
	var ok bool
	strs := []struct {
		name string
		dst  *string
	}{{"iss", &c.Issuer}, {"sub", &c.AgentID}, {"jti", &c.TokenID}, {"client_id", &c.AppID}, {"task_id", &c.TaskID}}
	for _, s := range strs {
		if *s.dst, ok = nonEmptyString(p[s.name]); !ok {
			return nil
		}
	}
	scope, ok := nonEmptyString(p["scope"])
	if !ok {
		return nil
	}
	c.Scopes = strings.Split(scope, " ")
	if c.IssuedAt, ok = numericDate(p["iat"]); !ok {
		return nil
	}
	if c.NotBefore, ok = numericDate(p["nbf"]); !ok {
		return nil
	}
	if c.ExpiresAt, ok = numericDate(p["exp"]); !ok {
		return nil
	}
	switch aud := p["aud"].(type) {
	case string:
		if aud == "" {
			return nil
		}
		c.Audiences = []string{aud}
	case []any:
		if len(aud) == 0 {
			return nil
		}
		for _, a := range aud {
			s, ok := nonEmptyString(a)
			if !ok {
				return nil
			}
			c.Audiences = append(c.Audiences, s)
		}
	default:
		return nil
	}
	for _, opt := range []struct {
		name string
		dst  *string
	}{{"orchestration_id", &c.OrchestrationID}, {"human", &c.HumanPrincipal}} {
		if v, present := p[opt.name]; present {
			if *opt.dst, ok = nonEmptyString(v); !ok {
				return nil
			}
		}
	}
	if v, present := p["rnw"]; present {
		if c.RenewedFromTokenID, ok = nonEmptyString(v); !ok {
			return nil
		}
	}
	// Delegated tokens always carry root_iat; a renewed root token carries
	// it too (the start of its renewal line).
	c.RootIssuedAt = c.IssuedAt
	if v, present := p["root_iat"]; present {
		if c.RootIssuedAt, ok = numericDate(v); !ok {
			return nil
		}
	}
	if l, present := p["lineage"]; present {
		entries, ok := l.([]any)
		if !ok {
			return nil
		}
		if _, present := p["root_iat"]; !present {
			return nil
		}
		for _, e := range entries {
			m, ok := e.(map[string]any)
			if !ok {
				return nil
			}
			jti, ok1 := nonEmptyString(m["jti"])
			sub, ok2 := nonEmptyString(m["sub"])
			if !ok1 || !ok2 {
				return nil
			}
			c.Lineage = append(c.Lineage, Ancestor{TokenID: jti, AgentID: sub})
		}
	}
	c.Depth = len(c.Lineage)
	if cnf, present := p["cnf"]; present {
		m, ok := cnf.(map[string]any)
		if !ok {
			return nil
		}
		if c.KeyThumbprint, ok = nonEmptyString(m["jkt"]); !ok {
			return nil
		}
	}
	if apr, present := p["apr"]; present {
		m, ok := apr.(map[string]any)
		if !ok {
			return nil
		}
		a := &TokenApproval{}
		if a.ApprovalID, ok = nonEmptyString(m["id"]); !ok {
			return nil
		}
		by, ok := m["by"].([]any)
		if !ok {
			return nil
		}
		for _, v := range by {
			id, ok := nonEmptyString(v)
			if !ok {
				return nil
			}
			a.ApproverIDs = append(a.ApproverIDs, id)
		}
		c.Approval = a
	}
	return c
}

// ScopeCovers reports whether the granted scope covers the requested one
// (DESIGN §3): both are `action:resource:identifier` (split on the first
// two colons), and each granted segment is `*` or equal to the requested
// one; a requested `*` is covered only by `*`. A malformed scope covers and
// is covered by nothing.
func ScopeCovers(granted, requested string) bool {
	g, ok1 := parseScope(granted)
	r, ok2 := parseScope(requested)
	if !ok1 || !ok2 {
		return false
	}
	for i := range g {
		if g[i] != "*" && g[i] != r[i] {
			return false
		}
	}
	return true
}

func coveredByAny(granted []string, requested string) bool {
	for _, g := range granted {
		if ScopeCovers(g, requested) {
			return true
		}
	}
	return false
}

// parseScope splits a scope on its first two colons; every segment must be
// non-empty.
func parseScope(s string) ([3]string, bool) {
	first := strings.IndexByte(s, ':')
	if first <= 0 {
		return [3]string{}, false
	}
	rest := s[first+1:]
	second := strings.IndexByte(rest, ':')
	if second <= 0 || second == len(rest)-1 {
		return [3]string{}, false
	}
	return [3]string{s[:first], rest[:second], rest[second+1:]}, true
}

// String describes a Result for logs.
func (r Result) String() string {
	if r.OK {
		return "ok"
	}
	return fmt.Sprintf("%s: %s", r.Reason, r.Detail)
}
