"""TokenVerifier against a key set generated here (no broker).

Hostile tokens (alg none, HS256 keyed with the public key, an alg other than
the key's, tampered, re-encoded signatures, garbage), each claim check,
scope coverage, staleness, revocation through lineage, proofs of
possession and the replay cache, and the rate-limited key refetch. The clock
is injected, so nothing here waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from jws_helpers import (
    AUDIENCE,
    ISSUER,
    P256_N,
    SigningKey,
    b64json,
    b64url,
    claims,
    es256_verifies,
    high_s_twin,
    hs256,
    jwks,
    signature_s,
)

import baton
from baton import AgentKey, RevocationSet, TokenVerifier, VerifyFailureReason
from baton.v1 import broker_pb2

NOW = 1_800_000_000.0
R = VerifyFailureReason


class FakeView:
    """A revocation view with a settable freshness and set."""

    def __init__(self, fresh_at: float | None = NOW) -> None:
        self.fresh_at = fresh_at
        self.set = RevocationSet()
        self.key_listeners: list[Callable[[dict[str, Any]], None]] = []

    def is_revoked(self, facts: Any) -> bool:
        return self.set.is_revoked(facts)

    def on_key_set(self, fn: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        self.key_listeners.append(fn)
        return lambda: self.key_listeners.remove(fn)


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class KeySource:
    """Counts fetches; serves whatever ``keys`` holds."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.fail = False

    def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        if self.fail:
            raise ConnectionError("broker down")
        return jwks(*self.keys)


@pytest.fixture
def es_key() -> SigningKey:
    return SigningKey("k-es", "ES256")


@pytest.fixture
def ed_key() -> SigningKey:
    return SigningKey("k-ed", "EdDSA")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def view() -> FakeView:
    return FakeView()


@pytest.fixture
def source(es_key: SigningKey, ed_key: SigningKey) -> KeySource:
    return KeySource(es_key, ed_key)


@pytest.fixture
def verifier(source: KeySource, view: FakeView, clock: Clock) -> TokenVerifier:
    v = TokenVerifier(AUDIENCE, ISSUER, keys=source, revocations=view, now=clock)
    v.load_keys()
    return v


def test_accepts_valid_tokens_of_both_algorithms(
    verifier: TokenVerifier, es_key: SigningKey, ed_key: SigningKey
) -> None:
    for key in (es_key, ed_key):
        result = verifier.verify(key.sign(claims(NOW)), required_scopes=["read:records:P-1"])
        assert result.ok, result
        assert result  # truth value is ok
        assert result.reason is None
        c = result.claims
        assert c is not None
        assert (c.token_id, c.agent_id, c.app_id, c.task_id) == ("tok_1", "agt_1", "app_1", "task-1")
        assert c.scopes == ("read:records:P-1", "write:notes:*")
        assert c.audiences == (AUDIENCE,)
        assert c.depth == 0 and c.lineage == ()
        assert c.root_issued_at_ms == c.issued_at_ms == round(NOW * 1000)
        assert c.key_thumbprint is None and c.human_principal is None


def test_decodes_lineage_and_optional_claims(verifier: TokenVerifier, es_key: SigningKey) -> None:
    token = es_key.sign(
        claims(
            NOW,
            lineage=[{"jti": "root", "sub": "agt_0"}],
            root_iat=NOW - 10.5,
            human="alice@example.com",
            orchestration_id="run-7",
            aud=AUDIENCE,  # a single string is an audience too
        )
    )
    result = verifier.verify(token)
    assert result.ok, result
    c = result.claims
    assert c is not None
    assert c.lineage == (baton.LineageFacts("root", "agt_0"),)
    assert c.depth == 1
    assert c.root_issued_at_ms == round((NOW - 10.5) * 1000)
    assert (c.human_principal, c.orchestration_id) == ("alice@example.com", "run-7")


def _forge_header(token: str, header: dict[str, Any]) -> str:
    _, payload, signature = token.split(".")
    return f"{b64json(header)}.{payload}.{signature}"


