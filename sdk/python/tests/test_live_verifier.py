"""The resource-server side (RevocationSubscriber + TokenVerifier) against a live broker.

Same environment as test_live_broker.py (BATON_ADDR, BATON_CLIENT_ID,
BATON_CLIENT_SECRET, BATON_AUDIENCE, BATON_SCOPE; BATON_JWKS_URL for the
HTTP key source; BATON_ISSUER if the broker's is not the default). Without
them these tests fail: a live test that silently skips proves nothing.

Revocations reach the verifier through the stream, asynchronously: each
check polls for up to 5 s and asserts nothing about timing beyond that.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from jws_helpers import P256_N, es256_verifies, high_s_twin, signature_s
from test_live_broker import LiveConfig, app_client, live_config

import baton
from baton import RevocationSubscriber, TokenVerifier, VerifyFailureReason, VerifyResult
from baton.v1 import broker_pb2

ISSUER = os.environ.get("BATON_ISSUER") or "https://baton.local"
REVOCATION_DEADLINE = 5.0
HTM = "GET /records/P-1042"


@contextmanager
def resource_server(
    cfg: LiveConfig, target: str | None = None
) -> Iterator[tuple[RevocationSubscriber, TokenVerifier, baton.BrokerClient]]:
    """A started subscriber (on ``target``, the broker by default), a verifier on it, and the app's client."""
    client = app_client(cfg)
    subscriber = RevocationSubscriber(
        target or cfg.addr, client_id=cfg.client_id, client_secret=cfg.client_secret
    )
    verifier = TokenVerifier(cfg.audience, ISSUER, keys=client, revocations=subscriber)
    try:
        subscriber.start()
        verifier.load_keys()
        yield subscriber, verifier, client
    finally:
        verifier.close()
        subscriber.close()
        client.close()


def until_refused(verify: Callable[[], VerifyResult], reason: VerifyFailureReason) -> VerifyResult:
    """Verify until the result is ``reason``, for up to REVOCATION_DEADLINE; return the last result."""
    deadline = time.monotonic() + REVOCATION_DEADLINE
    while True:
        result = verify()
        if result.reason == reason or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def issue(client: baton.BrokerClient, cfg: LiveConfig, key: baton.AgentKey | None = None) -> str:
    issued = client.issue(
        f"sdk-python-rs-{time.time_ns()}",
        scopes=[cfg.scope],
        audiences=[cfg.audience],
        agent_public_key_jwk=key or "",
    )
    token: str = issued.access_token
    return token


def test_subscriber_becomes_ready_and_an_issued_token_verifies() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client):
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        assert subscriber.state == "live"
        fresh = subscriber.fresh_at
        assert fresh is not None and fresh <= time.time()

        token = issue(client, cfg)
        result = verifier.verify(token, required_scopes=[cfg.scope])
        assert result.ok, result
        claims = result.claims
        assert claims is not None
        assert claims.app_id == cfg.client_id
        assert claims.scopes == (cfg.scope,)
        assert cfg.audience in claims.audiences
        assert claims.issuer == ISSUER
        assert claims.depth == 0 and claims.key_thumbprint is None
        # The broker's own verdict agrees on the claims.
        online = client.validate(token, cfg.audience)
        assert online.valid and online.claims.token_id == claims.token_id

        action, resource, _ = cfg.scope.split(":", 2)
        other = f"{action}:{resource}:not-{claims.token_id}"
        assert verifier.verify(token, required_scopes=[other]).reason == VerifyFailureReason.INSUFFICIENT_SCOPE
        elsewhere = TokenVerifier("another-api", ISSUER, keys=client, revocations=subscriber)
        assert elsewhere.verify(token).reason == VerifyFailureReason.WRONG_AUDIENCE
        tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBA")
        assert not verifier.verify(tampered).ok


def test_high_s_twin_of_a_broker_token_is_refused() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client):
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        jwks = json.loads(client.get_key_set().jwks_json)
        for _ in range(8):
            token = issue(client, cfg)
            header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
            assert header["alg"] == "ES256", "the broker under test signs ES256"
            assert signature_s(token) <= P256_N // 2, "the broker signs low-S"
            assert verifier.verify(token).ok
            twin = high_s_twin(token)
            jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
            assert es256_verifies(twin, jwk), "the twin is a valid ECDSA signature"
            result = verifier.verify(twin)
            assert result.reason == VerifyFailureReason.BAD_SIGNATURE, result


