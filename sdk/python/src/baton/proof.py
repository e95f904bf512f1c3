"""An agent's key pair and the proofs of possession it signs.

A token issued or delegated with ``agent_public_key_jwk`` is bound to that
key (``cnf.jkt``, its RFC 7638 thumbprint), and every call made with the
token must carry a fresh proof in the ``baton-proof`` metadata, after DPoP
(RFC 9449): a compact JWS signed by the key with

* header: ``typ`` ``"baton-proof+jwt"``, ``alg`` ``ES256`` or ``EdDSA``,
  ``jwk`` = the public key (never the private part);
* claims: ``htm`` = the full gRPC method (``"/baton.v1.BrokerService/Delegate"``),
  ``ath`` = base64url(SHA-256(token)) without padding, ``iat`` (seconds) and
  a unique ``jti`` (16 to 128 characters).

The broker accepts each proof once, for that method and token only, within a
few seconds of its ``iat``, so a proof is made right before each call and
never reused. :class:`baton.BrokerClient` does that when given the key.

The JWS is built here with ``cryptography`` alone: ES256 signatures are the
raw 64-byte ``r || s`` of RFC 7518 §3.4, not the DER that ``cryptography``
returns, and always low-S (``s <= n/2``): an ECDSA signature ``(r, s)`` has a
twin ``(r, n - s)`` that verifies as well, and the broker accepts only the
low one so that a proof has a single string form.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal, Union

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from baton.v1 import broker_pb2

#: The algorithms an agent key may use: ES256 (EC P-256, the default) or
#: EdDSA (Ed25519).
AgentKeyAlgorithm = Literal["ES256", "EdDSA"]

#: The ``typ`` header of a proof of possession.
PROOF_TYPE = "baton-proof+jwt"

#: The metadata key that carries a proof of possession.
PROOF_METADATA_KEY = "baton-proof"

_PrivateKey = Union[ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]

_P256_BYTES = 32
# The order n of the P-256 group. ``s`` and ``n - s`` both verify; only
# ``s <= n // 2`` is signed and accepted (see the module docstring).
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P256_HALF_ORDER = _P256_ORDER // 2


def _es256_low_s(r: int, s: int) -> bytes:
    """The raw ``r || s`` (64 bytes) of an ES256 signature, ``s`` in its low form."""
    if s > _P256_HALF_ORDER:
        s = _P256_ORDER - s
    return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")


def _is_high_s(signature: bytes) -> bool:
    """Whether a raw 64-byte ES256 signature has ``s > n/2``: the twin Baton refuses."""
    return int.from_bytes(signature[_P256_BYTES:], "big") > _P256_HALF_ORDER


def _method_path(name: str) -> str:
    service = broker_pb2.DESCRIPTOR.services_by_name["BrokerService"]
    method = service.methods_by_name[name]
    return f"/{service.full_name}/{method.name}"


#: The full gRPC method of Delegate, the ``htm`` of a proof sent with it.
DELEGATE_METHOD = _method_path("Delegate")

#: The full gRPC method of Revoke, the ``htm`` of a proof sent to release.
REVOKE_METHOD = _method_path("Revoke")

#: The full gRPC method of Renew, the ``htm`` of a proof sent with it.
RENEW_METHOD = _method_path("Renew")


def _b64url(data: bytes) -> str:
    """Encode ``data`` as base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


_HTTP_HTM = re.compile(r"[A-Z]+ /\S*")


def http_htm(method: str, url: str) -> str:
    """The ``htm`` of an HTTP call: ``"<METHOD> <path>"``, without query or fragment.

    ``url`` is a path (``/records/P-1?x=1``) or an absolute URL, whose path
    is taken. Both sides use it: the agent to sign a proof
    (``key.proof(http_htm("GET", url), token)``), the resource server to
    tell :meth:`baton.TokenVerifier.verify` what the proof must name.
    """
    if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        path = urllib.parse.urlsplit(url).path
    else:
        path = re.split(r"[?#]", url, maxsplit=1)[0]
    return f"{method.upper()} {path or '/'}"


