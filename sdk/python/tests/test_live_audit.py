"""AdminClient.list_audit_events and iter_audit_events against a live broker
(test/sdk/run-live.ts sets the environment; without it these tests fail)."""

from __future__ import annotations

import datetime
import os
import time

import pytest

import baton

_ENV = ("BATON_ADDR", "BATON_CLIENT_ID", "BATON_CLIENT_SECRET", "BATON_OPERATOR_TOKEN", "BATON_AUDIENCE")


def _env() -> dict[str, str]:
    missing = [name for name in _ENV if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"live broker test needs {', '.join(_ENV)} (missing: {', '.join(missing)}); "
            "run it under `npx tsx test/sdk/run-live.ts`",
            pytrace=False,
        )
    return {name: os.environ[name] for name in _ENV}


def test_filters_pages_and_iteration() -> None:
    env = _env()
    task = f"py-audit-{time.time_ns()}"
    human = f"user:py-{time.time_ns()}"
    with baton.BrokerClient(
        env["BATON_ADDR"], client_id=env["BATON_CLIENT_ID"], client_secret=env["BATON_CLIENT_SECRET"]
    ) as app:
        issued = [
            app.issue(task, ["read:records:P-1"], [env["BATON_AUDIENCE"]], human_principal=human)
            for _ in range(3)
        ]
    with baton.AdminClient(env["BATON_ADDR"], env["BATON_OPERATOR_TOKEN"]) as admin:
        first = admin.list_audit_events(task_id=task, kinds=["token.issued"], page_size=2)
        assert [e.token_id for e in first.events] == [t.claims.token_id for t in issued[:2]]
        assert first.next_page_token
        event = first.events[0]
        assert event.kind == "token.issued" and event.outcome == "ok"
        assert event.actor == f"app:{env['BATON_CLIENT_ID']}" and event.human_principal == human
        assert event.credential_lifetime.seconds > 0

        rest = admin.list_audit_events(
            task_id=task, kinds=["token.issued"], page_size=2, page_token=first.next_page_token
        )
        assert [e.token_id for e in rest.events] == [issued[2].claims.token_id]
        assert rest.next_page_token == ""

        walked = list(admin.iter_audit_events(human_principal=human, page_size=1))
        assert [e.token_id for e in walked] == [t.claims.token_id for t in issued]
        now = datetime.datetime.now(datetime.timezone.utc)
        windowed = admin.iter_audit_events(
            task_id=task,
            start_time=now - datetime.timedelta(hours=1),
            end_time=now + datetime.timedelta(minutes=1),
            after_seq=walked[0].seq,
        )
        assert [e.token_id for e in windowed] == [t.claims.token_id for t in issued[1:]]

        # The page token continues only its own query.
        with pytest.raises(baton.BatonError) as caught:
            admin.list_audit_events(task_id="other", page_token=first.next_page_token)
        assert caught.value.reason == "INVALID_REQUEST", repr(caught.value)


def test_argument_checks_send_nothing() -> None:
    env = _env()
    with baton.AdminClient(env["BATON_ADDR"], env["BATON_OPERATOR_TOKEN"]) as admin:
        with pytest.raises(TypeError, match="kinds takes a list"):
            admin.list_audit_events(kinds="token.issued")
        with pytest.raises(TypeError, match="task_id is a string"):
            admin.list_audit_events(task_id=7)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="start_time is a datetime"):
            admin.list_audit_events(start_time="2026-01-01")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timezone-aware"):
            admin.list_audit_events(end_time=datetime.datetime(2026, 1, 1))
        with pytest.raises(TypeError, match="human_principal is a string"):
            admin.iter_audit_events(human_principal=None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="after_seq must not be negative"):
            admin.iter_audit_events(after_seq=-1)
        with pytest.raises(TypeError, match="page_size is an int"):
            admin.iter_audit_events(page_size="10")  # type: ignore[arg-type]
