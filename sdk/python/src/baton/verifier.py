"""Offline verification of Baton access tokens at a resource server (DESIGN §2, §3, §5, §6).

No broker round trip per request: signatures are checked against the
broker's key set, revocations against a :class:`baton.RevocationSubscriber`.

Checks, in this order, each failure a :class:`VerifyFailureReason`:

====================================================  ===========================================
form (compact JWS, at most 16 KiB)                    ``MALFORMED``
alg ES256 or EdDSA, and equal to the key's own alg    ``ALGORITHM_NOT_ALLOWED``
typ ``at+jwt``                                        ``WRONG_TYPE``
kid in the key set (refetched, rate-limited, if not)  ``UNKNOWN_KEY``
signature (ES256: low-S only, as the broker signs)    ``BAD_SIGNATURE``
claims present and well-typed                         ``MALFORMED``
iss                                                   ``WRONG_ISSUER``
exp / nbf, with leeway                                ``EXPIRED`` / ``NOT_YET_VALID``
aud contains the configured audience                  ``WRONG_AUDIENCE``
required scopes covered by the token's scopes         ``INSUFFICIENT_SCOPE``
revocation view fresh within ``max_staleness``        ``STALE``
token, lineage, agent, chain, task, app not revoked   ``REVOKED``
cnf.jkt: a proof of possession for this call          ``PROOF_REQUIRED`` / ``PROOF_INVALID`` /
                                                      ``PROOF_REPLAYED``
====================================================  ===========================================

``STALE`` comes after the checks that need no revocation data, so a token
that is expired or for another audience is reported as such even while the
stream is down; everything that would otherwise pass is refused. The proof
comes last so that only a proof of an otherwise acceptable call takes a
place in the replay cache.

The algorithm is always the key's, never the token's: ``none``, HMAC and an
algorithm other than the key's are refused before any signature check.
Hostile input never raises: every failure is a :class:`VerifyResult`.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import json
import math
import re
import threading
import time
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from baton._args import string_list
from baton.client import BrokerClient
from baton.errors import MAX_TOKEN_LENGTH
from baton.proof import PROOF_TYPE, _is_high_s, jwk_thumbprint, token_hash
from baton.subscriber import LineageFacts, RevocationFacts

#: The ``typ`` header of a Baton access token (RFC 9068).
TOKEN_TYPE = "at+jwt"

_MAX_PROOF_LENGTH = 4096
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# P-256 (r || s) and Ed25519 signatures are both 64 bytes: 86 base64url
# characters, the last with its two unused bits zero. Only that one spelling
# is accepted, so a token has a single string form (as at the broker).
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{85}[AQgw]")
_P256_BYTES = 32
#: The default clock-skew leeway on ``exp`` and ``nbf``, in seconds.
DEFAULT_LEEWAY = 5.0
#: The default window, in seconds, around now within which a proof's ``iat``
#: must fall: the broker's (max(``BATON_LEEWAY_SECONDS``, 5 s), 30 s by default).
DEFAULT_PROOF_WINDOW = 30.0
# An unknown kid while no key set was ever loaded retries at most this often.
_UNLOADED_REFETCH_INTERVAL = 1.0


class VerifyFailureReason(str, enum.Enum):
    """Why a token was refused. A ``str``: ``result.reason == "REVOKED"`` holds."""

    MALFORMED = "MALFORMED"
    ALGORITHM_NOT_ALLOWED = "ALGORITHM_NOT_ALLOWED"
    WRONG_TYPE = "WRONG_TYPE"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    WRONG_ISSUER = "WRONG_ISSUER"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    WRONG_AUDIENCE = "WRONG_AUDIENCE"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    STALE = "STALE"
    REVOKED = "REVOKED"
    PROOF_REQUIRED = "PROOF_REQUIRED"
    PROOF_INVALID = "PROOF_INVALID"
    PROOF_REPLAYED = "PROOF_REPLAYED"

    def __str__(self) -> str:
        """The bare name, as in the broker's contract."""
        return self.value


