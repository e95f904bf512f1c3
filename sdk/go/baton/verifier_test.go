package baton_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// testKeys is a broker key set made in the test: an ES256 and an EdDSA
// signing key.
type testKeys struct {
	ec   *ecdsa.PrivateKey
	ed   ed25519.PrivateKey
	jwks []byte
}

const (
	ecKid = "k-es256"
	edKid = "k-eddsa"
)

func newTestKeys(t *testing.T) *testKeys {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := ec.PublicKey.Bytes()
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]any{
		{"kid": ecKid, "alg": "ES256", "use": "sig", "kty": "EC", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])},
		{"kid": edKid, "alg": "EdDSA", "use": "sig", "kty": "OKP", "crv": "Ed25519", "x": b64(ed.Public().(ed25519.PublicKey))},
		{"kid": "k-rsa", "alg": "RS256", "use": "sig", "kty": "RSA", "n": "AQAB", "e": "AQAB"},
	}})
	return &testKeys{ec: ec, ed: ed, jwks: jwks}
}

func (k *testKeys) ecPublicRaw() []byte {
	raw, _ := k.ec.PublicKey.Bytes()
	return raw
}

// sign makes a compact JWS of header and claims, signed with the key of
// alg (ES256 or EdDSA).
func (k *testKeys) sign(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64(h) + "." + b64(c)
	var sig []byte
	switch header["alg"] {
	case "EdDSA":
		sig = ed25519.Sign(k.ed, []byte(input))
	default:
		digest := sha256.Sum256([]byte(input))
		r, s, err := ecdsa.Sign(rand.Reader, k.ec, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		// The broker signs low-S and the verifier accepts nothing else.
		sig = lowSSignature(sig)
	}
	return input + "." + b64(sig)
}

var testNow = time.Unix(1_900_000_000, 0)

const (
	testIssuer   = "https://baton.local"
	testAudience = "ehr-api"
)

func baseClaims() map[string]any {
	iat := float64(testNow.Add(-10*time.Second).UnixMilli()) / 1000
	return map[string]any{
		"iss": testIssuer, "sub": "agt_1", "aud": []string{testAudience}, "iat": iat,
		"nbf": float64(testNow.Add(-10 * time.Second).Unix()), "exp": float64(testNow.Add(5 * time.Minute).Unix()),
		"jti": "tok_1", "client_id": "app_1", "scope": "read:records:P-1 write:notes:*", "task_id": "task-1",
	}
}

func esHeader() map[string]any { return map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": ecKid} }

// fakeView is a revocation view with a fixed freshness.
type fakeView struct {
	set     *baton.RevocationSet
	freshAt time.Time
}

func (f *fakeView) IsRevoked(r baton.RevocationFacts) bool { return f.set.IsRevoked(r) }
func (f *fakeView) FreshAt() time.Time                     { return f.freshAt }

func newVerifier(t *testing.T, keys *testKeys, view baton.RevocationView, now func() time.Time) (*baton.Verifier, *atomic.Int32) {
	t.Helper()
	fetches := &atomic.Int32{}
	v, err := baton.NewVerifier(baton.VerifierOptions{
		Audience: testAudience,
		Issuer:   testIssuer,
		Keys: func(context.Context) ([]byte, error) {
			fetches.Add(1)
			return keys.jwks, nil
		},
		Revocations: view,
		Now:         now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v, fetches
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestVerifierHostileTokens(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: testNow}
	v, _ := newVerifier(t, keys, view, func() time.Time { return testNow })
	good := keys.sign(t, esHeader(), baseClaims())

	// HS256 keyed with the broker's public key: the classic confusion.
	hsInput := b64(mustJSON(map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": ecKid})) + "." + b64(mustJSON(baseClaims()))
	mac := hmac.New(sha256.New, keys.ecPublicRaw())
	mac.Write([]byte(hsInput))
	hs256 := hsInput + "." + b64(mac.Sum(nil))
	none := b64(mustJSON(map[string]any{"alg": "none", "typ": "at+jwt", "kid": ecKid})) + "." + b64(mustJSON(baseClaims())) + "."
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + b64(mustJSON(with(baseClaims(), "scope", "*:*:*"))) + "." + parts[2]
	sigBytes, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sigBytes[10] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + b64(sigBytes)

	cases := []struct {
		name  string
		token string
		want  baton.Reason
	}{
		{"empty", "", baton.ReasonMalformed},
		{"garbage", "not a token", baton.ReasonMalformed},
		{"two parts", parts[0] + "." + parts[1], baton.ReasonMalformed},
		{"too long", strings.Repeat("a", 17*1024), baton.ReasonMalformed},
		{"header not JSON", b64([]byte("[1]")) + "." + parts[1] + "." + parts[2], baton.ReasonMalformed},
		{"alg none", none, baton.ReasonAlgorithmNotAllowed},
		{"HS256 keyed with the public key", hs256, baton.ReasonAlgorithmNotAllowed},
		{"RS256", keys.sign(t, map[string]any{"alg": "RS256", "typ": "at+jwt", "kid": "k-rsa"}, baseClaims()), baton.ReasonAlgorithmNotAllowed},
		{"EdDSA header on the ES256 key", keys.sign(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": ecKid}, baseClaims()), baton.ReasonAlgorithmNotAllowed},
		{"wrong typ", keys.sign(t, with(esHeader(), "typ", "JWT"), baseClaims()), baton.ReasonWrongType},
		{"crit", keys.sign(t, with(esHeader(), "crit", []string{"exp"}), baseClaims()), baton.ReasonMalformed},
		{"no kid", keys.sign(t, with(esHeader(), "kid", nil), baseClaims()), baton.ReasonUnknownKey},
		{"unknown kid", keys.sign(t, with(esHeader(), "kid", "k-other"), baseClaims()), baton.ReasonUnknownKey},
		{"tampered claims", tampered, baton.ReasonBadSignature},
		{"bit-flipped signature", badSig, baton.ReasonBadSignature},
		{"signature not 64 bytes", parts[0] + "." + parts[1] + "." + parts[2][:80], baton.ReasonBadSignature},
		{"missing jti", keys.sign(t, esHeader(), with(baseClaims(), "jti", nil)), baton.ReasonMalformed},
		{"numeric sub", keys.sign(t, esHeader(), with(baseClaims(), "sub", 7)), baton.ReasonMalformed},
		{"exp as string", keys.sign(t, esHeader(), with(baseClaims(), "exp", "never")), baton.ReasonMalformed},
		{"exp in the year 30000", keys.sign(t, esHeader(), with(baseClaims(), "exp", 9e11)), baton.ReasonMalformed},
		{"lineage without root_iat", keys.sign(t, esHeader(), with(baseClaims(), "lineage", []any{map[string]any{"jti": "a", "sub": "b"}})), baton.ReasonMalformed},
		{"cnf without jkt", keys.sign(t, esHeader(), with(baseClaims(), "cnf", map[string]any{})), baton.ReasonMalformed},
		{"wrong issuer", keys.sign(t, esHeader(), with(baseClaims(), "iss", "https://evil")), baton.ReasonWrongIssuer},
		{"expired", keys.sign(t, esHeader(), with(baseClaims(), "exp", float64(testNow.Add(-6*time.Second).Unix()))), baton.ReasonExpired},
		{"not yet valid", keys.sign(t, esHeader(), with(baseClaims(), "nbf", float64(testNow.Add(6*time.Second).Unix()))), baton.ReasonNotYetValid},
		{"wrong audience", keys.sign(t, esHeader(), with(baseClaims(), "aud", []string{"other-api"})), baton.ReasonWrongAudience},
		{"empty audience list", keys.sign(t, esHeader(), with(baseClaims(), "aud", []string{})), baton.ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := v.Verify(t.Context(), tc.token, baton.VerifyOptions{})
			if r.OK || r.Reason != tc.want {
				t.Fatalf("Verify = %v, want %s", r, tc.want)
			}
			if strings.Contains(r.Detail, tc.token) && tc.token != "" {
				t.Errorf("detail %q contains the token", r.Detail)
			}
		})
	}

	for name, tok := range map[string]string{
		"ES256":              good,
		"EdDSA":              keys.sign(t, map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": edKid}, baseClaims()),
		"aud as a string":    keys.sign(t, esHeader(), with(baseClaims(), "aud", testAudience)),
		"expired in leeway":  keys.sign(t, esHeader(), with(baseClaims(), "exp", float64(testNow.Add(-4*time.Second).Unix()))),
		"nbf within leeway":  keys.sign(t, esHeader(), with(baseClaims(), "nbf", float64(testNow.Add(4*time.Second).Unix()))),
		"with human and orc": keys.sign(t, esHeader(), with(baseClaims(), "human", "u-1", "orchestration_id", "o-1")),
	} {
		r := v.Verify(t.Context(), tok, baton.VerifyOptions{RequiredScopes: []string{"read:records:P-1"}})
		if !r.OK {
			t.Errorf("%s: Verify = %v, want ok", name, r)
		}
	}
	r := v.Verify(t.Context(), good, baton.VerifyOptions{})
	if !r.OK || r.Claims.TokenID != "tok_1" || r.Claims.AgentID != "agt_1" || r.Claims.AppID != "app_1" || r.Claims.Depth != 0 ||
		!r.Claims.RootIssuedAt.Equal(r.Claims.IssuedAt) || r.Claims.IssuedAt.UnixMilli() != testNow.Add(-10*time.Second).UnixMilli() {
		t.Errorf("claims = %+v", r.Claims)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestVerifierScopesStaleRevoked(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: testNow.Add(-10 * time.Second)}
	now := testNow
	v, _ := newVerifier(t, keys, view, func() time.Time { return now })
	tok := keys.sign(t, esHeader(), baseClaims())

	for _, tc := range []struct {
		required []string
		ok       bool
	}{
		{[]string{"read:records:P-1"}, true},
		{[]string{"write:notes:N-7", "read:records:P-1"}, true},
		{[]string{"read:records:P-2"}, false},
		{[]string{"read:records:*"}, false},
		{[]string{"malformed"}, false},
	} {
		r := v.Verify(t.Context(), tok, baton.VerifyOptions{RequiredScopes: tc.required})
		if r.OK != tc.ok || (!tc.ok && r.Reason != baton.ReasonInsufficientScope) {
			t.Errorf("required %q: %v, want ok=%v", tc.required, r, tc.ok)
		}
	}

	// Older than MaxStaleness (15 s): STALE; but an expired token is still EXPIRED.
	now = testNow.Add(6 * time.Second)
	if r := v.Verify(t.Context(), tok, baton.VerifyOptions{}); r.Reason != baton.ReasonStale || r.Claims == nil {
		t.Errorf("stale view: %v, want STALE with claims", r)
	}
	expired := keys.sign(t, esHeader(), with(baseClaims(), "exp", float64(testNow.Add(-time.Minute).Unix())))
	if r := v.Verify(t.Context(), expired, baton.VerifyOptions{}); r.Reason != baton.ReasonExpired {
		t.Errorf("expired under a stale view: %v, want EXPIRED", r)
	}
	view.freshAt = time.Time{}
	if r := v.Verify(t.Context(), tok, baton.VerifyOptions{}); r.Reason != baton.ReasonStale {
		t.Errorf("never fresh: %v, want STALE", r)
	}
	now = testNow
	view.freshAt = testNow
	view.set.Add(&batonv1.Revocation{Target: batonv1.RevocationTarget_REVOCATION_TARGET_AGENT, Id: "agt_1", AppId: "app_1", Cursor: "1"})
	if r := v.Verify(t.Context(), tok, baton.VerifyOptions{}); r.Reason != baton.ReasonRevoked || r.Claims.TokenID != "tok_1" {
		t.Errorf("revoked agent: %v, want REVOKED", r)
	}
}

func TestVerifierKeyRefetchIsRateLimited(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: testNow}
	now := testNow
	v, fetches := newVerifier(t, keys, view, func() time.Time { return now })
	good := keys.sign(t, esHeader(), baseClaims())
	if r := v.Verify(t.Context(), good, baton.VerifyOptions{}); !r.OK {
		t.Fatalf("first verify: %v", r)
	}
	for range 20 {
		v.Verify(t.Context(), keys.sign(t, with(esHeader(), "kid", "k-unknown"), baseClaims()), baton.VerifyOptions{})
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("fetches after 20 unknown kids = %d, want 1", n)
	}
	now = now.Add(31 * time.Second)
	view.freshAt = now
	v.Verify(t.Context(), keys.sign(t, with(esHeader(), "kid", "k-unknown"), baseClaims()), baton.VerifyOptions{})
	if n := fetches.Load(); n != 2 {
		t.Errorf("fetches after the interval = %d, want 2", n)
	}
	if err := v.SetKeySet([]byte(`{"nope":1}`)); err == nil {
		t.Error("SetKeySet of a non-JWKS succeeded")
	}
}

func TestVerifierProofOfPossession(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet()}
	now := time.Now()
	view.freshAt = now
	v, _ := newVerifier(t, keys, view, nil)
	for _, alg := range []baton.KeyAlgorithm{baton.ES256, baton.EdDSA} {
		agent, err := baton.GenerateAgentKeyWithAlgorithm(alg)
		if err != nil {
			t.Fatal(err)
		}
		other, _ := baton.GenerateAgentKey()
		claims := with(baseClaims(), "cnf", map[string]any{"jkt": agent.Thumbprint()},
			"iat", float64(now.UnixMilli())/1000, "nbf", float64(now.Unix()), "exp", float64(now.Add(time.Minute).Unix()))
		tok := keys.sign(t, esHeader(), claims)
		const htm = "/ehr.v1.Records/Get"
		proof, _ := agent.Proof(htm, tok)
		otherTokenProof, _ := agent.Proof(htm, "another-token")
		otherMethod, _ := agent.Proof("/ehr.v1.Records/Put", tok)
		otherKey, _ := other.Proof(htm, tok)

		check := func(what string, opts baton.VerifyOptions, want baton.Reason) {
			t.Helper()
			r := v.Verify(t.Context(), tok, opts)
			if (want == "" && !r.OK) || (want != "" && r.Reason != want) {
				t.Errorf("%s %s: %v, want %q", alg, what, r, want)
			}
		}
		check("no proof", baton.VerifyOptions{HTM: htm}, baton.ReasonProofRequired)
		check("no htm", baton.VerifyOptions{Proof: proof}, baton.ReasonProofInvalid)
		check("garbage proof", baton.VerifyOptions{Proof: "a.b.c", HTM: htm}, baton.ReasonProofInvalid)
		check("another token's proof", baton.VerifyOptions{Proof: otherTokenProof, HTM: htm}, baton.ReasonProofInvalid)
		check("another method's proof", baton.VerifyOptions{Proof: otherMethod, HTM: htm}, baton.ReasonProofInvalid)
		check("another key's proof", baton.VerifyOptions{Proof: otherKey, HTM: htm}, baton.ReasonProofInvalid)
		check("the token as its own proof", baton.VerifyOptions{Proof: tok, HTM: htm}, baton.ReasonProofInvalid)
		check("valid proof", baton.VerifyOptions{Proof: proof, HTM: htm}, "")
		check("replayed proof", baton.VerifyOptions{Proof: proof, HTM: htm}, baton.ReasonProofReplayed)
	}
}

func TestVerifierReplayCacheFailsClosed(t *testing.T) {
	keys := newTestKeys(t)
	now := time.Now()
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: now}
	v, err := baton.NewVerifier(baton.VerifierOptions{
		Audience: testAudience, Issuer: testIssuer, Revocations: view, ReplayCacheSize: 2,
		Keys: func(context.Context) ([]byte, error) { return keys.jwks, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	agent, _ := baton.GenerateAgentKey()
	tok := keys.sign(t, esHeader(), with(baseClaims(), "cnf", map[string]any{"jkt": agent.Thumbprint()},
		"iat", float64(now.Unix()), "nbf", float64(now.Unix()), "exp", float64(now.Add(time.Minute).Unix())))
	for i, want := range []baton.Reason{"", "", baton.ReasonProofInvalid} {
		proof, _ := agent.Proof("/m", tok)
		r := v.Verify(t.Context(), tok, baton.VerifyOptions{Proof: proof, HTM: "/m"})
		if (want == "") != r.OK || r.Reason != want {
			t.Errorf("proof %d: %v, want %q", i, r, want)
		}
	}
}

func TestVerifierNeverPanicsOnFuzzedTokens(t *testing.T) {
	keys := newTestKeys(t)
	view := &fakeView{set: baton.NewRevocationSet(), freshAt: testNow}
	v, _ := newVerifier(t, keys, view, func() time.Time { return testNow })
	good := keys.sign(t, esHeader(), baseClaims())
	for i := range 2000 {
		b := []byte(good)
		b[(i*7919)%len(b)] ^= byte(i%255 + 1)
		if r := v.Verify(t.Context(), string(b), baton.VerifyOptions{Proof: string(b), HTM: "/x"}); r.OK {
			t.Fatalf("mutation %d accepted", i)
		}
	}
	for _, claims := range []string{`null`, `[]`, `"x"`, `{"iss":{}}`, `{"lineage":{},"root_iat":1}`, `{"aud":[1]}`} {
		tok := b64(mustJSON(esHeader())) + "." + b64([]byte(claims)) + ".x"
		if r := v.Verify(t.Context(), tok, baton.VerifyOptions{}); r.OK {
			t.Errorf("claims %s accepted", claims)
		}
	}
}

func TestNewVerifierValidatesOptions(t *testing.T) {
	view := &fakeView{set: baton.NewRevocationSet()}
	keys := func(context.Context) ([]byte, error) { return nil, errors.New("none") }
	for _, o := range []baton.VerifierOptions{
		{Issuer: testIssuer, Keys: keys, Revocations: view},
		{Audience: testAudience, Keys: keys, Revocations: view},
		{Audience: testAudience, Issuer: testIssuer, Revocations: view},
		{Audience: testAudience, Issuer: testIssuer, Keys: keys},
	} {
		if _, err := baton.NewVerifier(o); err == nil {
			t.Errorf("NewVerifier(%+v) succeeded", o)
		}
	}
}

func TestScopeCovers(t *testing.T) {
	for _, tc := range []struct {
		granted, requested string
		want               bool
	}{
		{"read:records:P-1", "read:records:P-1", true},
		{"read:records:*", "read:records:P-1", true},
		{"*:*:*", "write:notes:N-1", true},
		{"read:*:P-1", "read:records:P-1", true},
		{"read:records:P-1", "read:records:P-2", false},
		{"read:records:P-1", "read:records:*", false},
		{"read:records:*", "read:records:*", true},
		{"read:records:P-1", "write:records:P-1", false},
		{"read:records:a:b", "read:records:a:b", true},
		{"read:records:*", "read:records:a:b", true},
		{"read:records:a", "read:records:a:b", false},
		{"read:records", "read:records:P-1", false},
		{"read:records:P-1", "read:records", false},
		{"::", "::", false},
		{"read::P-1", "read::P-1", false},
		{"read:records:", "read:records:", false},
		{"", "", false},
	} {
		if got := baton.ScopeCovers(tc.granted, tc.requested); got != tc.want {
			t.Errorf("ScopeCovers(%q, %q) = %v, want %v", tc.granted, tc.requested, got, tc.want)
		}
	}
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func TestRevocationSetMatching(t *testing.T) {
	root := time.UnixMilli(1_700_000_000_000)
	token := baton.RevocationFacts{TokenID: "t-child", AgentID: "a-child", AppID: "app", TaskID: "task",
		Lineage: []baton.Ancestor{{TokenID: "t-root", AgentID: "a-root"}, {TokenID: "t-mid", AgentID: "a-mid"}}, RootIssuedAt: root}
	plain := baton.RevocationFacts{TokenID: "t-plain", AgentID: "a-plain", AppID: "app", TaskID: "task", RootIssuedAt: root}
	type T = batonv1.RevocationTarget
	const (
		TOKEN = batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN
		AGENT = batonv1.RevocationTarget_REVOCATION_TARGET_AGENT
		CHAIN = batonv1.RevocationTarget_REVOCATION_TARGET_CHAIN
		TASK  = batonv1.RevocationTarget_REVOCATION_TARGET_TASK
		APP   = batonv1.RevocationTarget_REVOCATION_TARGET_APP
	)
	cases := []struct {
		name      string
		target    T
		id, app   string
		revokedAt time.Time
		facts     baton.RevocationFacts
		want      bool
	}{
		{"own token id", TOKEN, "t-child", "app", root, token, true},
		{"root token id", TOKEN, "t-root", "app", root, token, true},
		{"middle ancestor id", TOKEN, "t-mid", "app", root, token, true},
		{"another token", TOKEN, "t-other", "app", root, token, false},
		{"own agent", AGENT, "a-child", "app", root, token, true},
		{"ancestor agent", AGENT, "a-mid", "app", root, token, true},
		{"root agent", AGENT, "a-root", "app", root, token, true},
		{"another agent", AGENT, "a-other", "app", root, token, false},
		{"chain by root id", CHAIN, "t-root", "app", root, token, true},
		{"chain by a middle id is not the chain", CHAIN, "t-mid", "app", root, token, false},
		{"chain of an undelegated token is its own id", CHAIN, "t-plain", "app", root, plain, true},
		{"task revoked after the root", TASK, "task", "app", root.Add(time.Second), token, true},
		{"task revoked at the root's instant", TASK, "task", "app", root, token, true},
		{"task revoked before the root (id reused later)", TASK, "task", "app", root.Add(-time.Millisecond), token, false},
		{"same task id in another app", TASK, "task", "app-2", root.Add(time.Second), token, false},
		{"another task", TASK, "task-2", "app", root.Add(time.Second), token, false},
		{"app revoked after the root", APP, "app", "app", root.Add(time.Second), token, true},
		{"app revoked before the root", APP, "app", "app", root.Add(-time.Second), token, false},
		{"another app", APP, "app-2", "app-2", root.Add(time.Second), token, false},
		{"unknown target", T(99), "t-child", "app", root, token, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := baton.NewRevocationSet()
			added := s.Add(&batonv1.Revocation{Target: tc.target, Id: tc.id, AppId: tc.app, RevokeTime: ts(tc.revokedAt),
				ExpireTime: ts(root.Add(time.Hour)), Cursor: "c1"})
			if added != (tc.target != T(99)) {
				t.Fatalf("Add = %v", added)
			}
			if got := s.IsRevoked(tc.facts); got != tc.want {
				t.Errorf("IsRevoked = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRevocationSetPrune(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	s := baton.NewRevocationSet()
	add := func(target batonv1.RevocationTarget, id, cursor string, exp *timestamppb.Timestamp) {
		s.Add(&batonv1.Revocation{Target: target, Id: id, AppId: "app", RevokeTime: ts(base), ExpireTime: exp, Cursor: cursor})
	}
	add(batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN, "t1", "1", ts(base.Add(time.Minute)))
	add(batonv1.RevocationTarget_REVOCATION_TARGET_TOKEN, "t1", "2", ts(base.Add(time.Hour))) // latest expiry kept
	add(batonv1.RevocationTarget_REVOCATION_TARGET_AGENT, "a1", "3", ts(base.Add(time.Minute)))
	add(batonv1.RevocationTarget_REVOCATION_TARGET_TASK, "k1", "4", ts(base.Add(time.Minute)))
	add(batonv1.RevocationTarget_REVOCATION_TARGET_TASK, "k1", "4", ts(base.Add(time.Minute))) // the same, twice
	add(batonv1.RevocationTarget_REVOCATION_TARGET_TASK, "k1", "5", ts(base.Add(time.Hour)))
	add(batonv1.RevocationTarget_REVOCATION_TARGET_APP, "app", "6", nil) // no expiry: kept forever
	if n := s.Len(); n != 5 {
		t.Fatalf("Len = %d, want 5", n)
	}
	if n := s.Prune(base.Add(2 * time.Minute)); n != 2 {
		t.Errorf("Prune removed %d, want 2 (agent, first task entry)", n)
	}
	if n := s.Prune(base.Add(1000 * time.Hour)); n != 2 {
		t.Errorf("second Prune removed %d, want 2 (token, second task entry)", n)
	}
	if n := s.Len(); n != 1 {
		t.Errorf("Len after pruning = %d, want 1 (the app without expiry)", n)
	}
}