def test_refuses_alg_none(verifier: TokenVerifier, es_key: SigningKey) -> None:
    payload = b64json(claims(NOW))
    for alg in ("none", "None", "NONE", ""):
        header = b64json({"alg": alg, "typ": "at+jwt", "kid": es_key.kid})
        for token in (f"{header}.{payload}.", f"{header}.{payload}"):
            result = verifier.verify(token)
            assert not result.ok
            assert result.reason in (R.ALGORITHM_NOT_ALLOWED, R.MALFORMED), (alg, result)
    # The well-formed variant is refused for its algorithm, before any key is looked at.
    header = b64json({"alg": "none", "typ": "at+jwt", "kid": es_key.kid})
    assert verifier.verify(f"{header}.{payload}.{'A' * 86}").reason == R.ALGORITHM_NOT_ALLOWED


def test_refuses_hs256_keyed_with_the_public_key(verifier: TokenVerifier, es_key: SigningKey) -> None:
    for secret in (
        es_key.public_pem(),
        json.dumps(es_key.jwk()).encode(),
        es_key.jwk()["x"].encode(),
    ):
        result = verifier.verify(hs256(secret, claims(NOW), es_key.kid))
        assert result.reason == R.ALGORITHM_NOT_ALLOWED, result
        assert result.claims is None


def test_pins_the_algorithm_to_the_keys(
    verifier: TokenVerifier, es_key: SigningKey, ed_key: SigningKey
) -> None:
    # An EdDSA signature under the ES256 key's kid, and the reverse.
    eddsa_on_es = ed_key.sign(claims(NOW), {"alg": "EdDSA", "typ": "at+jwt", "kid": es_key.kid})
    es_on_ed = es_key.sign(claims(NOW), {"alg": "ES256", "typ": "at+jwt", "kid": ed_key.kid})
    for token in (eddsa_on_es, es_on_ed):
        assert verifier.verify(token).reason == R.ALGORITHM_NOT_ALLOWED
    for alg in ("RS256", "ES384", "PS256", "Ed25519", "es256"):
        header = {"alg": alg, "typ": "at+jwt", "kid": es_key.kid}
        assert verifier.verify(es_key.sign(claims(NOW), header)).reason == R.ALGORITHM_NOT_ALLOWED


def test_refuses_tampered_tokens(verifier: TokenVerifier, es_key: SigningKey, ed_key: SigningKey) -> None:
    for key in (es_key, ed_key):
        token = key.sign(claims(NOW))
        header, payload, signature = token.split(".")
        # A payload with more authority, under the original signature.
        wider = b64json(claims(NOW, scope="*:*:*"))
        assert verifier.verify(f"{header}.{wider}.{signature}").reason == R.BAD_SIGNATURE
        # A header changed (even to an equivalent one) breaks the signature.
        other_header = b64json({"typ": "at+jwt", "alg": key.alg, "kid": key.kid})
        assert verifier.verify(f"{other_header}.{payload}.{signature}").reason == R.BAD_SIGNATURE
        # Flipped bits in the signature.
        flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
        assert verifier.verify(f"{header}.{payload}.{flipped}").reason == R.BAD_SIGNATURE
        # Another spelling of the same signature bytes (non-zero unused bits).
        last = signature[-1]
        respelled = signature[:-1] + {"A": "B", "Q": "R", "g": "h", "w": "x"}[last]
        assert verifier.verify(f"{header}.{payload}.{respelled}").reason == R.BAD_SIGNATURE
        # Truncated, padded, or signed by another key of the same kid and alg.
        assert verifier.verify(f"{header}.{payload}.{signature[:-2]}").reason == R.BAD_SIGNATURE
        assert verifier.verify(f"{header}.{payload}.{signature}==").reason == R.BAD_SIGNATURE
        impostor = SigningKey(key.kid, key.alg)
        assert verifier.verify(impostor.sign(claims(NOW))).reason == R.BAD_SIGNATURE


def test_refuses_the_high_s_twin_of_a_token(verifier: TokenVerifier, es_key: SigningKey) -> None:
    # (r, n - s) verifies under plain ECDSA as well as (r, s); the broker signs
    # only low-S and refuses the twin, and so must the verifier, or one token
    # would have two string forms.
    for i in range(16):
        token = es_key.sign(claims(NOW, jti=f"tok_{i}"))
        assert signature_s(token) <= P256_N // 2
        assert verifier.verify(token).ok
        twin = high_s_twin(token)
        assert es256_verifies(twin, es_key.jwk()), "the twin is a valid ECDSA signature"
        result = verifier.verify(twin)
        assert result.reason == R.BAD_SIGNATURE, result
        assert result.claims is None


