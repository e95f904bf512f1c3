package baton_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/baton-dev/baton/sdk/go/baton"
	"github.com/baton-dev/baton/sdk/go/batonv1"
)

const delegateMethod = batonv1.BrokerService_Delegate_FullMethodName

// decodedProof is a proof JWT taken apart without trusting it.
type decodedProof struct {
	rawHeader []byte
	header    struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}
	claims struct {
		HTM string `json:"htm"`
		ATH string `json:"ath"`
		IAT int64  `json:"iat"`
		JTI string `json:"jti"`
	}
	claimNames   []string
	signingInput []byte
	signature    []byte
}

func b64d(t *testing.T, what, s string) []byte {
	t.Helper()
	if strings.ContainsAny(s, "=+/") {
		t.Fatalf("%s %q is not unpadded base64url", what, s)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s is not base64url: %v", what, err)
	}
	return b
}

func decodeProof(t *testing.T, proof string) decodedProof {
	t.Helper()
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Fatalf("proof has %d parts, want 3: %q", len(parts), proof)
	}
	var d decodedProof
	d.rawHeader = b64d(t, "header", parts[0])
	if err := json.Unmarshal(d.rawHeader, &d.header); err != nil {
		t.Fatalf("header: %v", err)
	}
	rawClaims := b64d(t, "claims", parts[1])
	if err := json.Unmarshal(rawClaims, &d.claims); err != nil {
		t.Fatalf("claims: %v", err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(rawClaims, &all); err != nil {
		t.Fatalf("claims: %v", err)
	}
	for name := range all {
		d.claimNames = append(d.claimNames, name)
	}
	d.signingInput = []byte(parts[0] + "." + parts[1])
	d.signature = b64d(t, "signature", parts[2])
	return d
}

func jwkMap(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("jwk %s: %v", raw, err)
	}
	return m
}

// checkClaims checks what both algorithms share.
func checkClaims(t *testing.T, d decodedProof, method, token string, before, after time.Time) {
	t.Helper()
	if d.header.Typ != "baton-proof+jwt" {
		t.Errorf("typ = %q, want baton-proof+jwt", d.header.Typ)
	}
	if d.claims.HTM != method {
		t.Errorf("htm = %q, want %q", d.claims.HTM, method)
	}
	sum := sha256.Sum256([]byte(token))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); d.claims.ATH != want {
		t.Errorf("ath = %q, want %q", d.claims.ATH, want)
	}
	if d.claims.IAT < before.Unix() || d.claims.IAT > after.Unix() {
		t.Errorf("iat = %d, want between %d and %d (seconds)", d.claims.IAT, before.Unix(), after.Unix())
	}
	if n := len(d.claims.JTI); n < 16 || n > 128 {
		t.Errorf("jti %q has %d characters, want 16 to 128", d.claims.JTI, n)
	}
	if len(d.claimNames) != 4 {
		t.Errorf("claims = %v, want exactly htm, ath, iat, jti", d.claimNames)
	}
}

