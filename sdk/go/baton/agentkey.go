package baton

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// KeyAlgorithm is the signing algorithm of an [AgentKey].
type KeyAlgorithm string

const (
	// ES256 is ECDSA on P-256 with SHA-256, the default.
	ES256 KeyAlgorithm = "ES256"
	// EdDSA is Ed25519.
	EdDSA KeyAlgorithm = "EdDSA"
)

// ProofType is the `typ` header of a proof of possession.
const ProofType = "baton-proof+jwt"

// ProofMetadataKey is the request metadata key that carries a proof of
// possession.
const ProofMetadataKey = "baton-proof"

// AgentKey is an agent's key pair. Pass [AgentKey.PublicJWK] as
// `agent_public_key_jwk` when issuing or delegating to bind the token to it
// (the token's `cnf.jkt` is then [AgentKey.Thumbprint]), and keep the key
// beside the token: every call made with a key-bound token needs a fresh
// proof of possession ([AgentKey.Proof]), which [AgentCredentials] attaches.
//
// An AgentKey is safe for concurrent use. Printing it (fmt's %v, %+v, %#v)
// shows only the public parts; [AgentKey.PrivateKey] gives the private key
// for deliberate storage.
type AgentKey struct {
	alg        KeyAlgorithm
	signer     crypto.Signer
	publicJWK  string
	thumbprint string
}

// GenerateAgentKey generates a new ES256 (EC P-256) agent key.
func GenerateAgentKey() (*AgentKey, error) {
	return GenerateAgentKeyWithAlgorithm(ES256)
}

// GenerateAgentKeyWithAlgorithm generates a new agent key for alg: [ES256]
// (EC P-256) or [EdDSA] (Ed25519).
func GenerateAgentKeyWithAlgorithm(alg KeyAlgorithm) (*AgentKey, error) {
	switch alg {
	case ES256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		return NewAgentKey(priv)
	case EdDSA:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		return NewAgentKey(priv)
	default:
		return nil, fmt.Errorf("baton: unsupported agent key algorithm %q (want ES256 or EdDSA)", alg)
	}
}

// NewAgentKey wraps an existing private key: an *ecdsa.PrivateKey on P-256
// or an ed25519.PrivateKey (for a PEM file, x509.ParsePKCS8PrivateKey).
func NewAgentKey(priv crypto.PrivateKey) (*AgentKey, error) {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		if k == nil || k.Curve != elliptic.P256() {
			return nil, errors.New("baton: an ECDSA agent key must be on P-256")
		}
		raw, err := k.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each
		if err != nil {
			return nil, fmt.Errorf("baton: invalid P-256 key: %w", err)
		}
		x, y := raw[1:33], raw[33:65]
		return newAgentKey(ES256, k, jwkMembers{Crv: "P-256", Kty: "EC", X: b64(x), Y: b64(y)}), nil
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, errors.New("baton: invalid Ed25519 private key")
		}
		pub := k.Public().(ed25519.PublicKey)
		return newAgentKey(EdDSA, k, jwkMembers{Crv: "Ed25519", Kty: "OKP", X: b64(pub)}), nil
	case *ed25519.PrivateKey:
		if k == nil {
			return nil, errors.New("baton: nil Ed25519 private key")
		}
		return NewAgentKey(*k)
	default:
		return nil, fmt.Errorf("baton: unsupported agent key type %T (want *ecdsa.PrivateKey on P-256 or ed25519.PrivateKey)", priv)
	}
}