def test_checks_type_issuer_lifetime_and_audience(
    verifier: TokenVerifier, es_key: SigningKey, clock: Clock
) -> None:
    def reason(token: str) -> VerifyFailureReason | None:
        return verifier.verify(token).reason

    bad_typ = {"alg": "ES256", "typ": "JWT", "kid": es_key.kid}
    assert reason(es_key.sign(claims(NOW), bad_typ)) == R.WRONG_TYPE
    no_typ = {"alg": "ES256", "kid": es_key.kid}
    assert reason(es_key.sign(claims(NOW), no_typ)) == R.WRONG_TYPE
    crit = {"alg": "ES256", "typ": "at+jwt", "kid": es_key.kid, "crit": ["exp"]}
    assert reason(es_key.sign(claims(NOW), crit)) == R.MALFORMED
    assert reason(es_key.sign(claims(NOW, iss="https://evil.example"))) == R.WRONG_ISSUER
    assert reason(es_key.sign(claims(NOW, aud=["other-api"]))) == R.WRONG_AUDIENCE
    assert reason(es_key.sign(claims(NOW, aud=["other-api", AUDIENCE]))) is None

    # exp with the default 5 s leeway: accepted up to exp + 5 s, refused from there.
    token = es_key.sign(claims(NOW, exp=int(NOW) - 4))
    assert reason(token) is None
    token = es_key.sign(claims(NOW, exp=int(NOW) - 5))
    result = verifier.verify(token)
    assert result.reason == R.EXPIRED
    assert result.claims is not None and result.claims.token_id == "tok_1"  # signature was good
    # nbf: refused when more than the leeway ahead.
    assert reason(es_key.sign(claims(NOW, nbf=int(NOW) + 6))) == R.NOT_YET_VALID
    assert reason(es_key.sign(claims(NOW, nbf=int(NOW) + 4))) is None
    # The expired check comes before staleness: reported as such even with the view down.
    clock.t = NOW + 10_000
    assert reason(es_key.sign(claims(NOW))) == R.EXPIRED


def test_leeway_is_5_s_by_default_and_configurable(
    source: KeySource, view: FakeView, clock: Clock, es_key: SigningKey, agent: AgentKey
) -> None:
    expired_10_s_ago = es_key.sign(claims(NOW - 300, exp=int(NOW) - 10))
    valid_in_10_s = es_key.sign(claims(NOW, nbf=int(NOW) + 10))
    default = TokenVerifier(AUDIENCE, ISSUER, keys=source, revocations=view, now=clock)
    assert default.verify(expired_10_s_ago).reason == R.EXPIRED
    assert default.verify(valid_in_10_s).reason == R.NOT_YET_VALID
    lenient = TokenVerifier(AUDIENCE, ISSUER, keys=source, revocations=view, now=clock, leeway=30.0)
    assert lenient.verify(expired_10_s_ago).ok
    assert lenient.verify(valid_in_10_s).ok
    assert lenient.verify(es_key.sign(claims(NOW - 300, exp=int(NOW) - 30))).reason == R.EXPIRED
    # The proof-iat window is its own setting, still the broker's 30 s: a
    # proof made 20 s ago (agent clock behind) passes with the 5 s leeway.
    token = bound_token(es_key, agent)
    behind = make_proof(agent, token, iat=int(NOW) - 20, jti="b" * 20)
    ahead = make_proof(agent, token, iat=int(NOW) + 20, jti="a" * 20)
    assert default.verify(token, proof=behind, htm=HTM).ok
    assert default.verify(token, proof=ahead, htm=HTM).ok
    stale = make_proof(agent, token, iat=int(NOW) - 31, jti="s" * 20)
    assert default.verify(token, proof=stale, htm=HTM).reason == R.PROOF_INVALID
    narrow = TokenVerifier(
        AUDIENCE, ISSUER, keys=source, revocations=view, now=clock, proof_window=5.0
    )
    late = make_proof(agent, token, iat=int(NOW) - 20)
    assert narrow.verify(token, proof=late, htm=HTM).reason == R.PROOF_INVALID


