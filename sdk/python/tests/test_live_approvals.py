"""Approvals through the Python SDK against a live broker: the clinical scenario.

The operator (BATON_OPERATOR_TOKEN) gives a new app the policy
``write:prescriptions:*`` DANGEROUS_WRITE, one approval of ``clinical-leads``,
and creates an approver, through AdminClient; the app's issue raises
ApprovalRequiredError; the approver approves through ApprovalClient;
wait_for_approval returns APPROVED; the re-issue carries the approval in its
claims (offline TokenVerifier and Validate); a second re-issue raises
APPROVAL_USED; a denied request APPROVAL_DENIED; issue_with_approval waits
for the approver itself.

test/sdk/run-live.ts sets BATON_ADDR, BATON_OPERATOR_TOKEN and BATON_AUDIENCE;
without them these tests fail.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

import baton
from baton.v1 import approvals_pb2, broker_pb2

S = approvals_pb2
_ENV = ("BATON_ADDR", "BATON_OPERATOR_TOKEN", "BATON_AUDIENCE")
SCOPE = "write:prescriptions:P-1042"


@dataclass
class Setup:
    addr: str
    audience: str
    admin: baton.AdminClient
    app: baton.BrokerClient
    approver: baton.ApprovalClient
    approver_id: str


class _Fresh:
    """A revocation view that is fresh and revokes nothing: the claims are what is checked."""

    fresh_at: float | None = None

    def __init__(self) -> None:
        self.fresh_at = time.time() + 3600

    def is_revoked(self, facts: Any) -> bool:
        return False


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    missing = [name for name in _ENV if not os.environ.get(name)]
    if missing:
        pytest.fail(
            f"live approvals test needs {', '.join(_ENV)} (missing: {', '.join(missing)}); "
            "run it under `npx tsx test/sdk/run-live.ts`",
            pytrace=False,
        )
    addr, operator, audience = (os.environ[n] for n in _ENV)
    suffix = str(time.time_ns())
    admin = baton.AdminClient(addr, operator)
    created = admin.create_app(
        f"clinic-py-{suffix}",
        ["read:records:*", "write:prescriptions:*"],
        [audience],
        approval_policy=[baton.approval_rule("write:prescriptions:*", "dangerous_write", 1, "clinical-leads")],
    )
    assert len(created.app.approval_policy) == 1
    approver = admin.create_approver(f"dr-smith-py-{suffix}", ["clinical-leads"])
    app = baton.BrokerClient(addr, client_id=created.app.app_id, client_secret=created.client_secret)
    approvals = baton.ApprovalClient(addr, approver.approver.approver_id, approver.client_secret)
    try:
        yield Setup(addr, audience, admin, app, approvals, approver.approver.approver_id)
    finally:
        approvals.close()
        app.close()
        admin.close()


def _required(s: Setup, task: str) -> baton.ApprovalRequiredError:
    with pytest.raises(baton.ApprovalRequiredError) as caught:
        s.app.issue(task, [SCOPE], [s.audience], human_principal="dr-house")
    return caught.value


def _wait_in_thread(s: Setup, approval_id: str) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(s.app.wait_for_approval(approval_id, timeout=30))
        except Exception as error:  # handed to the test thread
            out.append(error)

    t = threading.Thread(target=run)
    t.start()
    return t, out


def test_clinical_scenario(setup: Setup) -> None:
    s = setup
    required = _required(s, "visit-77")
    assert required.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (required.approvals_required, required.approver_group) == (1, "clinical-leads")
    assert required.approval_id.startswith("apr_")
    assert required.expire_time is not None
    approval_id = required.approval_id

    assert approval_id in [a.approval_id for a in s.approver.iter_approvals(state="pending")]
    waiter, out = _wait_in_thread(s, approval_id)
    decided = s.approver.approve(approval_id, "dose checked against weight")
    assert decided.state == S.APPROVAL_STATE_APPROVED
    waiter.join(40)
    assert len(out) == 1 and not isinstance(out[0], Exception), out
    assert (out[0].approval_id, out[0].state) == (approval_id, S.APPROVAL_STATE_APPROVED)

    issued = s.app.issue("visit-77", [SCOPE], [s.audience], human_principal="dr-house", approval_id=approval_id)
    assert issued.claims.approval.approval_id == approval_id
    assert list(issued.claims.approval.approver_ids) == [s.approver_id]

    verifier = baton.TokenVerifier(s.audience, "https://baton.local", keys=s.app, revocations=_Fresh())
    offline = verifier.verify(issued.access_token)
    assert offline.ok and offline.claims is not None, offline
    assert offline.claims.approval == baton.ApprovalFacts(approval_id, (s.approver_id,))
    online = s.app.validate(issued.access_token, s.audience)
    assert online.status == broker_pb2.TOKEN_STATUS_VALID
    assert online.claims.approval.approval_id == approval_id
    assert list(online.claims.approval.approver_ids) == [s.approver_id]
    assert s.app.get_approval(approval_id).state == S.APPROVAL_STATE_USED

    with pytest.raises(baton.ApprovalError) as used:
        s.app.issue("visit-77", [SCOPE], [s.audience], human_principal="dr-house", approval_id=approval_id)
    assert (used.value.reason, used.value.approval_id) == ("APPROVAL_USED", approval_id)


def test_denied(setup: Setup) -> None:
    s = setup
    approval_id = _required(s, "visit-99").approval_id
    with pytest.raises(ValueError):
        s.approver.deny(approval_id, "")
    waiter, out = _wait_in_thread(s, approval_id)
    s.approver.deny(approval_id, "wrong patient")
    waiter.join(40)
    assert len(out) == 1 and not isinstance(out[0], Exception), out
    assert out[0].state == S.APPROVAL_STATE_DENIED
    with pytest.raises(baton.ApprovalError) as denied:
        s.app.issue("visit-99", [SCOPE], [s.audience], human_principal="dr-house", approval_id=approval_id)
    assert (denied.value.code, denied.value.reason) == (grpc.StatusCode.PERMISSION_DENIED, "APPROVAL_DENIED")
    assert isinstance(denied.value, baton.PermissionDeniedError)


def test_issue_with_approval(setup: Setup) -> None:
    s = setup
    told: list[str] = []

    def approve_later(error: baton.ApprovalRequiredError) -> None:
        told.append(error.approval_id)
        threading.Timer(0.2, lambda: s.approver.approve(error.approval_id, "fine")).start()

    issued = s.app.issue_with_approval(
        "visit-100", [SCOPE], [s.audience], human_principal="dr-house", approval_timeout=30, on_approval_required=approve_later
    )
    assert told and issued.claims.approval.approval_id == told[0]


def test_approvers_listed(setup: Setup) -> None:
    s = setup
    assert s.approver_id in [a.approver_id for a in s.admin.iter_approvers(page_size=1)]