func TestProofES256(t *testing.T) {
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	if key.Algorithm() != baton.ES256 {
		t.Fatalf("Algorithm() = %q, want ES256", key.Algorithm())
	}
	const token = "header.payload.signature"
	before := time.Now()
	proof, err := key.Proof(delegateMethod, token)
	if err != nil {
		t.Fatal(err)
	}
	d := decodeProof(t, proof)
	checkClaims(t, d, delegateMethod, token, before, time.Now())

	if d.header.Alg != "ES256" {
		t.Errorf("alg = %q, want ES256", d.header.Alg)
	}
	if want := `{"typ":"baton-proof+jwt","alg":"ES256","jwk":` + key.PublicJWK() + `}`; string(d.rawHeader) != want {
		t.Errorf("header = %s, want %s", d.rawHeader, want)
	}
	jwk := jwkMap(t, d.header.JWK)
	if _, ok := jwk["d"]; ok || len(jwk) != 4 || jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
		t.Fatalf("jwk = %v, want the public P-256 key only (crv, kty, x, y)", jwk)
	}

	// Verify with the key from the header, as the broker does.
	x, y := b64d(t, "x", jwk["x"]), b64d(t, "y", jwk["y"])
	if len(x) != 32 || len(y) != 32 {
		t.Fatalf("x, y are %d and %d bytes, want 32 each", len(x), len(y))
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	if err != nil {
		t.Fatalf("jwk is not a P-256 point: %v", err)
	}
	if len(d.signature) != 64 {
		t.Fatalf("signature is %d bytes, want 64 (raw r || s, not ASN.1)", len(d.signature))
	}
	digest := sha256.Sum256(d.signingInput)
	r, s := new(big.Int).SetBytes(d.signature[:32]), new(big.Int).SetBytes(d.signature[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		t.Fatal("ES256 signature does not verify with the header's jwk")
	}
	tampered := bytes.Clone(d.signingInput)
	tampered[len(tampered)-1] ^= 1
	if other := sha256.Sum256(tampered); ecdsa.Verify(pub, other[:], r, s) {
		t.Fatal("signature verifies over a tampered input")
	}
}

func TestProofES256SignatureIsFixedWidth(t *testing.T) {
	// r or s below 2^248 (a leading zero byte) happens once in 256 per
	// integer: sign 1200 integers' worth, so that short ones (almost
	// certainly among them) are shown to be padded, not dropped.
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	jwk := jwkMap(t, []byte(key.PublicJWK()))
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(),
		append(append([]byte{4}, b64d(t, "x", jwk["x"])...), b64d(t, "y", jwk["y"])...))
	if err != nil {
		t.Fatal(err)
	}
	short := 0
	for i := range 600 {
		proof, err := key.Proof(delegateMethod, fmt.Sprint("token-", i))
		if err != nil {
			t.Fatal(err)
		}
		d := decodeProof(t, proof)
		if len(d.signature) != 64 {
			t.Fatalf("signature %d is %d bytes, want 64", i, len(d.signature))
		}
		if d.signature[0] == 0 || d.signature[32] == 0 {
			short++
		}
		digest := sha256.Sum256(d.signingInput)
		if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(d.signature[:32]), new(big.Int).SetBytes(d.signature[32:])) {
			t.Fatalf("signature %d does not verify", i)
		}
	}
	if short == 0 {
		t.Log("no short r or s in this run (probability about 1%)")
	}
}

func TestProofEdDSA(t *testing.T) {
	key, err := baton.GenerateAgentKeyWithAlgorithm(baton.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	const token = "some.bound.token"
	method := batonv1.BrokerService_Revoke_FullMethodName
	before := time.Now()
	proof, err := key.Proof(method, token)
	if err != nil {
		t.Fatal(err)
	}
	d := decodeProof(t, proof)
	checkClaims(t, d, method, token, before, time.Now())
	if d.header.Alg != "EdDSA" {
		t.Errorf("alg = %q, want EdDSA", d.header.Alg)
	}
	jwk := jwkMap(t, d.header.JWK)
	if _, ok := jwk["d"]; ok || len(jwk) != 3 || jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" {
		t.Fatalf("jwk = %v, want the public Ed25519 key only (crv, kty, x)", jwk)
	}
	if !ed25519.Verify(ed25519.PublicKey(b64d(t, "x", jwk["x"])), d.signingInput, d.signature) {
		t.Fatal("EdDSA signature does not verify with the header's jwk")
	}
}

func TestProofsAreFresh(t *testing.T) {
	key, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 50 {
		proof, err := key.Proof(delegateMethod, "tok")
		if err != nil {
			t.Fatal(err)
		}
		jti := decodeProof(t, proof).claims.JTI
		if seen[jti] {
			t.Fatalf("jti %q repeated", jti)
		}
		seen[jti] = true
	}
	if _, err := key.Proof("", "tok"); err == nil {
		t.Error("Proof with no method: no error")
	}
	if _, err := key.Proof(delegateMethod, ""); err == nil {
		t.Error("Proof with no token: no error")
	}
}