@pytest.mark.parametrize(
    "overrides",
    [
        {"jti": None},
        {"sub": ""},
        {"iss": 7},
        {"client_id": None},
        {"task_id": None},
        {"scope": None},
        {"exp": "tomorrow"},
        {"exp": True},
        {"iat": None},
        {"nbf": -1},
        {"exp": 10**400},
        {"aud": []},
        {"aud": [AUDIENCE, 3]},
        {"human": ""},
        {"lineage": [{"jti": "p"}], "root_iat": NOW},
        {"lineage": [{"jti": "p", "sub": "a"}]},  # no root_iat
        {"lineage": "p", "root_iat": NOW},
        {"cnf": {}},
        {"cnf": "jkt"},
    ],
)
def test_refuses_missing_or_mistyped_claims(
    verifier: TokenVerifier, es_key: SigningKey, overrides: dict[str, Any]
) -> None:
    payload = claims(NOW)
    payload.update(overrides)
    payload = {k: v for k, v in payload.items() if v is not None}
    header = b64json({"alg": "ES256", "typ": "at+jwt", "kid": es_key.kid})
    body = b64url(json.dumps(payload).encode())
    signing_input = f"{header}.{body}"
    token = f"{signing_input}.{b64url(es_key.raw_signature(signing_input.encode()))}"
    result = verifier.verify(token)
    assert result.reason == R.MALFORMED, (overrides, result)


HOSTILE = [
    "",
    ".",
    "..",
    "...",
    "a.b",
    "a.b.c.d",
    "Bearer x.y.z",
    "!!!.???.***",
    "e30.e30.",
    b64json([1, 2]) + ".e30.sig",
    b64json("str") + ".e30.sig",
    "eyJ.eyJ.eyJ",
    "x" * (16 * 1024 + 1),
    "é.é.é",
    b64url(b"\xff\xfe") + ".e30.e30",
    b64url(b"[" * 10_000) + ".e30.e30",
    b64json({"alg": "ES256", "typ": "at+jwt", "kid": 7}) + ".e30." + "A" * 86,
    b64json({"alg": "ES256", "typ": "at+jwt", "kid": "nope"}) + ".e30." + "A" * 86,
    b64json({"alg": "ES256", "typ": "at+jwt", "kid": "k-es"}) + "." + b64url(b"\x00\x01") + "." + "A" * 86,
    b64json({"alg": "ES256", "typ": "at+jwt", "kid": "k-es"}) + ".e30." + "A" * 86,
    b64json({"alg": "ES256", "typ": "at+jwt", "kid": "k-es"}) + ".e30." + "_" * 85 + "w",
]


@pytest.mark.parametrize("token", HOSTILE, ids=range(len(HOSTILE)))
def test_never_raises_on_garbage(verifier: TokenVerifier, token: str) -> None:
    result = verifier.verify(token)
    assert not result.ok
    assert not result  # a refusal is falsy: `if verifier.verify(t):` is safe
    assert isinstance(result.reason, VerifyFailureReason)
    assert token not in result.detail or token == ""


def test_never_raises_on_non_strings(verifier: TokenVerifier) -> None:
    for value in (None, 42, b"a.b.c", ["a", "b", "c"]):
        result = verifier.verify(value)  # type: ignore[arg-type]
        assert result.reason == R.MALFORMED


def test_required_scopes_by_coverage(verifier: TokenVerifier, es_key: SigningKey) -> None:
    token = es_key.sign(claims(NOW, scope="read:records:* write:notes:n-1"))
    assert verifier.verify(token, required_scopes=["read:records:P-1", "write:notes:n-1"]).ok
    result = verifier.verify(token, required_scopes=["write:notes:n-2", "read:records:P-1"])
    assert result.reason == R.INSUFFICIENT_SCOPE
    assert "write:notes:n-2" in result.detail
    # A wildcard asked for is met only by a wildcard.
    assert verifier.verify(token, required_scopes=["write:notes:*"]).reason == R.INSUFFICIENT_SCOPE
    assert verifier.verify(token, required_scopes=["read:records:*"]).ok
    # Malformed required scopes are the caller's bug: raised, not a verdict.
    with pytest.raises(ValueError):
        verifier.verify(token, required_scopes=["read:records"])
    with pytest.raises(TypeError):
        verifier.verify(token, required_scopes="read:records:P-1")
    with pytest.raises(TypeError):
        verifier.verify(token, required_scopes=[b"read:records:P-1"])  # type: ignore[list-item]


