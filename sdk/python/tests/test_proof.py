"""AgentKey: thumbprints against published vectors, and the exact shape and
signature of proofs of possession, checked independently of baton.proof."""

from __future__ import annotations

import base64
import hashlib
import json
import pickle
import time
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import baton

# RFC 7517 Appendix A.2: the example EC P-256 private key. Its RFC 7638
# thumbprint, as other JOSE libraries (and jose, which the broker uses)
# compute it.
RFC7517_EC = {
    "kty": "EC",
    "crv": "P-256",
    "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
    "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
    "d": "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE",
}
RFC7517_EC_THUMBPRINT = "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s"

# RFC 8037 Appendix A.1 (key) and A.3 (its RFC 7638 thumbprint).
RFC8037_OKP = {
    "kty": "OKP",
    "crv": "Ed25519",
    "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A",
    "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
}
RFC8037_OKP_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

# The order of the P-256 group, written out here rather than taken from the SDK.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

DELEGATE = "/baton.v1.BrokerService/Delegate"
REVOKE = "/baton.v1.BrokerService/Revoke"


def b64url_decode(text: str) -> bytes:
    assert "=" not in text, "base64url in a JWS has no padding"
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode(proof: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signature and signing input of a compact JWS."""
    parts = proof.split(".")
    assert len(parts) == 3
    header = json.loads(b64url_decode(parts[0]))
    claims = json.loads(b64url_decode(parts[1]))
    return header, claims, b64url_decode(parts[2]), f"{parts[0]}.{parts[1]}".encode()


def verify(proof: str) -> None:
    """Verify a proof's signature with the key in its own header, as the broker does."""
    header, _, signature, signing_input = decode(proof)
    jwk = header["jwk"]
    if header["alg"] == "ES256":
        assert len(signature) == 64, "ES256 is raw r||s, not DER"
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(b64url_decode(jwk["x"]), "big"),
            int.from_bytes(b64url_decode(jwk["y"]), "big"),
            ec.SECP256R1(),
        ).public_key()
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    else:
        assert header["alg"] == "EdDSA"
        ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(
            signature, signing_input
        )


def test_thumbprint_of_rfc7517_ec_key() -> None:
    key = baton.AgentKey.from_private_jwk(RFC7517_EC)
    assert key.algorithm == "ES256"
    assert key.public_jwk == {k: RFC7517_EC[k] for k in ("kty", "crv", "x", "y")}
    assert key.thumbprint == RFC7517_EC_THUMBPRINT
    # By hand: the required members in lexicographic order, no whitespace.
    canonical = (
        '{"crv":"P-256","kty":"EC",'
        '"x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",'
        '"y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}'
    )
    assert b64url(hashlib.sha256(canonical.encode()).digest()) == RFC7517_EC_THUMBPRINT


def test_thumbprint_of_rfc8037_okp_key() -> None:
    key = baton.AgentKey.from_private_jwk(json.dumps(RFC8037_OKP))
    assert key.algorithm == "EdDSA"
    assert key.public_jwk == {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_OKP["x"]}
    assert key.thumbprint == RFC8037_OKP_THUMBPRINT


def test_thumbprint_ignores_member_order_and_optional_members() -> None:
    shuffled = {
        "y": RFC7517_EC["y"],
        "use": "sig",
        "x": RFC7517_EC["x"],
        "kid": "1",
        "kty": "EC",
        "crv": "P-256",
    }
    assert baton.jwk_thumbprint(shuffled) == RFC7517_EC_THUMBPRINT
    with pytest.raises(ValueError):
        baton.jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": RFC7517_EC["x"]})
    with pytest.raises(ValueError):
        baton.jwk_thumbprint({"kty": "RSA", "n": "AQAB", "e": "AQAB"})


def test_generated_key_is_deterministic_across_export_and_import() -> None:
    key = baton.AgentKey.generate()
    assert key.algorithm == "ES256"
    assert key.thumbprint == baton.jwk_thumbprint(key.public_jwk)
    assert key.thumbprint == baton.jwk_thumbprint(json.loads(key.public_jwk_json()))
    from_pem = baton.AgentKey.from_pem(key.private_key_pem())
    from_jwk = baton.AgentKey.from_private_jwk(key.private_jwk())
    encrypted = baton.AgentKey.from_pem(key.private_key_pem(b"pw"), password=b"pw")
    for other in (from_pem, from_jwk, encrypted):
        assert other.thumbprint == key.thumbprint
        assert other.public_jwk_json() == key.public_jwk_json()
    assert baton.AgentKey.generate().thumbprint != key.thumbprint


