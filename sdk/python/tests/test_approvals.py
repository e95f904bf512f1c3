"""Approvals in the Python SDK against in-process fake services (real gRPC):
the APPROVAL_* refusals as typed errors, approval ids sent by issue and
delegate, wait_for_approval following a broken stream again and timing out
clearly, issue_with_approval, the approver's client and its argument checks,
the admin calls for approvers and policies, and claim ``apr`` in the offline
verifier. The live flow is test_live_approvals.py."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from jws_helpers import AUDIENCE, ISSUER, SigningKey, claims, jwks

import baton
from baton import AgentKey, RevocationSet, TokenVerifier
from baton.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    approvals_pb2,
    approvals_pb2_grpc,
    broker_pb2,
    broker_pb2_grpc,
)

S = approvals_pb2


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, reason: str, metadata: dict[str, str]) -> None:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="baton.dev", metadata=metadata))
    context.abort_with_status(
        rpc_status.to_status(status_pb2.Status(code=code.value[0], message=f"refused: {reason}", details=[detail]))
    )


class Fake(
    broker_pb2_grpc.BrokerServiceServicer,
    approvals_pb2_grpc.ApprovalServiceServicer,
    admin_pb2_grpc.AdminServiceServicer,
):
    """Answers what each test scripts; records what reaches it."""

    def __init__(self) -> None:
        self.issue_refusals: list[tuple[grpc.StatusCode, str, dict[str, str]]] = []
        self.issued: list[broker_pb2.IssueRequest] = []
        self.delegated: list[broker_pb2.DelegateRequest] = []
        # One entry per WatchApproval subscription: states to send, then "close", "hang" or a refusal.
        self.watches: list[tuple[list[int], Any]] = []
        self.watch_md: list[dict[str, Any]] = []
        self.unary: list[tuple[str, Any, dict[str, Any]]] = []

    def _rec(self, name: str, request: Any, context: grpc.ServicerContext) -> None:
        self.unary.append((name, request, dict(context.invocation_metadata())))

    def Issue(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.issued.append(request)
        if self.issue_refusals:
            _abort(context, *self.issue_refusals.pop(0))
        return broker_pb2.IssueResponse(access_token="tok", claims=broker_pb2.TokenClaims(token_id="jti"))

    def Delegate(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.delegated.append(request)
        return broker_pb2.DelegateResponse(access_token="child")

    def GetApproval(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("get", request, context)
        return S.GetApprovalResponse(approval=S.Approval(approval_id=request.approval_id, state=S.APPROVAL_STATE_PENDING))

    def ListApprovals(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("list", request, context)
        if request.page_token == "":
            return S.ListApprovalsResponse(approvals=[S.Approval(approval_id="apr_a")], next_page_token="p2")
        return S.ListApprovalsResponse(approvals=[S.Approval(approval_id="apr_b")])

    def Approve(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("approve", request, context)
        return S.ApproveResponse(approval=S.Approval(approval_id=request.approval_id, state=S.APPROVAL_STATE_APPROVED))

    def Deny(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("deny", request, context)
        return S.DenyResponse(approval=S.Approval(approval_id=request.approval_id, state=S.APPROVAL_STATE_DENIED))

    def WatchApproval(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self.watch_md.append(dict(context.invocation_metadata()))
        states, end = self.watches.pop(0) if self.watches else ([], "hang")
        for state in states:
            yield S.WatchApprovalResponse(approval=S.Approval(approval_id=request.approval_id, state=state))
        if end == "close":
            return
        if end == "hang":
            while context.is_active():
                time.sleep(0.02)
            return
        _abort(context, *end)

    def CreateApp(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("createApp", request, context)
        return admin_pb2.CreateAppResponse(app=admin_pb2.App(app_id="app_new"), client_secret="s")

    def UpdateApp(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("updateApp", request, context)
        return admin_pb2.UpdateAppResponse(app=admin_pb2.App(app_id=request.app_id))

    def CreateApprover(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("createApprover", request, context)
        return admin_pb2.CreateApproverResponse(
            approver=admin_pb2.Approver(approver_id="apv_new", name=request.name, groups=request.groups),
            client_secret="apv-secret",
        )

    def ListApprovers(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("listApprovers", request, context)
        if request.page_token == "":
            return admin_pb2.ListApproversResponse(approvers=[admin_pb2.Approver(approver_id="apv_1")], next_page_token="n")
        return admin_pb2.ListApproversResponse(approvers=[admin_pb2.Approver(approver_id="apv_2")])

    def DisableApprover(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._rec("disableApprover", request, context)
        return admin_pb2.DisableApproverResponse(approver=admin_pb2.Approver(approver_id=request.approver_id, disabled=True))


@pytest.fixture
def fake() -> Iterator[tuple[Fake, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    f = Fake()
    broker_pb2_grpc.add_BrokerServiceServicer_to_server(f, server)
    approvals_pb2_grpc.add_ApprovalServiceServicer_to_server(f, server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(f, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def _app(addr: str) -> baton.BrokerClient:
    return baton.BrokerClient(addr, client_id="app_x", client_secret="s")


def _htm(proof: str) -> str:
    payload = proof.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["htm"])


FP = grpc.StatusCode.FAILED_PRECONDITION
PD = grpc.StatusCode.PERMISSION_DENIED


# ---- typed errors ----


def test_approval_required_is_typed_with_its_metadata(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.issue_refusals.append(
        (FP, "APPROVAL_REQUIRED", {"approval_id": "apr_7", "approvals_required": "2", "approver_group": "clinical-leads", "expire_time": "2026-12-03T11:00:00.000Z"})
    )
    with _app(addr) as client, pytest.raises(baton.ApprovalRequiredError) as caught:
        client.issue("t", ["write:prescriptions:P-1042"], [AUDIENCE])
    e = caught.value
    assert isinstance(e, baton.ApprovalError)
    assert (e.code, e.reason, e.approval_id, e.approvals_required, e.approver_group) == (
        FP, "APPROVAL_REQUIRED", "apr_7", 2, "clinical-leads"
    )
    assert e.expire_time is not None and e.expire_time.isoformat() == "2026-12-03T11:00:00+00:00"


def test_unreadable_metadata_leaves_fields_empty(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.issue_refusals.append((FP, "APPROVAL_REQUIRED", {"approval_id": "apr_7", "approvals_required": "two", "expire_time": "soon"}))
    with _app(addr) as client, pytest.raises(baton.ApprovalRequiredError) as caught:
        client.issue("t", ["write:x:y"], [AUDIENCE])
    assert (caught.value.approvals_required, caught.value.approver_group, caught.value.expire_time) == (0, "", None)


@pytest.mark.parametrize(
    "code,reason",
    [
        (FP, "APPROVAL_PENDING"),
        (PD, "APPROVAL_DENIED"),
        (FP, "APPROVAL_EXPIRED"),
        (FP, "APPROVAL_USED"),
        (PD, "APPROVAL_MISMATCH"),
        (FP, "APPROVAL_NOT_PENDING"),
    ],
)
def test_other_approval_reasons_are_approval_errors(fake: tuple[Fake, str], code: grpc.StatusCode, reason: str) -> None:
    f, addr = fake
    f.issue_refusals.append((code, reason, {"approval_id": "apr_9"}))
    with _app(addr) as client, pytest.raises(baton.ApprovalError) as caught:
        client.issue("t", ["write:x:y"], [AUDIENCE], approval_id="apr_9")
    e = caught.value
    assert not isinstance(e, baton.ApprovalRequiredError)
    assert (e.code, e.reason, e.approval_id) == (code, reason, "apr_9")
    # Handlers written for the status code keep working.
    assert isinstance(e, baton.PermissionDeniedError) == (code == PD)


def test_other_reasons_are_not_approval_errors(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.issue_refusals.append((PD, "SCOPE_NOT_COVERED", {}))
    with _app(addr) as client, pytest.raises(baton.PermissionDeniedError) as caught:
        client.issue("t", ["write:x:y"], [AUDIENCE])
    assert not isinstance(caught.value, baton.ApprovalError)


# ---- approval ids, get and wait ----


def test_issue_and_delegate_send_the_approval_id(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    with _app(addr) as client:
        client.issue("t", ["write:x:y"], [AUDIENCE], approval_id="apr_1")
        client.issue("t", ["write:x:y"], [AUDIENCE])
        client.delegate("parent", ["write:x:y"], approval_id="apr_2")
    assert [r.approval_id for r in f.issued] == ["apr_1", ""]
    assert [r.approval_id for r in f.delegated] == ["apr_2"]


def test_get_approval_as_app_and_as_key_bound_agent(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    key = AgentKey.generate()
    with _app(addr) as client:
        assert client.get_approval("apr_3").approval_id == "apr_3"
        client.get_approval("apr_3", token="agent-token", key=key)
    (_, _, as_app), (_, _, as_agent) = f.unary
    assert as_app["authorization"].startswith("Basic ")
    assert as_agent["authorization"] == "Bearer agent-token"
    assert _htm(as_agent["baton-proof"]) == baton.GET_APPROVAL_METHOD == "/baton.v1.ApprovalService/GetApproval"


def test_wait_follows_a_broken_stream_until_approved(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.watches += [
        ([S.APPROVAL_STATE_PENDING], (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", {})),
        ([S.APPROVAL_STATE_PENDING], "close"),
        ([S.APPROVAL_STATE_PENDING, S.APPROVAL_STATE_APPROVED], "hang"),
    ]
    with _app(addr) as client:
        approval = client.wait_for_approval("apr_4", timeout=20)
    assert (approval.approval_id, approval.state) == ("apr_4", S.APPROVAL_STATE_APPROVED)
    assert len(f.watch_md) == 3


def test_an_agent_sends_a_fresh_proof_per_subscription(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.watches += [([], "close"), ([S.APPROVAL_STATE_DENIED], "hang")]
    key = AgentKey.generate()
    with _app(addr) as client:
        approval = client.wait_for_approval("apr_5", timeout=20, token="agent-token", key=key)
    assert approval.state == S.APPROVAL_STATE_DENIED
    proofs = [md["baton-proof"] for md in f.watch_md]
    assert len(proofs) == 2 and proofs[0] != proofs[1]
    assert all(_htm(p) == baton.WATCH_APPROVAL_METHOD for p in proofs)


def test_wait_times_out_with_a_clear_error(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.watches.append(([S.APPROVAL_STATE_PENDING], "hang"))
    with _app(addr) as client, pytest.raises(baton.ApprovalError) as caught:
        client.wait_for_approval("apr_6", timeout=0.3)
    e = caught.value
    assert (e.code, e.reason, e.approval_id) == (grpc.StatusCode.DEADLINE_EXCEEDED, "APPROVAL_PENDING", "apr_6")
    assert "apr_6 was not decided within 0.3 s" in str(e)


def test_a_refusal_is_not_followed_again(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.watches.append(([], (grpc.StatusCode.NOT_FOUND, "NOT_FOUND", {})))
    with _app(addr) as client, pytest.raises(baton.NotFoundError):
        client.wait_for_approval("apr_missing", timeout=20)
    assert len(f.watch_md) == 1


def test_wait_argument_checks(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    with _app(addr) as client:
        with pytest.raises(ValueError):
            client.wait_for_approval("apr_1", timeout=0)
        with pytest.raises(ValueError):
            client.wait_for_approval("", timeout=1)
        with pytest.raises(ValueError):
            client.wait_for_approval("apr_1", timeout=1, token="")
    assert f.watch_md == []


def test_issue_with_approval_waits_and_issues_again(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.issue_refusals.append((FP, "APPROVAL_REQUIRED", {"approval_id": "apr_8", "approvals_required": "1", "approver_group": "g"}))
    f.watches.append(([S.APPROVAL_STATE_PENDING, S.APPROVAL_STATE_APPROVED], "hang"))
    told: list[str] = []
    with _app(addr) as client:
        response = client.issue_with_approval(
            "t", ["write:x:y"], [AUDIENCE], approval_timeout=20, on_approval_required=lambda e: told.append(e.approval_id)
        )
    assert response.access_token == "tok"
    assert told == ["apr_8"]
    assert [r.approval_id for r in f.issued] == ["", "apr_8"]


def test_issue_with_approval_passes_other_refusals(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    f.issue_refusals.append((PD, "SCOPE_NOT_COVERED", {}))
    with _app(addr) as client, pytest.raises(baton.PermissionDeniedError):
        client.issue_with_approval("t", ["write:x:y"], [AUDIENCE])
    assert f.watch_md == []


# ---- the approver's client ----


def test_approve_and_deny_send_basic_credentials_and_reason(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    with baton.ApprovalClient(addr, "apv_1", "secret") as approvals:
        assert approvals.approve("apr_1", "dose checked").state == S.APPROVAL_STATE_APPROVED
        assert approvals.deny("apr_2", "wrong patient").state == S.APPROVAL_STATE_DENIED
    assert [(n, r.approval_id, r.reason) for n, r, _ in f.unary] == [
        ("approve", "apr_1", "dose checked"),
        ("deny", "apr_2", "wrong patient"),
    ]
    assert f.unary[0][2]["authorization"] == "Basic " + base64.b64encode(b"apv_1:secret").decode()


@pytest.mark.parametrize("reason,error", [("", ValueError), ("   ", ValueError), ("x" * 513, ValueError), (None, TypeError)])
def test_decision_reason_is_checked_before_sending(fake: tuple[Fake, str], reason: Any, error: type[Exception]) -> None:
    f, addr = fake
    with baton.ApprovalClient(addr, "apv_1", "secret") as approvals:
        with pytest.raises(error):
            approvals.deny("apr_1", reason)
        with pytest.raises(error):
            approvals.approve("apr_1", reason)
        approvals.deny("apr_1", "é" * 512)  # 512 characters are fine
    assert len(f.unary) == 1


def test_list_maps_states_and_iter_walks_pages(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    with baton.ApprovalClient(addr, bearer_token="bop_x") as approvals:
        approvals.list_approvals(state="pending", app_id="app_x", page_size=10)
        assert [a.approval_id for a in approvals.iter_approvals(state=S.APPROVAL_STATE_APPROVED)] == ["apr_a", "apr_b"]
        with pytest.raises(ValueError):
            approvals.list_approvals(state="maybe")
    request = f.unary[0][1]
    assert (request.state, request.app_id, request.page_size) == (S.APPROVAL_STATE_PENDING, "app_x", 10)
    assert f.unary[0][2]["authorization"] == "Bearer bop_x"


def test_approval_client_credentials_are_checked() -> None:
    with pytest.raises(ValueError):
        baton.ApprovalClient("127.0.0.1:1")
    with pytest.raises(ValueError):
        baton.ApprovalClient("127.0.0.1:1", "apv_1")
    with pytest.raises(ValueError):
        baton.ApprovalClient("127.0.0.1:1", "apv_1", "s", bearer_token="t")


# ---- admin ----


def test_create_and_update_app_send_the_policy(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    rule = baton.approval_rule("write:prescriptions:*", "dangerous_write", 1, "clinical-leads")
    with baton.AdminClient(addr, "bop_x") as admin:
        admin.create_app("clinic", ["write:prescriptions:*"], [AUDIENCE], approval_policy=[rule])
        admin.update_app("app_new", name="n")
        admin.update_app("app_new", approval_policy=[])
        admin.update_app("app_new", approval_policy=[baton.approval_rule("read:*", admin_pb2.SCOPE_CLASS_READ)])
    created = f.unary[0][1]
    assert list(created.approval_policy) == [
        admin_pb2.ApprovalRule(
            pattern="write:prescriptions:*", scope_class=admin_pb2.SCOPE_CLASS_DANGEROUS_WRITE, approvals_required=1, approver_group="clinical-leads"
        )
    ]
    assert [(r.update_approval_policy, len(r.approval_policy)) for _, r, _ in f.unary[1:]] == [(False, 0), (True, 0), (True, 1)]


def test_policy_argument_checks() -> None:
    with pytest.raises(ValueError):
        baton.approval_rule("read:*", "scary")
    with pytest.raises(ValueError):
        baton.approval_rule("read:*", "write", -1)
    with pytest.raises(TypeError):
        baton.approval_rule("read:*", "write", True)
    with baton.AdminClient("127.0.0.1:1", "bop_x") as admin:
        with pytest.raises(TypeError):
            admin.create_app("c", ["read:*"], [AUDIENCE], approval_policy=[{"pattern": "read:*"}])  # type: ignore[list-item]
        with pytest.raises(TypeError):
            admin.create_app("c", ["read:*"], [AUDIENCE], approval_policy=baton.approval_rule("read:*", "read"))  # type: ignore[arg-type]


def test_approvers(fake: tuple[Fake, str]) -> None:
    f, addr = fake
    with baton.AdminClient(addr, "bop_x") as admin:
        created = admin.create_approver("dr-smith", ["clinical-leads"])
        assert (created.approver.approver_id, created.client_secret) == ("apv_new", "apv-secret")
        assert [a.approver_id for a in admin.iter_approvers()] == ["apv_1", "apv_2"]
        assert admin.disable_approver("apv_1", reason="left").approver.disabled
        with pytest.raises(TypeError):
            admin.create_approver("x", "clinical-leads")
    assert (f.unary[-1][1].approver_id, f.unary[-1][1].reason) == ("apv_1", "left")


# ---- claim apr ----

NOW = 1_800_000_000.0


class _View:
    fresh_at: float | None = NOW

    def __init__(self) -> None:
        self.set = RevocationSet()

    def is_revoked(self, facts: Any) -> bool:
        return self.set.is_revoked(facts)


@pytest.fixture
def verifier_and_key() -> tuple[TokenVerifier, SigningKey]:
    key = SigningKey("k-ed", "EdDSA")
    v = TokenVerifier(AUDIENCE, ISSUER, keys=lambda: jwks(key), revocations=_View(), now=lambda: NOW)
    v.load_keys()
    return v, key


def test_verifier_exposes_apr(verifier_and_key: tuple[TokenVerifier, SigningKey]) -> None:
    v, key = verifier_and_key
    result = v.verify(key.sign(claims(NOW, apr={"id": "apr_1", "by": ["apv_1", "apv_2"]})))
    assert result.ok and result.claims is not None
    assert result.claims.approval == baton.ApprovalFacts("apr_1", ("apv_1", "apv_2"))
    plain = v.verify(key.sign(claims(NOW)))
    assert plain.ok and plain.claims is not None and plain.claims.approval is None


@pytest.mark.parametrize(
    "apr", ["apr_1", {"id": "apr_1"}, {"id": 1, "by": []}, {"id": "apr_1", "by": ["apv_1", 2]}, None]
)
def test_verifier_refuses_a_malformed_apr(verifier_and_key: tuple[TokenVerifier, SigningKey], apr: Any) -> None:
    v, key = verifier_and_key
    payload = claims(NOW)
    payload["apr"] = apr
    result = v.verify(key.sign(payload))
    assert result.reason == baton.VerifyFailureReason.MALFORMED