def test_stale_view_refuses_what_would_pass(
    verifier: TokenVerifier, es_key: SigningKey, view: FakeView, clock: Clock
) -> None:
    token = es_key.sign(claims(NOW))
    view.fresh_at = None
    assert verifier.verify(token).reason == R.STALE
    view.fresh_at = NOW - 15.0  # exactly the bound: still fresh
    assert verifier.verify(token).ok
    view.fresh_at = NOW - 15.001
    result = verifier.verify(token)
    assert result.reason == R.STALE
    assert result.claims is not None
    # Checks that need no revocation data still say what they found.
    assert verifier.verify(es_key.sign(claims(NOW, aud=["x"]))).reason == R.WRONG_AUDIENCE


def test_revoked_directly_and_through_lineage(
    verifier: TokenVerifier, es_key: SigningKey, view: FakeView
) -> None:
    parent = es_key.sign(claims(NOW, jti="parent", sub="agt_p"))
    child = es_key.sign(
        claims(NOW, jti="child", sub="agt_c", lineage=[{"jti": "parent", "sub": "agt_p"}], root_iat=NOW - 1)
    )
    assert verifier.verify(parent).ok and verifier.verify(child).ok
    r = broker_pb2.Revocation(target=broker_pb2.REVOCATION_TARGET_TOKEN, id="parent", app_id="app_1", cursor="1")
    view.set.add(r)
    for token in (parent, child):
        result = verifier.verify(token)
        assert result.reason == R.REVOKED
        assert result.claims is not None
    # Task revocation: only chains rooted at or before it.
    view.set = RevocationSet()
    task = broker_pb2.Revocation(target=broker_pb2.REVOCATION_TARGET_TASK, id="task-1", app_id="app_1", cursor="2")
    task.revoke_time.FromMilliseconds(round((NOW - 0.5) * 1000))
    view.set.add(task)
    assert verifier.verify(child).reason == R.REVOKED  # root issued at NOW - 1
    assert verifier.verify(parent).ok  # issued at NOW, after the revocation: a reused task id


def test_unknown_kid_refetches_at_most_once_per_interval(
    es_key: SigningKey, view: FakeView, clock: Clock
) -> None:
    source = KeySource(es_key)
    verifier = TokenVerifier(AUDIENCE, ISSUER, keys=source, revocations=view, now=clock)
    verifier.load_keys()
    assert source.fetches == 1
    rotated = SigningKey("k-new", "EdDSA")
    token = rotated.sign(claims(NOW))
    # Not published yet: one refetch right away? No: the load just happened (rate limit).
    assert verifier.verify(token).reason == R.UNKNOWN_KEY
    assert source.fetches == 1
    clock.t += 30
    view.fresh_at = clock.t
    # Published now; the interval has passed: one refetch finds it.
    source.keys.append(rotated)
    assert verifier.verify(token).ok
    assert source.fetches == 2
    # Unknown kids in a burst do not hammer the broker.
    for i in range(20):
        stranger = SigningKey(f"k-{i}").sign(claims(NOW))
        assert verifier.verify(stranger).reason == R.UNKNOWN_KEY
    assert source.fetches == 2
    # A failing fetch keeps the keys held.
    clock.t += 31
    view.fresh_at = clock.t
    source.fail = True
    assert verifier.verify(SigningKey("k-x").sign(claims(NOW))).reason == R.UNKNOWN_KEY
    assert verifier.verify(token).ok
    assert verifier.key_ids == {"k-es", "k-new"}


def test_follows_key_set_changes_from_the_view(es_key: SigningKey, view: FakeView, clock: Clock) -> None:
    source = KeySource(es_key)
    verifier = TokenVerifier(AUDIENCE, ISSUER, keys=source, revocations=view, now=clock)
    verifier.load_keys()
    rotated = SigningKey("k-rot", "ES256")
    assert len(view.key_listeners) == 1
    view.key_listeners[0](jwks(es_key, rotated))
    assert verifier.verify(rotated.sign(claims(NOW))).ok
    assert source.fetches == 1
    verifier.close()
    assert view.key_listeners == []


