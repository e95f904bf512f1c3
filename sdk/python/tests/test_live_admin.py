"""AdminClient, revoke_many, rate limits and resource-server credentials
against a live broker.

test/sdk/run-live.ts sets BATON_ADDR, BATON_CLIENT_ID/SECRET (an app),
BATON_RS_ID/SECRET (a resource server for BATON_AUDIENCE), BATON_OPERATOR_TOKEN,
BATON_AUDIENCE and BATON_SCOPE. Without them these tests fail.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import grpc
import pytest

import baton
from baton.v1 import admin_pb2, broker_pb2, errors_pb2

_ENV = (
    "BATON_ADDR",
    "BATON_CLIENT_ID",
    "BATON_CLIENT_SECRET",
    "BATON_RS_ID",
    "BATON_RS_SECRET",
    "BATON_OPERATOR_TOKEN",
    "BATON_AUDIENCE",
    "BATON_SCOPE",
)


@dataclass(frozen=True)
class Live:
    addr: str
    client_id: str
    client_secret: str
    rs_id: str
    rs_secret: str
    operator: str
    audience: str
    scope: str


def live() -> Live:
    missing = [name for name in _ENV if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"live broker test needs {', '.join(_ENV)} (missing: {', '.join(missing)}); "
            "run it under `npx tsx test/sdk/run-live.ts`",
            pytrace=False,
        )
    return Live(*(os.environ[name] for name in _ENV))


def unique(prefix: str) -> str:
    return f"{prefix}-{time.time_ns()}"


def test_app_lifecycle() -> None:
    cfg = live()
    with baton.AdminClient(cfg.addr, cfg.operator) as admin:
        created = admin.create_app(
            unique("py-admin"), ["read:records:*"], [cfg.audience], max_delegation_depth=2
        )
        app_id, secret = created.app.app_id, created.client_secret
        assert app_id.startswith("app_") and secret
        assert admin.get_app(app_id).app.max_delegation_depth == 2

        with baton.BrokerClient(cfg.addr, client_id=app_id, client_secret=secret) as app:
            issued = app.issue(unique("t"), ["read:records:P-1"], [cfg.audience])
            # Narrowing the ceiling revokes the live token that no longer fits.
            updated = admin.update_app(app_id, scope_ceiling=["read:other:*"])
            assert list(updated.app.scope_ceiling) == ["read:other:*"]
            assert updated.revoked_token_count == 1
            assert app.validate(issued.access_token, cfg.audience).status == (
                broker_pb2.TOKEN_STATUS_REVOKED
            )

        rotated = admin.rotate_app_secret(app_id).client_secret
        assert rotated and rotated != secret
        with baton.BrokerClient(cfg.addr, client_id=app_id, client_secret=secret) as old:
            with pytest.raises(baton.UnauthenticatedError) as caught:
                old.issue(unique("t"), ["read:other:x"], [cfg.audience])
            assert caught.value.reason == "CREDENTIALS_INVALID", repr(caught.value)
        with baton.BrokerClient(cfg.addr, client_id=app_id, client_secret=rotated) as new:
            assert new.issue(unique("t"), ["read:other:x"], [cfg.audience]).access_token

            disabled = admin.disable_app(app_id, reason="sdk/python live test")
            assert disabled.app.disabled
            with pytest.raises(baton.BatonError) as caught:
                new.issue(unique("t"), ["read:other:x"], [cfg.audience])
            assert caught.value.reason == "APP_DISABLED", repr(caught.value)
            assert isinstance(caught.value, baton.PermissionDeniedError)

        with pytest.raises(baton.NotFoundError) as missing:
            admin.get_app("app_0000000000000000000000")
        assert missing.value.error_reason == errors_pb2.ERROR_REASON_NOT_FOUND


def test_iter_apps_walks_every_page() -> None:
    cfg = live()
    with baton.AdminClient(cfg.addr, cfg.operator) as admin:
        mine = {
            admin.create_app(unique(f"py-page{i}"), ["read:records:*"], [cfg.audience]).app.app_id
            for i in range(3)
        }
        seen = [app.app_id for app in admin.iter_apps(page_size=1)]
        assert mine <= set(seen)
        assert cfg.client_id in seen
        assert seen == sorted(seen) and len(seen) == len(set(seen))
        first = admin.list_apps(page_size=1)
        assert len(first.apps) == 1 and first.next_page_token


def test_signing_keys_and_audit_log() -> None:
    cfg = live()
    with baton.AdminClient(cfg.addr, cfg.operator) as admin:
        before = admin.list_signing_keys().keys
        states = {k.state for k in before}
        assert admin_pb2.SIGNING_KEY_STATE_ACTIVE in states
        assert admin_pb2.SIGNING_KEY_STATE_NEXT in states
        next_kid = next(k.key_id for k in before if k.state == admin_pb2.SIGNING_KEY_STATE_NEXT)

        rotated = admin.rotate_signing_key()
        assert rotated.active.key_id == next_kid
        assert rotated.next.key_id and rotated.next.key_id != next_kid
        # Tokens are now signed with the new key, which the broker accepts.
        with baton.BrokerClient(cfg.addr, client_id=cfg.client_id, client_secret=cfg.client_secret) as app:
            issued = app.issue(unique("t"), [cfg.scope], [cfg.audience])
            assert app.validate(issued.access_token, cfg.audience).valid

        audit = admin.verify_audit_log()
        assert audit.intact and audit.event_count > 0 and audit.first_broken_seq == 0


def test_wrong_operator_token_is_unauthenticated() -> None:
    cfg = live()
    with baton.AdminClient(cfg.addr, "bop_not-the-operator") as admin:
        with pytest.raises(baton.UnauthenticatedError) as caught:
            admin.list_signing_keys()
    assert caught.value.reason == "CREDENTIALS_INVALID", repr(caught.value)
    assert "bop_not-the-operator" not in repr(caught.value)
    # An app's credentials are not an operator's.
    with baton.AdminClient(cfg.addr, cfg.client_secret) as admin:
        with pytest.raises(baton.UnauthenticatedError):
            admin.list_apps()


def test_revoke_many_as_app_all_or_nothing() -> None:
    cfg = live()
    with baton.AdminClient(cfg.addr, cfg.operator) as admin:
        other = admin.create_app(unique("py-other"), ["read:records:*"], [cfg.audience])
    with (
        baton.BrokerClient(cfg.addr, client_id=cfg.client_id, client_secret=cfg.client_secret) as app,
        baton.BrokerClient(
            cfg.addr, client_id=other.app.app_id, client_secret=other.client_secret
        ) as other_app,
    ):
        mine = [app.issue(unique("t"), [cfg.scope], [cfg.audience]) for _ in range(3)]
        theirs = other_app.issue(unique("t"), [cfg.scope], [cfg.audience])

        # The second target is another app's (not found, for this app):
        # the call is refused whole and nothing is revoked.
        with pytest.raises(baton.NotFoundError) as caught:
            app.revoke_many(
                [("token", mine[0].claims.token_id), ("token", theirs.claims.token_id)],
                reason="sdk/python live",
            )
        assert caught.value.metadata.get("index") == "1", repr(caught.value)
        assert app.validate(mine[0].access_token, cfg.audience).valid

        done = app.revoke_many(
            [("token", m.claims.token_id) for m in mine], reason="sdk/python live"
        )
        assert [r.id for r in done.revocations] == [m.claims.token_id for m in mine]
        for m in mine:
            assert app.validate(m.access_token, cfg.audience).status == (
                broker_pb2.TOKEN_STATUS_REVOKED
            )

        for count in (0, 1001):
            with pytest.raises(baton.InvalidArgumentError) as bad:
                app.revoke_many([("token", f"jti-{i}") for i in range(count)])
            assert bad.value.reason == "INVALID_REQUEST", repr(bad.value)

    # The operator revokes across apps.
    with baton.BrokerClient(cfg.addr, bearer_token=cfg.operator) as operator:
        done = operator.revoke_many(
            [broker_pb2.RevokeRequest(target=broker_pb2.REVOCATION_TARGET_APP, id=other.app.app_id)],
            reason="sdk/python live",
        )
        assert done.revocations[0].target == broker_pb2.REVOCATION_TARGET_APP
        assert not operator.validate(theirs.access_token, cfg.audience).valid


def test_rate_limited_error_has_retry_after() -> None:
    cfg = live()
    with baton.AdminClient(cfg.addr, cfg.operator) as admin:
        slow = admin.create_app(
            unique("py-slow"),
            ["read:records:*"],
            [cfg.audience],
            rate_limit_per_second=1,
            rate_limit_burst=1,
        )
    with baton.BrokerClient(
        cfg.addr, client_id=slow.app.app_id, client_secret=slow.client_secret
    ) as app:
        errors = []
        for _ in range(5):
            try:
                app.issue(unique("t"), [cfg.scope], [cfg.audience])
            except baton.ResourceExhaustedError as err:
                errors.append(err)
        assert errors, "5 issues at once with a burst of 1 were all accepted"
        err = errors[0]
        assert err.reason == "RATE_LIMITED", repr(err)
        assert err.error_reason == errors_pb2.ERROR_REASON_RATE_LIMITED
        assert err.retry_after is not None and 0 < err.retry_after <= 1.0, repr(err)
        assert err.metadata.get("app_id") == slow.app.app_id


def test_resource_server_credentials_validate_and_stream() -> None:
    cfg = live()
    with baton.BrokerClient(cfg.addr, client_id=cfg.rs_id, client_secret=cfg.rs_secret) as rs:
        with baton.BrokerClient(cfg.addr, client_id=cfg.client_id, client_secret=cfg.client_secret) as app:
            issued = app.issue(unique("t"), [cfg.scope], [cfg.audience])
            assert rs.validate(issued.access_token, cfg.audience).valid
            with pytest.raises(baton.PermissionDeniedError) as caught:
                rs.validate(issued.access_token, "not-served")
            assert caught.value.reason == "AUDIENCE_NOT_SERVED", repr(caught.value)
            assert caught.value.error_reason == errors_pb2.ERROR_REASON_AUDIENCE_NOT_SERVED

            with baton.RevocationSubscriber(
                cfg.addr, client_id=cfg.rs_id, client_secret=cfg.rs_secret
            ) as subscriber:
                subscriber.start()
                assert subscriber.wait_ready(10), subscriber.state
                seen = threading.Event()
                subscriber.on_revocation(
                    lambda r, _snapshot: seen.set() if r.id == issued.claims.token_id else None
                )
                app.revoke("token", issued.claims.token_id, reason="sdk/python live")
                assert seen.wait(5), "the resource server's stream did not deliver the revocation"


def test_disabled_resource_server_stream_ends() -> None:
    cfg = live()
    with baton.AdminClient(cfg.addr, cfg.operator) as admin:
        created = admin.create_resource_server(unique("py-rs"), [cfg.audience])
        rs_id = created.resource_server.resource_server_id
        assert rs_id.startswith("rs_")
        assert rs_id in {r.resource_server_id for r in admin.iter_resource_servers(page_size=1)}

        errors: list[baton.BatonError] = []
        ended = threading.Event()

        def on_state(state: str, error: baton.BatonError | None) -> None:
            if error is not None:
                errors.append(error)
                ended.set()

        with baton.RevocationSubscriber(
            cfg.addr, client_id=rs_id, client_secret=created.client_secret
        ) as subscriber:
            subscriber.on_state_change(on_state)
            subscriber.start()
            assert subscriber.wait_ready(10), subscriber.state
            disabled = admin.disable_resource_server(rs_id, reason="sdk/python live")
            assert disabled.resource_server.disabled
            assert ended.wait(10), "the stream did not end"
        assert errors[0].reason == "RESOURCE_SERVER_DISABLED", repr(errors[0])
        assert errors[0].code == grpc.StatusCode.PERMISSION_DENIED