func TestThumbprintRFC7638(t *testing.T) {
	// RFC 8037 appendix A.1 and A.3: an Ed25519 key and its thumbprint.
	seed := b64dNoT("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	ed, err := baton.NewAgentKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"crv":"Ed25519","kty":"OKP","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`; ed.PublicJWK() != want {
		t.Errorf("Ed25519 PublicJWK() = %s, want %s", ed.PublicJWK(), want)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; ed.Thumbprint() != want {
		t.Errorf("Ed25519 Thumbprint() = %s, want %s (RFC 8037 A.3)", ed.Thumbprint(), want)
	}

	// A P-256 key with private scalar 1, 2, ..., 32; the thumbprint is the
	// one jose's calculateJwkThumbprint gives (what the broker computes).
	scalar := make([]byte, 32)
	for i := range scalar {
		scalar[i] = byte(i + 1)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := baton.NewAgentKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	// Members in lexicographic order, no whitespace: the RFC 7638 input.
	wantJWK := `{"crv":"P-256","kty":"EC","x":"UVw9brnjlrkE0_7Kf1T9zQzB6Ze_N13KUVrQpsO0A18","y":"RTa-OlDzGPv5pUdZAqIhUCvvDVfgjFOyzApW8X2fk1Q"}`
	if ec.PublicJWK() != wantJWK {
		t.Errorf("P-256 PublicJWK() = %s, want %s", ec.PublicJWK(), wantJWK)
	}
	sum := sha256.Sum256([]byte(wantJWK))
	if want := base64.RawURLEncoding.EncodeToString(sum[:]); ec.Thumbprint() != want {
		t.Errorf("P-256 Thumbprint() = %s, want base64url(SHA-256(canonical JWK)) %s", ec.Thumbprint(), want)
	}
	if want := "6UoWwDCkLjV0J-pQG8c0THxbVhBcpR0AZDift1Yl5DM"; ec.Thumbprint() != want {
		t.Errorf("P-256 Thumbprint() = %s, want %s (jose)", ec.Thumbprint(), want)
	}

	// Deterministic: the same key gives the same thumbprint; another key
	// another one.
	again, err := baton.NewAgentKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if again.Thumbprint() != ec.Thumbprint() || again.PublicJWK() != ec.PublicJWK() {
		t.Error("the same key gave another thumbprint or JWK")
	}
	other, err := baton.GenerateAgentKey()
	if err != nil {
		t.Fatal(err)
	}
	if other.Thumbprint() == ec.Thumbprint() {
		t.Error("two keys share a thumbprint")
	}
}

func b64dNoT(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestNewAgentKeyRejects(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, priv := range map[string]any{"P-384": p384, "string": "secret", "nil": nil, "short ed25519": ed25519.PrivateKey{1, 2, 3}} {
		if _, err := baton.NewAgentKey(priv); err == nil {
			t.Errorf("NewAgentKey(%s): no error", name)
		}
	}
	if _, err := baton.GenerateAgentKeyWithAlgorithm("RS256"); err == nil {
		t.Error("GenerateAgentKeyWithAlgorithm(RS256): no error")
	}
}

func TestAgentKeyDoesNotPrintPrivateKey(t *testing.T) {
	seed := b64dNoT("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	key, err := baton.NewAgentKey(ed25519.NewKeyFromSeed(seed))
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{fmt.Sprint(key), fmt.Sprintf("%+v", key), fmt.Sprintf("%#v", key), fmt.Sprintf("%v", *key), string(js)} {
		if strings.Contains(out, "nWGxne") || strings.Contains(out, fmt.Sprint(seed[:4])) || strings.Contains(out, fmt.Sprintf("%x", seed[:8])) {
			t.Errorf("printed key shows the private key: %s", out)
		}
		if !strings.Contains(out, key.Thumbprint()) {
			t.Errorf("printed key %q does not name its thumbprint", out)
		}
	}
}