def test_key_set_ignores_unusable_keys(view: FakeView, clock: Clock) -> None:
    good = SigningKey("good")
    bad_use = {**SigningKey("enc").jwk(), "use": "enc"}
    private = {**SigningKey("priv").jwk(), "d": "AAAA"}
    wrong_alg = {**SigningKey("hs").jwk(), "alg": "HS256"}
    rsa = {"kty": "RSA", "kid": "rsa", "alg": "RS256", "n": "AQAB", "e": "AQAB"}
    off_curve = {**SigningKey("off").jwk(), "y": b64url(b"\x01" * 32)}
    no_kid = {k: v for k, v in SigningKey("x").jwk().items() if k != "kid"}
    keys = {"keys": [good.jwk(), bad_use, private, wrong_alg, rsa, off_curve, no_kid, "junk", None]}
    verifier = TokenVerifier(AUDIENCE, ISSUER, keys=lambda: json.dumps(keys), revocations=view, now=clock)
    verifier.load_keys()
    assert verifier.key_ids == {"good"}
    with pytest.raises(ValueError):
        verifier.set_key_set({"nope": []})


# -- proofs of possession ---------------------------------------------------------------

HTM = "GET /records/P-1"


@pytest.fixture
def agent() -> AgentKey:
    return AgentKey.generate()


def bound_token(es_key: SigningKey, agent: AgentKey) -> str:
    return es_key.sign(claims(NOW, cnf={"jkt": agent.thumbprint}))


def make_proof(agent: AgentKey, token: str, htm: str = HTM, **overrides: Any) -> str:
    """A proof like AgentKey.proof, with any claim or header member overridden."""
    header: dict[str, Any] = {"alg": agent.algorithm, "typ": "baton-proof+jwt", "jwk": agent.public_jwk}
    header.update(overrides.pop("header", {}))
    body: dict[str, Any] = {"htm": htm, "ath": baton.token_hash(token), "iat": int(NOW), "jti": "j" * 24}
    body.update(overrides)
    signing_input = f"{b64json(header)}.{b64json(body)}".encode()
    return f"{signing_input.decode()}.{b64url(agent._sign(signing_input))}"


def test_key_bound_token_needs_a_valid_fresh_unused_proof(
    verifier: TokenVerifier, es_key: SigningKey, agent: AgentKey, clock: Clock, view: FakeView
) -> None:
    token = bound_token(es_key, agent)
    assert verifier.verify(token).reason == R.PROOF_REQUIRED
    assert verifier.verify(token, proof="").reason == R.PROOF_REQUIRED
    good = make_proof(agent, token)
    assert verifier.verify(token, proof=good).reason == R.PROOF_INVALID  # no htm given
    result = verifier.verify(token, proof=good, htm=HTM)
    assert result.ok, result
    assert result.claims is not None and result.claims.key_thumbprint == agent.thumbprint
    assert verifier.verify(token, proof=good, htm=HTM).reason == R.PROOF_REPLAYED
    # AgentKey.proof (the SDK's own) is accepted too, with the real clock.
    clock_now = time.time()
    clock.t = view.fresh_at = clock_now
    live_token = es_key.sign(claims(clock_now, cnf={"jkt": agent.thumbprint}))
    assert verifier.verify(live_token, proof=agent.proof(HTM, live_token), htm=HTM).ok


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("another method", lambda a, t: make_proof(a, t, htm="POST /records/P-1")),
        ("another token", lambda a, t: make_proof(a, t, ath=baton.token_hash(t + "x"))),
        ("another key", lambda a, t: make_proof(AgentKey.generate(), t)),
        ("stale iat", lambda a, t: make_proof(a, t, iat=int(NOW) - 31)),
        ("future iat", lambda a, t: make_proof(a, t, iat=int(NOW) + 31)),
        ("no iat", lambda a, t: make_proof(a, t, iat=None)),
        ("boolean iat", lambda a, t: make_proof(a, t, iat=True)),
        ("short jti", lambda a, t: make_proof(a, t, jti="short")),
        ("wrong typ", lambda a, t: make_proof(a, t, header={"typ": "dpop+jwt"})),
        ("alg none", lambda a, t: make_proof(a, t, header={"alg": "none"})),
        ("alg not the jwk's", lambda a, t: make_proof(a, t, header={"alg": "EdDSA"})),
        ("private jwk", lambda a, t: make_proof(a, t, header={"jwk": a.private_jwk()})),
        ("no jwk", lambda a, t: make_proof(a, t, header={"jwk": None})),
        ("tampered", lambda a, t: make_proof(a, t)[:-3] + "AAA"),
        ("garbage", lambda a, t: "x.y.z"),
        ("too long", lambda a, t: "a" * 5000),
    ],
)
def test_refuses_bad_proofs(
    verifier: TokenVerifier,
    es_key: SigningKey,
    agent: AgentKey,
    name: str,
    build: Callable[[AgentKey, str], str],
) -> None:
    token = bound_token(es_key, agent)
    result = verifier.verify(token, proof=build(agent, token), htm=HTM)
    assert result.reason == R.PROOF_INVALID, (name, result)


