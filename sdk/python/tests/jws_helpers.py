"""Test helpers: a local "broker" key set and hand-built JWS tokens.

The tokens are signed here the way the broker signs them
(server/crypto/tokens.ts), so the verifier can be tested without a broker,
including against tokens the broker would never make.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

ISSUER = "https://baton.local"
# The order of the P-256 group, written out here rather than taken from the SDK.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
AUDIENCE = "ehr-api"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class SigningKey:
    """A broker signing key: ES256 (P-256) or EdDSA (Ed25519), with a kid."""

    def __init__(self, kid: str, alg: str = "ES256") -> None:
        self.kid = kid
        self.alg = alg
        self.private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            self.private = ed25519.Ed25519PrivateKey.generate()

    def jwk(self) -> dict[str, str]:
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            n = self.private.public_key().public_numbers()
            return {
                "kty": "EC",
                "crv": "P-256",
                "x": b64url(n.x.to_bytes(32, "big")),
                "y": b64url(n.y.to_bytes(32, "big")),
                "kid": self.kid,
                "alg": "ES256",
                "use": "sig",
            }
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def raw_signature(self, data: bytes) -> bytes:
        if isinstance(self.private, ec.EllipticCurvePrivateKey):
            r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
            # Low-S, as the broker signs (server/crypto/jws.ts).
            s = min(s, P256_N - s)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return self.private.sign(data)

    def sign(self, payload: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        h = {"alg": self.alg, "typ": "at+jwt", "kid": self.kid} if header is None else header
        signing_input = f"{b64json(h)}.{b64json(payload)}"
        return f"{signing_input}.{b64url(self.raw_signature(signing_input.encode()))}"


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def claims(now: float, **overrides: Any) -> dict[str, Any]:
    """The claims of an app-issued token valid for five minutes from ``now`` (seconds)."""
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "agt_1",
        "aud": [AUDIENCE],
        "iat": now,
        "nbf": int(now),
        "exp": int(now) + 300,
        "jti": "tok_1",
        "client_id": "app_1",
        "scope": "read:records:P-1 write:notes:*",
        "task_id": "task-1",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def hs256(secret: bytes, payload: dict[str, Any], kid: str) -> str:
    """An HS256 token MACed with ``secret``: the classic key-confusion attack when it is the public key."""
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'at+jwt', 'kid': kid})}.{b64json(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def signature_s(jws: str) -> int:
    """The ``s`` half of a compact ES256 JWS's raw signature."""
    raw = base64.urlsafe_b64decode(jws.rsplit(".", 1)[1] + "==")
    assert len(raw) == 64
    return int.from_bytes(raw[32:], "big")


def high_s_twin(jws: str) -> str:
    """The same ES256 JWS with ``s`` replaced by ``n - s``: a signature as valid, in its other form."""
    signing_input, signature = jws.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "==")
    s = int.from_bytes(raw[32:], "big")
    return f"{signing_input}.{b64url(raw[:32] + (P256_N - s).to_bytes(32, 'big'))}"


def es256_verifies(jws: str, jwk: dict[str, Any]) -> bool:
    """Whether a compact ES256 JWS verifies under ``jwk`` by plain ECDSA (any s)."""
    signing_input, signature = jws.rsplit(".", 1)
    raw = base64.urlsafe_b64decode(signature + "==")
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(jwk["x"] + "="), "big"),
        int.from_bytes(base64.urlsafe_b64decode(jwk["y"] + "="), "big"),
        ec.SECP256R1(),
    ).public_key()
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
