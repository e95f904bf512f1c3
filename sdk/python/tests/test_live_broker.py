"""The Python SDK against a live broker.

The script that starts the broker sets BATON_ADDR (host:port),
BATON_CLIENT_ID, BATON_CLIENT_SECRET, BATON_AUDIENCE and BATON_SCOPE (one
scope inside the app's ceiling). Without them these tests fail: a live test
that silently skips proves nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import grpc
import pytest

import baton
from baton.v1 import broker_pb2, errors_pb2

_ENV = ("BATON_ADDR", "BATON_CLIENT_ID", "BATON_CLIENT_SECRET", "BATON_AUDIENCE", "BATON_SCOPE")


@dataclass(frozen=True)
class LiveConfig:
    addr: str
    client_id: str
    client_secret: str
    audience: str
    scope: str


def live_config() -> LiveConfig:
    missing = [name for name in _ENV if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"live broker test needs environment variables {', '.join(_ENV)} "
            f"(missing: {', '.join(missing)}); start a broker and set them "
            "(see scripts/sdk-test.sh)",
            pytrace=False,
        )
    return LiveConfig(*(os.environ[name] for name in _ENV))


def app_client(cfg: LiveConfig) -> baton.BrokerClient:
    return baton.BrokerClient(cfg.addr, client_id=cfg.client_id, client_secret=cfg.client_secret)


def test_issue_validate_revoke() -> None:
    cfg = live_config()
    with app_client(cfg) as client:
        issued = client.issue(
            f"sdk-python-live-{time.time_ns()}", scopes=[cfg.scope], audiences=[cfg.audience]
        )
        assert issued.access_token

        verdict = client.validate(issued.access_token, cfg.audience)
        assert verdict.valid
        assert verdict.status == broker_pb2.TOKEN_STATUS_VALID
        assert list(verdict.claims.scopes) == [cfg.scope]
        assert verdict.claims.app_id == cfg.client_id
        assert verdict.claims.token_id

        revoked = client.revoke(
            broker_pb2.REVOCATION_TARGET_TOKEN,
            verdict.claims.token_id,
            reason="sdk/python live test",
        )
        assert revoked.revocation.target == broker_pb2.REVOCATION_TARGET_TOKEN

        after = client.validate(issued.access_token, cfg.audience)
        assert not after.valid
        assert after.status == broker_pb2.TOKEN_STATUS_REVOKED


def test_issue_outside_ceiling_is_permission_denied() -> None:
    cfg = live_config()
    with app_client(cfg) as client:
        with pytest.raises(baton.BatonError) as caught:
            client.issue(
                "sdk-python-live-ceiling", scopes=["admin:everything:*"], audiences=[cfg.audience]
            )
    err = caught.value
    assert err.code == grpc.StatusCode.PERMISSION_DENIED, repr(err)
    assert err.reason == "SCOPE_NOT_COVERED", repr(err)
    assert err.error_reason == errors_pb2.ERROR_REASON_SCOPE_NOT_COVERED
    assert isinstance(err, baton.PermissionDeniedError)


def issue_bound(client: baton.BrokerClient, cfg: LiveConfig, key: baton.AgentKey) -> str:
    """Issue a token bound to ``key`` and return it."""
    issued = client.issue(
        f"sdk-python-live-pop-{time.time_ns()}",
        scopes=[cfg.scope],
        audiences=[cfg.audience],
        agent_public_key_jwk=key.public_jwk_json(),
    )
    assert issued.claims.key_thumbprint == key.thumbprint
    token: str = issued.access_token
    return token


def test_delegate_with_proof_then_release_revokes_parent_and_child() -> None:
    cfg = live_config()
    key = baton.AgentKey.generate()
    with app_client(cfg) as client:
        parent = issue_bound(client, cfg, key)
        parent_claims = client.validate(parent, cfg.audience).claims

        # BATON_SCOPE is one scope: the subset asked for is that scope.
        delegated = client.delegate(parent, [cfg.scope], key=key)
        child = delegated.access_token
        assert child and child != parent

        verdict = client.validate(child, cfg.audience, required_scopes=[cfg.scope])
        assert verdict.valid, broker_pb2.TokenStatus.Name(verdict.status)
        assert list(verdict.claims.scopes) == [cfg.scope]
        assert verdict.claims.depth == 1
        assert [(e.token_id, e.agent_id) for e in verdict.claims.lineage] == [
            (parent_claims.token_id, parent_claims.agent_id)
        ]
        assert verdict.claims.key_thumbprint == ""

        released = client.release(parent, key, reason="sdk/python live test")
        assert released.revocation.target == broker_pb2.REVOCATION_TARGET_TOKEN
        assert released.revocation.id == parent_claims.token_id

        for token in (parent, child):
            after = client.validate(token, cfg.audience)
            assert not after.valid
            assert after.status == broker_pb2.TOKEN_STATUS_REVOKED


def test_key_bound_token_without_proof_is_refused() -> None:
    cfg = live_config()
    key = baton.AgentKey.generate()
    with app_client(cfg) as client:
        parent = issue_bound(client, cfg, key)
        with pytest.raises(baton.BatonError) as caught:
            client.delegate(parent, [cfg.scope])
        assert caught.value.reason == "PROOF_REQUIRED", repr(caught.value)
        assert caught.value.error_reason == errors_pb2.ERROR_REASON_PROOF_REQUIRED

        with pytest.raises(baton.BatonError) as caught:
            client.release(parent)
        assert caught.value.reason == "PROOF_REQUIRED", repr(caught.value)

        # Signed by another key: not the one the token is bound to.
        with pytest.raises(baton.BatonError) as caught:
            client.delegate(parent, [cfg.scope], key=baton.AgentKey.generate())
        assert caught.value.reason == "PROOF_INVALID", repr(caught.value)

        assert client.validate(parent, cfg.audience).valid
        client.release(parent, key)


def test_reused_proof_is_replayed() -> None:
    cfg = live_config()
    key = baton.AgentKey.generate()
    with app_client(cfg) as client:
        parent = issue_bound(client, cfg, key)
        proof = key.proof(baton.DELEGATE_METHOD, parent)
        metadata = (("authorization", f"Bearer {parent}"), (baton.PROOF_METADATA_KEY, proof))
        request = broker_pb2.DelegateRequest(scopes=[cfg.scope])

        first = client.stub.Delegate(request, metadata=metadata, timeout=baton.DEFAULT_TIMEOUT)
        assert first.access_token

        with pytest.raises(grpc.RpcError) as caught:
            client.stub.Delegate(request, metadata=metadata, timeout=baton.DEFAULT_TIMEOUT)
        err = baton.from_rpc_error(caught.value)
        assert err.reason == "PROOF_REPLAYED", repr(err)
        assert err.error_reason == errors_pb2.ERROR_REASON_PROOF_REPLAYED

        # A fresh proof still works.
        client.release(parent, key)


def test_proofs_are_accepted_every_time() -> None:
    # The broker refuses a high-S ES256 proof. An SDK that signs whatever s
    # the library returns fails about one call in two, so 40 rounds of
    # Delegate and Release (Revoke) with a proof, each on a fresh key, would
    # all pass by luck with a chance of 2^-80.
    cfg = live_config()
    with app_client(cfg) as client:
        for i in range(40):
            key = baton.AgentKey.generate()
            parent = issue_bound(client, cfg, key)
            child = client.delegate(parent, [cfg.scope], key=key).access_token
            assert child, i
            released = client.release(parent, key, reason="sdk/python low-S")
            assert released.revocation.target == broker_pb2.REVOCATION_TARGET_TOKEN, i
