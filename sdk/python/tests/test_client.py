"""BrokerClient against an in-process fake broker: credentials, deadlines
and error details, without a live broker."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import baton
from baton.v1 import broker_pb2, broker_pb2_grpc, errors_pb2


class FakeBroker(broker_pb2_grpc.BrokerServiceServicer):
    """Records what reaches it; refuses Issue the way the broker does."""

    def __init__(self) -> None:
        self.authorization: str | None = None
        self.proof: str | None = None
        self.time_remaining: float | None = None
        self.issue_request: broker_pb2.IssueRequest | None = None
        self.delegate_request: broker_pb2.DelegateRequest | None = None
        self.revoke_request: broker_pb2.RevokeRequest | None = None
        self.calls = 0

    def _record(self, context: grpc.ServicerContext) -> None:
        self.calls += 1
        metadata = dict(context.invocation_metadata())
        value = metadata.get("authorization")
        self.authorization = value if isinstance(value, str) else None
        proof = metadata.get("baton-proof")
        self.proof = proof if isinstance(proof, str) else None
        self.time_remaining = context.time_remaining()

    def Issue(self, request: broker_pb2.IssueRequest, context: grpc.ServicerContext) -> Any:
        self._record(context)
        self.issue_request = request
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.ErrorInfo(
                reason="SCOPE_NOT_COVERED",
                domain="baton.dev",
                metadata={"excess_scopes": "admin:everything:*", "rule": "ceiling"},
            )
        )
        context.abort_with_status(
            rpc_status.to_status(
                status_pb2.Status(
                    code=code_pb2.PERMISSION_DENIED,
                    message="requested scopes are not covered by the app's ceiling",
                    details=[detail],
                )
            )
        )

    def Delegate(self, request: broker_pb2.DelegateRequest, context: grpc.ServicerContext) -> Any:
        self._record(context)
        self.delegate_request = request
        return broker_pb2.DelegateResponse(access_token="child.to.ken")

    def Revoke(self, request: broker_pb2.RevokeRequest, context: grpc.ServicerContext) -> Any:
        self._record(context)
        self.revoke_request = request
        return broker_pb2.RevokeResponse(
            revocation=broker_pb2.Revocation(target=request.target, id=request.id)
        )

    def Validate(self, request: broker_pb2.ValidateRequest, context: grpc.ServicerContext) -> Any:
        self._record(context)
        context.abort(grpc.StatusCode.UNAVAILABLE, "database unreachable")


@pytest.fixture
def fake() -> Iterator[tuple[FakeBroker, str]]:
    # Metadata well past 16 KiB is let through, so a call the SDK should have
    # refused would reach the servicer and be counted.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.max_metadata_size", 256 * 1024)]
    )
    broker = FakeBroker()
    broker_pb2_grpc.add_BrokerServiceServicer_to_server(broker, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield broker, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


def test_basic_credentials_deadline_and_error_details(fake: tuple[FakeBroker, str]) -> None:
    broker, addr = fake
    with baton.BrokerClient(addr, client_id="app-1", client_secret="s3:cret", timeout=3.0) as client:
        with pytest.raises(baton.PermissionDeniedError) as caught:
            client.issue(
                "task-1",
                scopes=["admin:everything:*"],
                audiences=["crm"],
                ttl=datetime.timedelta(seconds=90),
            )
    expected = base64.b64encode(b"app-1:s3:cret").decode()
    assert broker.authorization == f"Basic {expected}"
    # gRPC may round the deadline up a little on the way (seen: 4.009 of 4.0).
    assert broker.time_remaining is not None and 0 < broker.time_remaining <= 3.5
    assert broker.issue_request is not None
    assert broker.issue_request.ttl.ToTimedelta() == datetime.timedelta(seconds=90)
    err = caught.value
    assert err.code == grpc.StatusCode.PERMISSION_DENIED
    assert err.reason == "SCOPE_NOT_COVERED"
    assert err.reason == baton.reason_of(errors_pb2.ERROR_REASON_SCOPE_NOT_COVERED)
    assert err.error_reason == errors_pb2.ERROR_REASON_SCOPE_NOT_COVERED
    assert err.metadata == {"excess_scopes": "admin:everything:*", "rule": "ceiling"}
    assert isinstance(err.__cause__, grpc.RpcError)


def test_bearer_credentials_and_target_names(fake: tuple[FakeBroker, str]) -> None:
    broker, addr = fake
    with baton.BrokerClient(addr, bearer_token="tok.en.value") as client:
        response = client.revoke("token", "jti-1", reason="done", timeout=2.0)
    assert broker.authorization == "Bearer tok.en.value"
    assert broker.time_remaining is not None and 0 < broker.time_remaining <= 2.5
    assert broker.revoke_request is not None
    assert broker.revoke_request.target == broker_pb2.REVOCATION_TARGET_TOKEN
    assert response.revocation.id == "jti-1"


def test_error_without_details_has_empty_reason(fake: tuple[FakeBroker, str]) -> None:
    _, addr = fake
    with baton.BrokerClient(addr, client_id="a", client_secret="b") as client:
        with pytest.raises(baton.UnavailableError) as caught:
            client.validate("t", "crm")
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.reason == ""
    assert caught.value.error_reason == errors_pb2.ERROR_REASON_UNSPECIFIED
    assert caught.value.metadata == {}


def test_incomplete_credentials_are_refused() -> None:
    with pytest.raises(ValueError):
        baton.BrokerClient("127.0.0.1:1", client_id="only-id")
    with pytest.raises(ValueError):
        baton.BrokerClient("127.0.0.1:1", client_id="a", client_secret="b", bearer_token="c")


def _claims(proof: str) -> dict[str, Any]:
    payload = proof.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def test_delegate_sends_the_agent_token_and_a_fresh_proof(fake: tuple[FakeBroker, str]) -> None:
    broker, addr = fake
    key = baton.AgentKey.generate()
    child_key = baton.AgentKey.generate("EdDSA")
    # Opened as an app: the agent call uses the agent's token instead.
    with baton.BrokerClient(addr, client_id="app-1", client_secret="s", timeout=4.0) as client:
        response = client.delegate(
            "parent.to.ken",
            ["read:records:P-1"],
            ["ehr-api"],
            key=key,
            ttl=datetime.timedelta(seconds=30),
            agent_public_key_jwk=child_key,
        )
        first, request = broker.proof, broker.delegate_request
        client.delegate("parent.to.ken", ["read:records:P-1"], key=key)
        second = broker.proof
    assert response.access_token == "child.to.ken"
    assert broker.authorization == "Bearer parent.to.ken"
    # gRPC may round the deadline up a little on the way.
    assert broker.time_remaining is not None and 0 < broker.time_remaining <= 4.5
    assert first is not None and second is not None
    claims = _claims(first)
    assert claims["htm"] == "/baton.v1.BrokerService/Delegate"
    expected_ath = base64.urlsafe_b64encode(hashlib.sha256(b"parent.to.ken").digest())
    assert claims["ath"] == expected_ath.rstrip(b"=").decode()
    assert claims["jti"] != _claims(second)["jti"]
    assert request is not None
    assert list(request.scopes) == ["read:records:P-1"]
    assert request.ttl.ToTimedelta() == datetime.timedelta(seconds=30)
    assert json.loads(request.agent_public_key_jwk) == child_key.public_jwk


def test_delegate_without_key_sends_no_proof(fake: tuple[FakeBroker, str]) -> None:
    broker, addr = fake
    with baton.BrokerClient(addr) as client:
        client.delegate("parent.to.ken", ["read:records:P-1"])
        with pytest.raises(ValueError):
            client.delegate("", ["read:records:P-1"])
    assert broker.authorization == "Bearer parent.to.ken"
    assert broker.proof is None
    assert broker.delegate_request is not None
    assert list(broker.delegate_request.audiences) == []
    assert broker.delegate_request.agent_public_key_jwk == ""


def test_release_revokes_the_calling_token_with_a_proof(fake: tuple[FakeBroker, str]) -> None:
    broker, addr = fake
    key = baton.AgentKey.generate()
    with baton.BrokerClient(addr, bearer_token="operator") as client:
        client.release("agent.to.ken", key, reason="done")
    assert broker.authorization == "Bearer agent.to.ken"
    assert broker.revoke_request is not None
    assert broker.revoke_request.target == broker_pb2.REVOCATION_TARGET_TOKEN
    assert broker.revoke_request.id == ""
    assert broker.revoke_request.reason == "done"
    assert broker.proof is not None
    assert _claims(broker.proof)["htm"] == "/baton.v1.BrokerService/Revoke"


def test_a_bearer_token_over_16_kib_is_never_sent(fake: tuple[FakeBroker, str]) -> None:
    # The broker answers oversized metadata with GOAWAY, closing the
    # connection under every other call: the SDK refuses such a token itself.
    broker, addr = fake
    assert baton.MAX_TOKEN_LENGTH == 16384
    longest = "t" * baton.MAX_TOKEN_LENGTH
    oversized = longest + "x"
    key = baton.AgentKey.generate()
    with pytest.raises(baton.TokenTooLongError) as caught:
        baton.BrokerClient(addr, bearer_token=oversized)
    assert isinstance(caught.value, ValueError)
    assert "16385" in str(caught.value) and "16384" in str(caught.value)
    assert "tttt" not in str(caught.value)  # the length, never the token
    with baton.BrokerClient(addr, client_id="app-1", client_secret="s") as client:
        with pytest.raises(baton.TokenTooLongError):
            client.delegate(oversized, ["read:records:P-1"], key=key)
        with pytest.raises(baton.TokenTooLongError):
            client.release(oversized, key)
        with pytest.raises(baton.TokenTooLongError):
            client.release(oversized)
        assert broker.calls == 0
        # The limit itself is sent: the check is not off by one.
        client.release(longest, key)
    assert broker.calls == 1
    assert broker.authorization == f"Bearer {longest}"
    with pytest.raises(baton.TokenTooLongError):
        baton.RevocationSubscriber(addr, bearer_token=oversized)


def test_a_single_string_where_a_list_is_expected_is_a_type_error(fake: tuple[FakeBroker, str]) -> None:
    # protobuf would take "read:records:P-1" as ["r", "e", "a", ...]: each
    # character a scope. The SDK refuses it before any call.
    broker, addr = fake
    key = baton.AgentKey.generate()
    with baton.BrokerClient(addr, client_id="app-1", client_secret="s") as client:
        with pytest.raises(TypeError, match="scopes"):
            client.issue("task-1", "read:records:P-1", ["ehr-api"])
        with pytest.raises(TypeError, match="audiences"):
            client.issue("task-1", ["read:records:P-1"], "ehr-api")
        with pytest.raises(TypeError, match="scopes"):
            client.issue("task-1", [b"read:records:P-1"], ["ehr-api"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="scopes"):
            client.delegate("parent.to.ken", "read:records:P-1", key=key)
        with pytest.raises(TypeError, match="audiences"):
            client.delegate("parent.to.ken", ["read:records:P-1"], "ehr-api", key=key)
        with pytest.raises(TypeError, match="required_scopes"):
            client.validate("some.to.ken", "ehr-api", "read:records:P-1")
        with pytest.raises(TypeError, match="scopes"):
            client.issue("task-1", None, ["ehr-api"])  # type: ignore[arg-type]
        assert broker.calls == 0

        # Any iterable of strings is a list: a tuple, a generator.
        with pytest.raises(baton.PermissionDeniedError):
            client.issue("task-1", ("read:records:P-1",), (a for a in ["ehr-api"]))
        assert broker.issue_request is not None
        assert list(broker.issue_request.scopes) == ["read:records:P-1"]
        assert list(broker.issue_request.audiences) == ["ehr-api"]
        client.delegate("parent.to.ken", ["read:records:P-1", "read:records:P-2"], key=key)
        assert broker.delegate_request is not None
        assert list(broker.delegate_request.scopes) == ["read:records:P-1", "read:records:P-2"]
        assert list(broker.delegate_request.audiences) == []
    assert broker.calls == 2