def token_hash(token: str) -> str:
    """Return base64url(SHA-256(token)): the ``ath`` claim binding a proof to a token."""
    return _b64url(hashlib.sha256(token.encode("utf-8")).digest())


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of an EC or OKP public JWK.

    Only the required members count (``crv``, ``kty``, ``x`` and, for EC,
    ``y``), in lexicographic order and without whitespace, so the result
    does not depend on the order or the optional members of ``jwk``. It is
    what a key-bound token carries as ``cnf.jkt``.

    Raises:
        ValueError: When ``jwk`` is not an EC or OKP key with those members.
    """
    kty = jwk.get("kty")
    if kty == "EC":
        names: tuple[str, ...] = ("crv", "kty", "x", "y")
    elif kty == "OKP":
        names = ("crv", "kty", "x")
    else:
        raise ValueError(f"thumbprints are computed for EC and OKP keys, not kty {kty!r}")
    members = {}
    for name in names:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"the JWK member {name!r} is missing")
        members[name] = value
    # The names are already in lexicographic order; json.dumps keeps it.
    canonical = json.dumps(members, separators=(",", ":"), ensure_ascii=False)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def _public_jwk(key: _PrivateKey) -> dict[str, str]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = key.public_key().public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64url(numbers.x.to_bytes(_P256_BYTES, "big")),
            "y": _b64url(numbers.y.to_bytes(_P256_BYTES, "big")),
        }
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


class AgentKey:
    """An agent's key pair: binds tokens to it and signs proofs of possession.

    Pass :meth:`public_jwk_json` as ``agent_public_key_jwk`` when issuing or
    delegating (or the key itself to :meth:`baton.BrokerClient.issue` and
    :meth:`baton.BrokerClient.delegate`) to bind the token to it, and keep the
    key beside the token: :meth:`baton.BrokerClient.delegate` and
    :meth:`baton.BrokerClient.release` take it to prove possession.

    The private key is never shown by ``repr``; use :meth:`private_key_pem` or
    :meth:`private_jwk` to persist it deliberately, as a secret.
    """

    __slots__ = ("_algorithm", "_private_key", "_public_jwk", "_thumbprint")

    def __init__(self, private_key: _PrivateKey) -> None:
        """Wrap a ``cryptography`` private key: EC P-256 or Ed25519.

        Raises:
            TypeError: For any other kind of key.
        """
        algorithm: AgentKeyAlgorithm
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1):
                raise TypeError(
                    f"an EC agent key must be on P-256, not {private_key.curve.name}"
                )
            algorithm = "ES256"
        elif isinstance(private_key, ed25519.Ed25519PrivateKey):
            algorithm = "EdDSA"
        else:
            raise TypeError("an agent key must be an EC P-256 or Ed25519 private key")
        self._private_key: _PrivateKey = private_key
        self._algorithm: AgentKeyAlgorithm = algorithm
        self._public_jwk = _public_jwk(private_key)
        self._thumbprint = jwk_thumbprint(self._public_jwk)

    @classmethod
    def generate(cls, algorithm: AgentKeyAlgorithm = "ES256") -> AgentKey:
        """Generate a new key pair; ES256 (P-256) unless ``algorithm`` is ``"EdDSA"``.

        Raises:
            ValueError: For any other algorithm.
        """
        if algorithm == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if algorithm == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.generate())
        raise ValueError(f"unsupported agent key algorithm: {algorithm!r}")

    @classmethod
    def from_pem(cls, data: bytes | str, password: bytes | None = None) -> AgentKey:
        """Load a PEM private key (PKCS #8 or SEC 1), as :meth:`private_key_pem` writes it.

        Raises:
            ValueError: When the PEM is not a private key.
            TypeError: When the key is not EC P-256 or Ed25519.
        """
        pem = data.encode("ascii") if isinstance(data, str) else data
        key = serialization.load_pem_private_key(pem, password=password)
        if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            raise TypeError("an agent key must be an EC P-256 or Ed25519 private key")
        return cls(key)

    @classmethod
    def from_private_jwk(cls, jwk: Mapping[str, Any] | str) -> AgentKey:
        """Load a private JWK (with ``d``), as :meth:`private_jwk` returns it.

        Raises:
            ValueError: When the JWK is not an EC P-256 or Ed25519 private
                key, or its public members do not match ``d``.
        """
        parsed: Any = json.loads(jwk) if isinstance(jwk, str) else jwk
        if not isinstance(parsed, Mapping) or not isinstance(parsed.get("d"), str):
            raise ValueError("a private JWK (with `d`) is required")
        d = _b64url_decode(parsed["d"])
        key: _PrivateKey
        if parsed.get("kty") == "EC" and parsed.get("crv") == "P-256":
            if len(d) != _P256_BYTES:
                raise ValueError("`d` of a P-256 key is 32 bytes")
            key = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
        elif parsed.get("kty") == "OKP" and parsed.get("crv") == "Ed25519":
            key = ed25519.Ed25519PrivateKey.from_private_bytes(d)
        else:
            raise ValueError("a JWK agent key must be EC P-256 or OKP Ed25519")
        agent_key = cls(key)
        for name, value in agent_key._public_jwk.items():
            if name in parsed and parsed[name] != value:
                raise ValueError(f"the JWK member {name!r} does not match its `d`")
        return agent_key

    @property
    def algorithm(self) -> AgentKeyAlgorithm:
        """The signing algorithm, ``"ES256"`` or ``"EdDSA"``."""
        return self._algorithm

    @property
    def thumbprint(self) -> str:
        """The RFC 7638 SHA-256 thumbprint: the ``cnf.jkt`` a token bound to this key carries."""
        return self._thumbprint

    @property
    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (a new dict): ``kty``, ``crv``, ``x`` (and ``y``)."""
        return dict(self._public_jwk)

    def public_jwk_json(self) -> str:
        """The public key as JWK JSON: what ``agent_public_key_jwk`` takes."""
        return _json(self._public_jwk).decode("utf-8")

    def private_key_pem(self, password: bytes | None = None) -> bytes:
        """The private key as PKCS #8 PEM (encrypted with ``password`` when given)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def private_jwk(self) -> dict[str, str]:
        """The private key as a JWK (with ``d``), to store it as a secret."""
        if isinstance(self._private_key, ec.EllipticCurvePrivateKey):
            value = self._private_key.private_numbers().private_value
            d = value.to_bytes(_P256_BYTES, "big")
        else:
            d = self._private_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        return {**self._public_jwk, "d": _b64url(d)}

    def proof(self, method: str, token: str) -> str:
        """Sign a proof of possession for one call.

        Args:
            method: The ``htm``: the full gRPC method, for example
                ``"/baton.v1.BrokerService/Delegate"`` (:data:`DELEGATE_METHOD`),
                or for an HTTP resource server ``"<METHOD> <path>"``
                (:func:`http_htm`), for example ``"GET /records/P-1"``.
            token: The key-bound token the call authenticates with.

        Returns:
            The proof (a compact JWS), for the ``baton-proof`` metadata (the
            ``Baton-Proof`` header over HTTP). Make a new one for every call:
            each is accepted once.

        Raises:
            ValueError: When ``method`` is neither form.
        """
        if not (method.startswith("/") or _HTTP_HTM.fullmatch(method)):
            raise ValueError(
                f"method must be a full gRPC method path like {DELEGATE_METHOD!r} "
                "or an HTTP method and path like 'GET /records/1'"
            )
        header = {"alg": self._algorithm, "typ": PROOF_TYPE, "jwk": dict(self._public_jwk)}
        claims = {
            "htm": method,
            "ath": token_hash(token),
            "iat": int(time.time()),
            # 18 random bytes: 24 base64url characters, within the broker's 16 to 128.
            "jti": secrets.token_urlsafe(18),
        }
        signing_input = f"{_b64url(_json(header))}.{_b64url(_json(claims))}".encode("ascii")
        return f"{signing_input.decode('ascii')}.{_b64url(self._sign(signing_input))}"

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self._private_key, ec.EllipticCurvePrivateKey):
            der = self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))
            # The broker refuses the high-S twin (PROOF_INVALID "bad signature").
            return _es256_low_s(*decode_dss_signature(der))
        return self._private_key.sign(data)

    def __repr__(self) -> str:
        """Show the algorithm and thumbprint, never the private key."""
        return f"AgentKey(algorithm={self._algorithm!r}, thumbprint={self._thumbprint!r})"

    def __reduce__(self) -> Any:
        """Refuse pickling: it would write the private key out unnoticed."""
        raise TypeError("AgentKey is not picklable; use private_key_pem() to persist it")
