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