def test_public_jwk_json_is_public_only() -> None:
    for algorithm in ("ES256", "EdDSA"):
        key = baton.AgentKey.generate(algorithm)
        text = key.public_jwk_json()
        jwk = json.loads(text)
        assert "d" not in jwk
        assert " " not in text
        if algorithm == "ES256":
            assert list(jwk) == ["kty", "crv", "x", "y"]
            assert len(b64url_decode(jwk["x"])) == len(b64url_decode(jwk["y"])) == 32
        else:
            assert list(jwk) == ["kty", "crv", "x"]
        assert "d" in key.private_jwk()
        assert key.private_jwk()["d"] not in repr(key)
        assert key.thumbprint in repr(key)


def test_es256_proof_has_the_documented_shape_and_verifies() -> None:
    key = baton.AgentKey.from_private_jwk(RFC7517_EC)
    token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2ln"
    before = int(time.time())
    proof = key.proof(DELEGATE, token)
    after = int(time.time())

    header, claims, signature, _ = decode(proof)
    assert header == {
        "alg": "ES256",
        "typ": "baton-proof+jwt",
        "jwk": {k: RFC7517_EC[k] for k in ("kty", "crv", "x", "y")},
    }
    assert set(claims) == {"htm", "ath", "iat", "jti"}
    assert claims["htm"] == DELEGATE
    expected_ath = b64url(hashlib.sha256(token.encode()).digest())
    assert claims["ath"] == expected_ath == baton.token_hash(token)
    assert "=" not in claims["ath"] and len(claims["ath"]) == 43
    assert isinstance(claims["iat"], int) and before <= claims["iat"] <= after
    assert isinstance(claims["jti"], str) and 16 <= len(claims["jti"]) <= 128
    assert len(signature) == 64
    verify(proof)


def test_eddsa_proof_verifies() -> None:
    key = baton.AgentKey.from_private_jwk(RFC8037_OKP)
    proof = key.proof(REVOKE, "a.b.c")
    header, claims, signature, _ = decode(proof)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == baton.PROOF_TYPE
    assert header["jwk"] == {"kty": "OKP", "crv": "Ed25519", "x": RFC8037_OKP["x"]}
    assert claims["htm"] == REVOKE
    assert len(signature) == 64
    verify(proof)


def test_each_proof_is_new_and_tampering_breaks_it() -> None:
    key = baton.AgentKey.generate()
    first = key.proof(DELEGATE, "t")
    second = key.proof(DELEGATE, "t")
    assert decode(first)[1]["jti"] != decode(second)[1]["jti"]
    verify(first)
    verify(second)

    header_b64, _, sig = first.split(".")
    forged_claims = dict(decode(first)[1], htm=REVOKE)
    forged = f"{header_b64}.{b64url(json.dumps(forged_claims).encode())}.{sig}"
    with pytest.raises(InvalidSignature):
        verify(forged)


def test_method_constants_match_the_generated_service() -> None:
    assert baton.DELEGATE_METHOD == DELEGATE
    assert baton.REVOKE_METHOD == REVOKE
    assert baton.PROOF_METADATA_KEY == "baton-proof"
    with pytest.raises(ValueError):
        baton.AgentKey.generate().proof("Delegate", "t")


def test_bad_keys_are_refused() -> None:
    with pytest.raises(TypeError):
        baton.AgentKey(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ValueError):
        baton.AgentKey.generate("RS256")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        baton.AgentKey.from_private_jwk({k: v for k, v in RFC7517_EC.items() if k != "d"})
    with pytest.raises(ValueError):
        baton.AgentKey.from_private_jwk(dict(RFC7517_EC, x=RFC8037_OKP["x"]))
    with pytest.raises(TypeError):
        pickle.dumps(baton.AgentKey.generate())


def test_es256_proofs_are_always_low_s() -> None:
    # An ECDSA s is above n/2 about half the time; the broker refuses those
    # (PROOF_INVALID "bad signature"), so every proof must come out low.
    # 256 signings with a high s slipping through: a chance of 2^-256.
    for _ in range(8):
        key = baton.AgentKey.generate()
        for _ in range(32):
            proof = key.proof(REVOKE, "a.b.c")
            s = int.from_bytes(decode(proof)[2][32:], "big")
            assert 0 < s <= P256_N // 2
            verify(proof)