def test_token_revoked_by_the_app_is_rejected() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client):
        assert subscriber.wait_ready(5)
        token = issue(client, cfg)
        first = verifier.verify(token)
        assert first.ok, first
        assert first.claims is not None
        client.revoke(broker_pb2.REVOCATION_TARGET_TOKEN, first.claims.token_id, reason="sdk/python rs test")
        result = until_refused(lambda: verifier.verify(token), VerifyFailureReason.REVOKED)
        assert result.reason == VerifyFailureReason.REVOKED, result
        assert result.claims is not None and result.claims.token_id == first.claims.token_id


def test_delegated_child_of_a_released_parent_is_rejected() -> None:
    cfg = live_config()
    key = baton.AgentKey.generate()
    with resource_server(cfg) as (subscriber, verifier, client):
        assert subscriber.wait_ready(5)
        parent = issue(client, cfg, key)
        child = client.delegate(parent, [cfg.scope], key=key).access_token

        verdict = verifier.verify(child, required_scopes=[cfg.scope])
        assert verdict.ok, verdict
        assert verdict.claims is not None and verdict.claims.depth == 1
        parent_ok = verifier.verify(parent, proof=key.proof(HTM, parent), htm=HTM)
        assert parent_ok.ok, parent_ok
        assert parent_ok.claims is not None
        assert verdict.claims.lineage[0].token_id == parent_ok.claims.token_id

        client.release(parent, key, reason="sdk/python rs test")
        result = until_refused(lambda: verifier.verify(child), VerifyFailureReason.REVOKED)
        assert result.reason == VerifyFailureReason.REVOKED, result
        result = verifier.verify(parent, proof=key.proof(HTM, parent), htm=HTM)
        assert result.reason == VerifyFailureReason.REVOKED, result


def test_key_bound_token_needs_a_proof_at_the_resource_server() -> None:
    cfg = live_config()
    key = baton.AgentKey.generate("EdDSA")
    with resource_server(cfg) as (subscriber, verifier, client):
        assert subscriber.wait_ready(5)
        token = issue(client, cfg, key)
        assert verifier.verify(token).reason == VerifyFailureReason.PROOF_REQUIRED
        proof = key.proof(HTM, token)
        assert verifier.verify(token, proof=proof, htm="GET /records/other").reason == VerifyFailureReason.PROOF_INVALID
        result = verifier.verify(token, proof=proof, htm=HTM)
        assert result.ok, result
        assert result.claims is not None and result.claims.key_thumbprint == key.thumbprint
        assert verifier.verify(token, proof=proof, htm=HTM).reason == VerifyFailureReason.PROOF_REPLAYED
        other = baton.AgentKey.generate().proof(HTM, token)
        assert verifier.verify(token, proof=other, htm=HTM).reason == VerifyFailureReason.PROOF_INVALID
        client.release(token, key)


def test_subscriber_on_a_closed_port_is_never_fresh_and_the_verifier_answers_stale() -> None:
    cfg = live_config()
    with resource_server(cfg, target="127.0.0.1:1") as (subscriber, verifier, client):
        token = issue(client, cfg)
        assert not subscriber.wait_ready(1.0)
        assert subscriber.fresh_at is None
        assert subscriber.state in ("connecting", "backoff")
        result = verifier.verify(token, required_scopes=[cfg.scope])
        assert result.reason == VerifyFailureReason.STALE, result
        # Everything but freshness was checked: the claims are there.
        assert result.claims is not None and result.claims.app_id == cfg.client_id


def test_key_set_over_http_verifies_the_same_tokens() -> None:
    cfg = live_config()
    url = os.environ.get("BATON_JWKS_URL")
    if not url:
        pytest.fail("BATON_JWKS_URL is not set (see test/sdk/run-live.ts)", pytrace=False)
    with resource_server(cfg) as (subscriber, _, client):
        assert subscriber.wait_ready(5)
        verifier = TokenVerifier(
            cfg.audience, ISSUER, keys=baton.http_key_source(url), revocations=subscriber
        )
        verifier.load_keys()
        assert verifier.key_ids
        token = issue(client, cfg)
        result = verifier.verify(token, required_scopes=[cfg.scope])
        assert result.ok, result