def test_refuses_the_high_s_twin_of_a_proof(
    verifier: TokenVerifier, es_key: SigningKey, agent: AgentKey
) -> None:
    token = bound_token(es_key, agent)
    for i in range(16):
        proof = make_proof(agent, token, jti=f"{i:02d}" * 10)
        assert signature_s(proof) <= P256_N // 2
        twin = high_s_twin(proof)
        assert es256_verifies(twin, agent.public_jwk)
        result = verifier.verify(token, proof=twin, htm=HTM)
        assert result.reason == R.PROOF_INVALID and result.detail == "proof: bad signature", result
        # The twin took no place in the replay cache: the low form still passes once.
        assert verifier.verify(token, proof=proof, htm=HTM).ok


def test_replay_cache_is_bounded_and_fails_closed(
    es_key: SigningKey, agent: AgentKey, view: FakeView, clock: Clock
) -> None:
    verifier = TokenVerifier(
        AUDIENCE, ISSUER, keys=lambda: jwks(es_key), revocations=view, now=clock, replay_cache_size=2
    )
    token = bound_token(es_key, agent)
    p1, p2, p3 = (make_proof(agent, token, jti=f"{i}" * 20) for i in range(1, 4))
    assert verifier.verify(token, proof=p1, htm=HTM).ok
    assert verifier.verify(token, proof=p2, htm=HTM).ok
    # Full of live proofs: a new one is refused rather than an old one forgotten.
    result = verifier.verify(token, proof=p3, htm=HTM)
    assert result.reason == R.PROOF_INVALID and "too many" in result.detail
    assert verifier.verify(token, proof=p1, htm=HTM).reason == R.PROOF_REPLAYED
    # Once the windows close (iat + 30 s), room is made; a new proof at the new time passes.
    clock.t = NOW + 31
    view.fresh_at = clock.t
    p4 = make_proof(agent, token, iat=int(clock.t), jti="4" * 20)
    assert verifier.verify(token, proof=p4, htm=HTM).ok


def test_constructor_validation(view: FakeView) -> None:
    with pytest.raises(ValueError):
        TokenVerifier("", ISSUER, keys=dict, revocations=view)
    with pytest.raises(ValueError):
        TokenVerifier(AUDIENCE, "", keys=dict, revocations=view)
    with pytest.raises(ValueError):
        TokenVerifier(AUDIENCE, ISSUER, keys=dict, revocations=view, max_staleness=-1)
    with pytest.raises(TypeError):
        TokenVerifier(AUDIENCE, ISSUER, keys="https://x", revocations=view)  # type: ignore[arg-type]


def test_http_htm() -> None:
    assert baton.http_htm("get", "/records/P-1?x=1#f") == "GET /records/P-1"
    assert baton.http_htm("POST", "https://ehr.example/records/P-1?x=1") == "POST /records/P-1"
    assert baton.http_htm("GET", "https://ehr.example") == "GET /"
    key = AgentKey.generate("EdDSA")
    key.proof(baton.http_htm("GET", "/records/P-1"), "t")
    with pytest.raises(ValueError):
        key.proof("records", "t")


def test_http_key_source_refuses_plain_http_off_loopback() -> None:
    with pytest.raises(ValueError):
        baton.http_key_source("http://baton.example/.well-known/jwks.json")
    with pytest.raises(ValueError):
        baton.http_key_source("file:///etc/passwd")
    baton.http_key_source("http://127.0.0.1:8080/.well-known/jwks.json")
    baton.http_key_source("https://baton.example/.well-known/jwks.json")