@dataclass(frozen=True)
class ApprovalFacts:
    """Claim ``apr``: the human approval a token was minted under."""

    #: ``apr.id``: the approval's id, ``apr_...``.
    approval_id: str
    #: ``apr.by``: the approvers who approved it, in the order they approved.
    approver_ids: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedClaims:
    """The claims of a token whose signature verified, decoded.

    Satisfies :class:`baton.RevocationFacts`.
    """

    #: ``jti``.
    token_id: str
    #: ``sub``: the agent's id.
    agent_id: str
    #: ``client_id``: the app that issued the chain's root.
    app_id: str
    #: The task id.
    task_id: str
    #: The orchestration run; ``None`` when none.
    orchestration_id: str | None
    #: The human the work is done for; ``None`` when none.
    human_principal: str | None
    #: ``scope``, split on spaces.
    scopes: tuple[str, ...]
    #: ``aud``.
    audiences: tuple[str, ...]
    #: ``iss``.
    issuer: str
    #: ``iat``, in ms since the epoch.
    issued_at_ms: int
    #: ``nbf``, in ms since the epoch.
    not_before_ms: int
    #: ``exp``, in ms since the epoch.
    expires_at_ms: int
    #: The ancestors, root first; empty for a token issued by an app.
    lineage: tuple[LineageFacts, ...]
    #: When the chain's root was issued, in ms since the epoch (``root_iat``:
    #: a renewed token keeps the start of its renewal line).
    root_issued_at_ms: int
    #: ``cnf.jkt``: the thumbprint of the key the token is bound to; ``None`` when not bound.
    key_thumbprint: str | None
    #: ``apr``: the human approval the token was minted under; ``None`` when none was needed.
    approval: ApprovalFacts | None = None
    #: ``rnw``: the token this one replaced through Renew; ``None`` for an
    #: issued or delegated token.
    renewed_from_token_id: str | None = None

    @property
    def depth(self) -> int:
        """The delegation depth: the number of ancestors."""
        return len(self.lineage)


@dataclass(frozen=True)
class VerifyResult:
    """The verdict on a token.

    ``ok`` is True only for an accepted token, and then ``reason`` is
    ``None``; the result's truth value is ``ok``. ``claims`` are set whenever the signature verified (a revoked
    or expired token, say), ``None`` otherwise. ``detail`` is a short
    explanation for logs; it never contains the token.
    """

    ok: bool
    reason: VerifyFailureReason | None = None
    detail: str = ""
    claims: VerifiedClaims | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        """``ok``: ``if verifier.verify(token):`` means accepted, never "a result exists"."""
        return self.ok


def _fail(
    reason: VerifyFailureReason, detail: str, claims: VerifiedClaims | None = None
) -> VerifyResult:
    return VerifyResult(False, reason, detail, claims)


class RevocationView(Protocol):
    """What the verifier needs of a revocation view; a :class:`baton.RevocationSubscriber` is one.

    A view may also have ``on_key_set(fn) -> unsubscribe`` (the revocation
    stream carries key-set changes); the verifier then follows them.
    """

    def is_revoked(self, facts: RevocationFacts) -> bool:
        """Whether the token is revoked."""
        ...

    @property
    def fresh_at(self) -> float | None:
        """The local time (seconds since the epoch) up to which the view is known complete."""
        ...


#: A JWK set: a mapping with ``keys``, or its JSON text.
JwkSet = Union[Mapping[str, Any], str]


@dataclass(frozen=True)
class Scope:
    """A scope ``action:resource:identifier``; ``*`` as a segment means any value."""

    action: str
    resource: str
    identifier: str

    def __str__(self) -> str:
        """The scope as written."""
        return f"{self.action}:{self.resource}:{self.identifier}"


def parse_scope(text: str) -> Scope | None:
    """Split a scope on its first two colons (DESIGN §3); ``None`` when it has not three non-empty segments."""
    if not isinstance(text, str):
        return None
    first = text.find(":")
    second = text.find(":", first + 1) if first >= 0 else -1
    if first <= 0 or second <= first + 1 or second == len(text) - 1:
        return None
    return Scope(text[:first], text[first + 1 : second], text[second + 1 :])


def _segment_covers(granted: str, requested: str) -> bool:
    # A requested `*` is covered only by `*`: a concrete value never equals "*".
    return granted == "*" or granted == requested