// jwkMembers are the required members of a public JWK, in the
// lexicographic order RFC 7638 fixes for the thumbprint input (crv, kty, x,
// y). Y is empty (and omitted) for an OKP key.
type jwkMembers struct {
	Crv string `json:"crv"`
	Kty string `json:"kty"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
}

func newAgentKey(alg KeyAlgorithm, signer crypto.Signer, m jwkMembers) *AgentKey {
	// encoding/json writes struct fields in declaration order, without
	// whitespace: exactly the RFC 7638 canonical form (base64url values need
	// no escaping).
	canonical, err := json.Marshal(m)
	if err != nil {
		panic("baton: marshalling a JWK: " + err.Error()) // strings only: cannot fail
	}
	sum := sha256.Sum256(canonical)
	return &AgentKey{alg: alg, signer: signer, publicJWK: string(canonical), thumbprint: b64(sum[:])}
}

// Algorithm returns the signing algorithm, [ES256] or [EdDSA].
func (k *AgentKey) Algorithm() KeyAlgorithm { return k.alg }

// PublicJWK returns the public key as a JWK JSON string with its required
// members only (`{"crv":"P-256","kty":"EC","x":...,"y":...}` or
// `{"crv":"Ed25519","kty":"OKP","x":...}`): what `agent_public_key_jwk`
// takes.
func (k *AgentKey) PublicJWK() string { return k.publicJWK }

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of the public key,
// base64url without padding: what a token bound to the key carries as
// `cnf.jkt` (TokenClaims.key_thumbprint).
func (k *AgentKey) Thumbprint() string { return k.thumbprint }

// PrivateKey returns the private key (*ecdsa.PrivateKey or
// ed25519.PrivateKey), to store it as a secret (x509.MarshalPKCS8PrivateKey)
// and load it later with [NewAgentKey].
func (k *AgentKey) PrivateKey() crypto.Signer { return k.signer }

// String shows the algorithm and thumbprint, never the private key. (The
// printing methods have value receivers so that a copied AgentKey does not
// print its private key either.)
func (k AgentKey) String() string {
	return fmt.Sprintf("AgentKey(%s %s)", k.alg, k.thumbprint)
}

// GoString is String, so that %#v does not print the private key either.
func (k AgentKey) GoString() string { return k.String() }

// Format prints [AgentKey.String] for every verb, so that %+v does not
// print the private key.
func (k AgentKey) Format(f fmt.State, _ rune) { _, _ = fmt.Fprint(f, k.String()) }

// MarshalJSON gives the public parts only.
func (k AgentKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Algorithm  KeyAlgorithm    `json:"algorithm"`
		PublicJWK  json.RawMessage `json:"public_jwk"`
		Thumbprint string          `json:"thumbprint"`
	}{k.alg, json.RawMessage(k.publicJWK), k.thumbprint})
}

// proofHeader and proofClaims are the proof JWT's parts, in this order.
type proofHeader struct {
	Typ string          `json:"typ"`
	Alg KeyAlgorithm    `json:"alg"`
	JWK json.RawMessage `json:"jwk"`
}

type proofClaims struct {
	HTM string `json:"htm"`
	ATH string `json:"ath"`
	IAT int64  `json:"iat"`
	JTI string `json:"jti"`
}

// TokenHash returns base64url(SHA-256(token)) without padding: the `ath`
// claim that binds a proof to one token.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return b64(sum[:])
}

// Proof signs a proof of possession for one call: a JWT with header
// `typ: baton-proof+jwt`, `alg` and `jwk` (the public key), and claims `htm`
// (method, the full gRPC method such as "/baton.v1.BrokerService/Delegate"),
// `ath` ([TokenHash] of token), `iat` (now, in seconds) and a random `jti`.
//
// The broker accepts each proof once, for that method and token only, and
// only within a few seconds of its `iat`: make one right before each call
// ([AgentCredentials] does).
func (k *AgentKey) Proof(method, token string) (string, error) {
	return k.proofAt(method, token, time.Now())
}

func (k *AgentKey) proofAt(method, token string, now time.Time) (string, error) {
	if method == "" {
		return "", errors.New("baton: a proof needs the gRPC method")
	}
	if token == "" {
		return "", errors.New("baton: a proof needs the token")
	}
	// 18 random bytes: 24 base64url characters, within the broker's 16 to 128.
	var nonce [18]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	header, err := json.Marshal(proofHeader{Typ: ProofType, Alg: k.alg, JWK: json.RawMessage(k.publicJWK)})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(proofClaims{HTM: method, ATH: TokenHash(token), IAT: now.Unix(), JTI: b64(nonce[:])})
	if err != nil {
		return "", err
	}
	input := b64(header) + "." + b64(claims)
	sig, err := k.sign([]byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + b64(sig), nil
}

// sign returns the JWS signature of input: for ES256 the raw r || s, each
// a 32-byte big-endian integer (RFC 7518 §3.4, not ASN.1), with s <= n/2
// (low-S); for EdDSA the 64-byte Ed25519 signature.
func (k *AgentKey) sign(input []byte) ([]byte, error) {
	switch priv := k.signer.(type) {
	case *ecdsa.PrivateKey:
		digest := sha256.Sum256(input)
		r, s, err := ecdsa.Sign(rand.Reader, priv, digest[:])
		if err != nil {
			return nil, err
		}
		// (r, n - s) verifies as well as (r, s); the broker accepts only the
		// low-S one, so that a proof has a single string form.
		if s.Cmp(p256HalfN) > 0 {
			s.Sub(p256N, s)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig, nil
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, input), nil
	default:
		return nil, fmt.Errorf("baton: unsupported agent key type %T", k.signer)
	}
}

// p256N is the order n of P-256, and p256HalfN is n/2 rounded down: an
// ES256 signature is low-S when s <= p256HalfN.
var (
	p256N     = elliptic.P256().Params().N
	p256HalfN = new(big.Int).Rsh(p256N, 1)
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
