"""BrokerClient.renew against a live broker (issue 8).

The renewed token keeps the agent, scopes and key binding and names the old
token; the old token is revoked at once (Validate) and refused by the
verifier once the stream brings it; a key-bound token needs its key; the
task lifetime maximum ends the line; bad arguments raise before any call.
Needs the environment of test/sdk/run-live.ts (BATON_OPERATOR_TOKEN too).
"""

from __future__ import annotations

import datetime
import os
import time

import pytest
from test_live_broker import app_client, live_config
from test_live_verifier import resource_server, until_refused

import baton
from baton import VerifyFailureReason
from baton.v1 import broker_pb2


def _issue(client: baton.BrokerClient, scope: str, audience: str, key: baton.AgentKey | None = None) -> broker_pb2.IssueResponse:
    return client.issue(
        f"sdk-python-renew-{time.time_ns()}",
        scopes=[scope],
        audiences=[audience],
        agent_public_key_jwk=key or "",
    )


def test_renew_names_the_old_token_and_revokes_it() -> None:
    cfg = live_config()
    with resource_server(cfg) as (_subscriber, verifier, client):
        first = _issue(client, cfg.scope, cfg.audience)
        renewed = client.renew(first.access_token, ttl=datetime.timedelta(seconds=120))
        assert renewed.claims.renewed_from_token_id == first.claims.token_id
        assert renewed.claims.agent_id == first.claims.agent_id
        assert list(renewed.claims.scopes) == list(first.claims.scopes)
        assert not renewed.ttl_clamped

        assert client.validate(first.access_token, cfg.audience).status == broker_pb2.TOKEN_STATUS_REVOKED
        assert client.validate(renewed.access_token, cfg.audience).valid

        result = verifier.verify(renewed.access_token)
        assert result.ok, result.reason
        assert result.claims is not None
        assert result.claims.renewed_from_token_id == first.claims.token_id
        assert result.claims.root_issued_at_ms == first.claims.issue_time.ToMilliseconds()
        old = until_refused(lambda: verifier.verify(first.access_token), VerifyFailureReason.REVOKED)
        assert old.reason == VerifyFailureReason.REVOKED

        with pytest.raises(baton.BatonError) as caught:
            client.renew(first.access_token)
        assert caught.value.reason == "TOKEN_INVALID"


def test_key_bound_renew_needs_the_key() -> None:
    cfg = live_config()
    key = baton.AgentKey.generate()
    with app_client(cfg) as client:
        first = _issue(client, cfg.scope, cfg.audience, key)
        with pytest.raises(baton.BatonError) as caught:
            client.renew(first.access_token)
        assert caught.value.reason == "PROOF_REQUIRED"
        renewed = client.renew(first.access_token, key)
        assert renewed.claims.key_thumbprint == key.thumbprint
        again = client.renew(renewed.access_token, key)
        assert again.claims.renewed_from_token_id == renewed.claims.token_id


def test_task_lifetime_ends_the_line() -> None:
    cfg = live_config()
    operator = os.environ.get("BATON_OPERATOR_TOKEN")
    assert operator, "needs BATON_OPERATOR_TOKEN (see test/sdk/run-live.ts)"
    with baton.AdminClient(cfg.addr, operator) as admin:
        created = admin.create_app(
            f"sdk-python-renew-{time.time_ns()}",
            [cfg.scope],
            [cfg.audience],
            max_task_lifetime=datetime.timedelta(seconds=1),
        )
        raised = admin.update_app(created.app.app_id, max_task_lifetime=datetime.timedelta(hours=2))
        assert raised.app.max_task_lifetime.seconds == 7200
        assert raised.revoked_token_count == 0
        admin.update_app(created.app.app_id, max_task_lifetime=datetime.timedelta(seconds=1))
    assert created.app.max_task_lifetime.seconds == 1
    with baton.BrokerClient(cfg.addr, client_id=created.app.app_id, client_secret=created.client_secret) as client:
        first = _issue(client, cfg.scope, cfg.audience)
        time.sleep(1.1)
        with pytest.raises(baton.BatonError) as caught:
            client.renew(first.access_token)
        assert caught.value.reason == "TASK_LIFETIME_EXCEEDED"
        end_ms = first.claims.issue_time.ToMilliseconds() + 1000
        assert caught.value.metadata["task_expire_time"] == (
            datetime.datetime.fromtimestamp(end_ms / 1000, tz=datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )


def test_bad_arguments_raise_before_any_call() -> None:
    cfg = live_config()
    with app_client(cfg) as client:
        first = _issue(client, cfg.scope, cfg.audience)
        with pytest.raises(ValueError):
            client.renew("")
        with pytest.raises(TypeError):
            client.renew(first.access_token, "not a key")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client.renew(first.access_token, ttl=60)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            client.renew(first.access_token, allow_ttl_clamp="yes")  # type: ignore[arg-type]
        # Nothing was sent: the token still renews.
        assert client.renew(first.access_token).claims.renewed_from_token_id == first.claims.token_id