def scope_covers(granted: Scope | str, requested: Scope | str) -> bool:
    """Whether ``granted`` covers ``requested``: each segment ``*`` or equal.

    A requested ``*`` is covered only by ``*``. A malformed scope (given as
    text) covers and is covered by nothing.
    """
    g = parse_scope(granted) if isinstance(granted, str) else granted
    r = parse_scope(requested) if isinstance(requested, str) else requested
    if g is None or r is None:
        return False
    return (
        _segment_covers(g.action, r.action)
        and _segment_covers(g.resource, r.resource)
        and _segment_covers(g.identifier, r.identifier)
    )


def uncovered_scopes(granted: Sequence[str], required: Sequence[str]) -> list[str]:
    """The ``required`` scopes (as given) that no scope of ``granted`` covers.

    Raises:
        TypeError: When ``granted`` or ``required`` is a single string.
    """
    parsed = [s for s in (parse_scope(g) for g in string_list(granted, "granted")) if s is not None]
    missing = []
    for text in string_list(required, "required"):
        r = parse_scope(text)
        if r is None or not any(scope_covers(g, r) for g in parsed):
            missing.append(text)
    return missing


@dataclass(frozen=True)
class _Key:
    alg: str
    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode_json(segment: str) -> dict[str, Any] | None:
    """A base64url segment holding a JSON object; ``None`` for anything else."""
    try:
        value = json.loads(_b64url_decode(segment).decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _key_bytes(value: Any, length: int) -> bytes | None:
    if not isinstance(value, str) or not _SEGMENT.fullmatch(value):
        return None
    try:
        raw = _b64url_decode(value)
    except ValueError:
        return None
    return raw if len(raw) == length else None


def _import_key(jwk: Any, alg: Any = None) -> _Key | None:
    """A public ES256 (EC P-256) or EdDSA (Ed25519) key with its alg; ``None`` for anything else."""
    if not isinstance(jwk, Mapping) or "d" in jwk:
        return None
    if jwk.get("use") is not None and jwk.get("use") != "sig":
        return None
    alg = jwk.get("alg") if alg is None else alg
    try:
        if alg == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            x = _key_bytes(jwk.get("x"), _P256_BYTES)
            y = _key_bytes(jwk.get("y"), _P256_BYTES)
            if x is None or y is None:
                return None
            numbers = ec.EllipticCurvePublicNumbers(
                int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
            )
            return _Key("ES256", numbers.public_key())
        if alg == "EdDSA" and jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
            raw = _key_bytes(jwk.get("x"), 32)
            if raw is None:
                return None
            return _Key("EdDSA", ed25519.Ed25519PublicKey.from_public_bytes(raw))
    except ValueError:
        # Not a point on the curve, or not a valid Ed25519 key.
        return None
    return None


def _verify_signature(jws: str, key: _Key) -> bool:
    dot = jws.rfind(".")
    signature_text = jws[dot + 1 :]
    if not _SIGNATURE.fullmatch(signature_text):
        return False
    data = jws[:dot].encode("ascii")
    signature = _b64url_decode(signature_text)
    try:
        if isinstance(key.key, ec.EllipticCurvePublicKey):
            # The high-S twin (r, n - s) verifies too; the broker signs and
            # accepts only low-S, so a token or proof has one string form.
            if _is_high_s(signature):
                return False
            r = int.from_bytes(signature[:_P256_BYTES], "big")
            s = int.from_bytes(signature[_P256_BYTES:], "big")
            key.key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
        else:
            key.key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _compact_parts(jws: Any, max_length: int) -> list[str] | None:
    """The three segments of a compact JWS of acceptable length, header and payload well-formed."""
    if not isinstance(jws, str) or not 0 < len(jws) <= max_length:
        return None
    parts = jws.split(".")
    if len(parts) != 3 or not _SEGMENT.fullmatch(parts[0]) or not _SEGMENT.fullmatch(parts[1]):
        return None
    return parts


def _is_string(value: Any) -> bool:
    return isinstance(value, str) and len(value) > 0


def _is_time(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return math.isfinite(number) and number > 0


def _parse_claims(p: dict[str, Any] | None) -> VerifiedClaims | None:
    """The claims as the broker signs them (``server/crypto/tokens.ts``); ``None`` when any is missing or mistyped."""
    if p is None:
        return None
    for name in ("iss", "sub", "jti", "client_id", "task_id", "scope"):
        if not _is_string(p.get(name)):
            return None
    for name in ("iat", "nbf", "exp"):
        if not _is_time(p.get(name)):
            return None
    aud = p.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not audiences or not all(map(_is_string, audiences)):
        return None
    for name in ("orchestration_id", "human", "rnw"):
        if name in p and not _is_string(p[name]):
            return None
    # Delegated tokens always carry root_iat; a renewed root token carries it too.
    if "root_iat" in p and not _is_time(p["root_iat"]):
        return None
    lineage: list[LineageFacts] = []
    if "lineage" in p:
        if not isinstance(p["lineage"], list) or not _is_time(p.get("root_iat")):
            return None
        for entry in p["lineage"]:
            if not isinstance(entry, dict):
                return None
            jti, sub = entry.get("jti"), entry.get("sub")
            if not _is_string(jti) or not _is_string(sub):
                return None
            lineage.append(LineageFacts(jti, sub))
    thumbprint: str | None = None
    if "cnf" in p:
        cnf = p["cnf"]
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not _is_string(jkt):
            return None
        thumbprint = jkt
    approval: ApprovalFacts | None = None
    if "apr" in p:
        apr = p["apr"]
        approval_id = apr.get("id") if isinstance(apr, dict) else None
        by = apr.get("by") if isinstance(apr, dict) else None
        if not _is_string(approval_id) or not isinstance(by, list) or not all(map(_is_string, by)):
            return None
        approval = ApprovalFacts(approval_id, tuple(by))
    issued_at_ms = round(float(p["iat"]) * 1000)
    root_issued_at_ms = round(float(p["root_iat"]) * 1000) if "root_iat" in p else issued_at_ms
    return VerifiedClaims(
        token_id=p["jti"],
        agent_id=p["sub"],
        app_id=p["client_id"],
        task_id=p["task_id"],
        orchestration_id=p.get("orchestration_id"),
        human_principal=p.get("human"),
        scopes=tuple(p["scope"].split(" ")),
        audiences=tuple(audiences),
        issuer=p["iss"],
        issued_at_ms=issued_at_ms,
        not_before_ms=math.ceil(float(p["nbf"]) * 1000),
        expires_at_ms=math.floor(float(p["exp"]) * 1000),
        lineage=tuple(lineage),
        root_issued_at_ms=root_issued_at_ms,
        key_thumbprint=thumbprint,
        approval=approval,
        renewed_from_token_id=p.get("rnw"),
    )


def _non_negative(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


def http_key_source(url: str, timeout: float = 5.0) -> Callable[[], dict[str, Any]]:
    """A key source for :class:`TokenVerifier` that GETs the broker's JWK set over HTTP.

    For example ``http_key_source("https://baton.example/.well-known/jwks.json")``.

    Raises:
        ValueError: When ``url`` is not ``https``, or ``http`` to a loopback
            host: a key set fetched over plain HTTP from elsewhere could be
            replaced on the way.
    """
    parsed = urllib.parse.urlsplit(url)
    host = (parsed.hostname or "").lower()
    loopback = host == "localhost"
    try:
        loopback = loopback or ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if parsed.scheme != "https" and not (parsed.scheme == "http" and loopback):
        raise ValueError("the key set must be fetched over https (http only on loopback)")

    def fetch() -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(1 << 20)
        jwks = json.loads(body)
        if not isinstance(jwks, dict):
            raise ValueError("the key set is not a JSON object")
        return jwks

    return fetch


class TokenVerifier:
    """Verifies Baton access tokens offline for one resource server.

    Thread-safe: one verifier serves every request thread.

    Example::

        verifier = TokenVerifier(
            audience="ehr-api", issuer="https://baton.local",
            keys=BrokerClient("127.0.0.1:50051"), revocations=subscriber,
        )
        verifier.load_keys()
        result = verifier.verify(token, required_scopes=["read:records:P-1"],
                                 proof=proof, htm="GET /records/P-1")
        if not result.ok:
            deny(result.reason)
    """

    def __init__(
        self,
        audience: str,
        issuer: str,
        keys: BrokerClient | Callable[[], JwkSet],
        revocations: RevocationView,
        *,
        max_staleness: float = 15.0,
        leeway: float = DEFAULT_LEEWAY,
        proof_window: float | None = None,
        replay_cache_size: int = 100_000,
        key_refetch_interval: float = 30.0,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Configure a verifier.

        Args:
            audience: This resource server's name: a token is accepted only
                if its ``aud`` contains it.
            issuer: The broker's issuer (its ``BATON_ISSUER``, default
                ``https://baton.local``).
            keys: Where the key set comes from: a :class:`baton.BrokerClient`
                (``GetKeySet``) or a function returning a JWK set (a mapping
                or JSON text), such as :func:`http_key_source`.
            revocations: The revocation view, normally a started
                :class:`baton.RevocationSubscriber`; its key-set changes are
                followed.
            max_staleness: Refuse everything (``STALE``) when the view is
                older than this, in seconds.
            leeway: Clock-skew leeway on ``exp`` and ``nbf``, in seconds:
                a token is accepted until ``exp + leeway``. The broker signs
                with its own clock, so this covers only the skew between its
                clock and ours; keep it small.
            proof_window: How far a proof's ``iat`` may be from now, in
                seconds; ``None`` for the broker's default, 30 s
                (:data:`DEFAULT_PROOF_WINDOW`), whatever ``leeway`` is.
            replay_cache_size: The most proofs remembered for replay
                detection; past it new proofs are refused.
            key_refetch_interval: An unknown ``kid`` refetches the key set
                at most once per this many seconds.
            now: The clock, in seconds since the epoch.

        Raises:
            ValueError: When ``audience`` or ``issuer`` is empty or an
                option is out of range.
        """
        if not audience:
            raise ValueError("audience is required")
        if not issuer:
            raise ValueError("issuer is required")
        self._audience = audience
        self._issuer = issuer
        self._revocations = revocations
        self._now = now
        self._max_staleness_ms = _non_negative(max_staleness, "max_staleness") * 1000
        self._leeway_ms = _non_negative(leeway, "leeway") * 1000
        window = DEFAULT_PROOF_WINDOW if proof_window is None else proof_window
        self._proof_window_ms = _non_negative(window, "proof_window") * 1000
        self._replay_cache_size = int(_non_negative(replay_cache_size, "replay_cache_size"))
        self._refetch_interval = _non_negative(key_refetch_interval, "key_refetch_interval")
        if isinstance(keys, BrokerClient):
            client = keys
            self._fetch: Callable[[], JwkSet] = lambda: client.get_key_set().jwks_json
        elif callable(keys):
            self._fetch = keys
        else:
            raise TypeError("keys must be a BrokerClient or a function returning a JWK set")

        self._keys: dict[str, _Key] = {}
        self._loaded = False
        self._last_fetch = -math.inf
        self._fetch_lock = threading.RLock()
        # "jkt.jti" -> when the proof's window closes (ms); insertion order is expiry order.
        self._seen_proofs: OrderedDict[str, float] = OrderedDict()
        self._replay_lock = threading.Lock()
        on_key_set = getattr(revocations, "on_key_set", None)
        self._unsubscribe: Callable[[], None] | None = (
            on_key_set(self.set_key_set) if callable(on_key_set) else None
        )

    def load_keys(self) -> None:
        """Fetch the key set now (for example at start, to fail fast).

        Raises:
            Exception: Whatever the fetch raises (a :class:`baton.BatonError`
                from a BrokerClient); the keys held are kept.
        """
        with self._fetch_lock:
            self._last_fetch = self._now()
            self.set_key_set(self._fetch())

    def set_key_set(self, jwks: JwkSet) -> None:
        """Replace the key set.

        Keys that are not ES256/EdDSA signing keys with a ``kid`` are
        ignored.

        Raises:
            ValueError: When ``jwks`` is not a JWK set (a mapping with a
                ``keys`` list, or its JSON).
        """
        parsed: Any = json.loads(jwks) if isinstance(jwks, (str, bytes)) else jwks
        if not isinstance(parsed, Mapping) or not isinstance(parsed.get("keys"), list):
            raise ValueError("a JWK set is an object with a `keys` list")
        keys: dict[str, _Key] = {}
        for jwk in parsed["keys"]:
            key = _import_key(jwk)
            if key is not None and isinstance(jwk.get("kid"), str):
                keys[jwk["kid"]] = key
        # One assignment: readers see the old set or the new one.
        self._keys = keys
        self._loaded = True

    @property
    def key_ids(self) -> frozenset[str]:
        """The ids of the keys held."""
        return frozenset(self._keys)

    def close(self) -> None:
        """Stop following the revocation view's key-set changes."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def verify(
        self,
        token: str,
        *,
        required_scopes: Sequence[str] = (),
        proof: str | None = None,
        htm: str | None = None,
    ) -> VerifyResult:
        """Verify a token for one call. Never raises on a hostile token or proof.

        Args:
            token: The bearer token, without ``Bearer``.
            required_scopes: Scopes this call needs; each must be covered by
                some scope of the token.
            proof: The proof of possession sent with the call
                (``baton-proof``), if any.
            htm: What the proof's ``htm`` must be for this call: the full
                gRPC method (``/pkg.Service/Method``) or, over HTTP,
                ``"<METHOD> <path>"``. Without it a key-bound token is
                refused (``PROOF_INVALID``).

        Returns:
            The verdict; ``result.ok`` says whether to serve the call.

        Raises:
            ValueError: When ``required_scopes`` holds a malformed scope (a
                caller error, not the token's).
            TypeError: When ``required_scopes`` is a single string, or holds
                something other than strings.
        """
        required: list[Scope] = []
        for text in string_list(required_scopes, "required_scopes"):
            scope = parse_scope(text)
            if scope is None:
                raise ValueError(f"malformed required scope: {str(text)[:128]}")
            required.append(scope)
        try:
            return self._verify(token, required, proof, htm)
        except Exception:
            # Defence in depth: whatever slipped past the checks is a refusal, not a crash.
            return _fail(VerifyFailureReason.MALFORMED, "the token could not be checked")

    def _verify(
        self, token: Any, required: list[Scope], proof: str | None, htm: str | None
    ) -> VerifyResult:
        R = VerifyFailureReason
        parts = _compact_parts(token, MAX_TOKEN_LENGTH)
        if parts is None:
            return _fail(R.MALFORMED, "not a compact JWS of acceptable length")
        header = _decode_json(parts[0])
        if header is None:
            return _fail(R.MALFORMED, "the header is not a JSON object")
        alg = header.get("alg")
        if alg not in ("ES256", "EdDSA"):
            return _fail(R.ALGORITHM_NOT_ALLOWED, "alg must be ES256 or EdDSA")
        if header.get("typ") != TOKEN_TYPE:
            return _fail(R.WRONG_TYPE, f"typ must be {TOKEN_TYPE}")
        if "crit" in header:
            return _fail(R.MALFORMED, "crit is not supported")
        kid = header.get("kid")
        if not isinstance(kid, str):
            return _fail(R.UNKNOWN_KEY, "no kid")
        key = self._key(kid)
        if key is None:
            return _fail(R.UNKNOWN_KEY, "kid names no key of the broker")
        # Pinned: the key's own algorithm, whatever the header says.
        if alg != key.alg:
            return _fail(R.ALGORITHM_NOT_ALLOWED, "alg is not the key's algorithm")
        if not _verify_signature(token, key):
            return _fail(R.BAD_SIGNATURE, "the signature does not verify")
        claims = _parse_claims(_decode_json(parts[1]))
        if claims is None:
            return _fail(R.MALFORMED, "claims are missing or of the wrong type")

        now_ms = self._now() * 1000
        if claims.issuer != self._issuer:
            return _fail(R.WRONG_ISSUER, "iss is not the configured issuer", claims)
        if now_ms >= claims.expires_at_ms + self._leeway_ms:
            return _fail(R.EXPIRED, "exp has passed", claims)
        if now_ms + self._leeway_ms < claims.not_before_ms:
            return _fail(R.NOT_YET_VALID, "nbf is in the future", claims)
        if self._audience not in claims.audiences:
            return _fail(R.WRONG_AUDIENCE, f"not for {self._audience}", claims)
        granted = [s for s in map(parse_scope, claims.scopes) if s is not None]
        missing = [r for r in required if not any(scope_covers(g, r) for g in granted)]
        if missing:
            text = " ".join(map(str, missing))
            return _fail(R.INSUFFICIENT_SCOPE, f"not covered: {text}", claims)

        fresh_at = self._revocations.fresh_at
        if fresh_at is None or now_ms - fresh_at * 1000 > self._max_staleness_ms:
            return _fail(R.STALE, "the revocation view is older than allowed", claims)
        if self._revocations.is_revoked(claims):
            return _fail(
                R.REVOKED,
                "the token, an ancestor, its agent, chain, task or app was revoked",
                claims,
            )

        if claims.key_thumbprint is not None:
            if not proof:
                return _fail(R.PROOF_REQUIRED, "the token is key-bound; send a proof of possession", claims)
            # A resource server that forgot to say which call this is cannot check a proof.
            if htm is None:
                return _fail(R.PROOF_INVALID, "the verifier was not told the call's htm", claims)
            problem = self._check_proof(proof, token, claims.key_thumbprint, htm, now_ms)
            if problem == "replayed":
                return _fail(R.PROOF_REPLAYED, "proof: replayed", claims)
            if problem is not None:
                return _fail(R.PROOF_INVALID, f"proof: {problem}", claims)
        return VerifyResult(True, None, "", claims)

    def _key(self, kid: str) -> _Key | None:
        """The key for ``kid``, refetching the key set (rate-limited) when unknown."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._fetch_lock:
            # Another thread may have just fetched it.
            key = self._keys.get(kid)
            if key is not None:
                return key
            interval = self._refetch_interval if self._loaded else min(
                self._refetch_interval, _UNLOADED_REFETCH_INTERVAL
            )
            if self._now() - self._last_fetch < interval:
                return None
            try:
                self.load_keys()
            except Exception:
                # Keep the keys held; the next unknown kid after the interval tries again.
                return None
            return self._keys.get(kid)

    def _check_proof(
        self, proof: Any, token: str, thumbprint: str, htm: str, now_ms: float
    ) -> str | None:
        """Check a proof of possession (after RFC 9449, as the broker does); the problem, or ``None``."""
        parts = _compact_parts(proof, _MAX_PROOF_LENGTH)
        if parts is None:
            return "not a compact JWS"
        header = _decode_json(parts[0])
        claims = _decode_json(parts[1])
        if header is None or claims is None:
            return "not a compact JWS"
        if header.get("typ") != PROOF_TYPE:
            return f"typ must be {PROOF_TYPE}"
        alg = header.get("alg")
        if alg not in ("ES256", "EdDSA"):
            return "alg must be ES256 or EdDSA"
        jwk = header.get("jwk")
        if not isinstance(jwk, dict) or "d" in jwk:
            return "the header must carry the public jwk"
        key = _import_key(jwk, alg)
        if key is None:
            return "jwk is not a valid public key for alg"
        if jwk_thumbprint(jwk) != thumbprint:
            return "signed by a key other than the token's"
        if not _verify_signature(proof, key):
            return "bad signature"
        if claims.get("htm") != htm:
            return "made for another method"
        if claims.get("ath") != token_hash(token):
            return "made for another token"
        iat = claims.get("iat")
        if isinstance(iat, bool) or not isinstance(iat, (int, float)):
            return "iat is missing"
        try:
            issued_at_ms = float(iat) * 1000
        except OverflowError:
            return "stale or future iat"
        if not math.isfinite(issued_at_ms) or abs(now_ms - issued_at_ms) > self._proof_window_ms:
            return "stale or future iat"
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 16 <= len(jti) <= 128:
            return "jti must be 16 to 128 characters"
        return self._remember(f"{thumbprint}.{jti}", issued_at_ms + self._proof_window_ms, now_ms)

    def _remember(self, proof_id: str, until_ms: float, now_ms: float) -> str | None:
        """Record a proof as used until ``until_ms``: ``"replayed"`` if seen, a problem if full."""
        seen = self._seen_proofs
        with self._replay_lock:
            previous = seen.get(proof_id)
            if previous is not None and previous >= now_ms:
                return "replayed"
            # Windows are all the same length, so the oldest entries come first.
            while seen:
                oldest, until = next(iter(seen.items()))
                if until >= now_ms:
                    break
                del seen[oldest]
            if len(seen) >= self._replay_cache_size:
                for old in [k for k, until in seen.items() if until < now_ms]:
                    del seen[old]
                # Fail closed: forgetting a live proof would let it be replayed.
                if len(seen) >= self._replay_cache_size:
                    return "too many recent proofs to track; retry"
            seen.pop(proof_id, None)
            seen[proof_id] = until_ms
            return None
