"""AdminClient, BrokerClient.revoke_many and RetryInfo parsing against
in-process fake servers on loopback, without a live broker."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

import baton
from baton.v1 import admin_pb2, admin_pb2_grpc, broker_pb2, broker_pb2_grpc, errors_pb2


def _packed(message: Any) -> any_pb2.Any:
    detail = any_pb2.Any()
    detail.Pack(message)
    return detail


def _abort(context: grpc.ServicerContext, code: int, message: str, *details: Any) -> None:
    context.abort_with_status(
        rpc_status.to_status(
            status_pb2.Status(code=code, message=message, details=[_packed(d) for d in details])
        )
    )


class FakeBroker(broker_pb2_grpc.BrokerServiceServicer):
    """RevokeMany records its request; Issue and Validate refuse with a chosen status."""

    def __init__(self) -> None:
        self.authorization: str | None = None
        self.revoke_many_request: broker_pb2.RevokeManyRequest | None = None
        self.calls = 0
        self.refusal: tuple[int, str, list[Any]] = (code_pb2.UNAVAILABLE, "x", [])

    def RevokeMany(self, request: broker_pb2.RevokeManyRequest, context: grpc.ServicerContext) -> Any:
        self.calls += 1
        self.authorization = dict(context.invocation_metadata()).get("authorization")  # type: ignore[assignment]
        self.revoke_many_request = request
        return broker_pb2.RevokeManyResponse(
            revocations=[broker_pb2.Revocation(target=t.target, id=t.id) for t in request.targets]
        )

    def Issue(self, request: broker_pb2.IssueRequest, context: grpc.ServicerContext) -> Any:
        self.calls += 1
        code, message, details = self.refusal
        _abort(context, code, message, *details)


PAGES = {"": (["app_1", "app_2"], "p2"), "p2": (["app_3", "app_4"], "p3"), "p3": (["app_5"], "")}


class FakeAdmin(admin_pb2_grpc.AdminServiceServicer):
    """Three pages of apps; records the last request and its authorization."""

    def __init__(self) -> None:
        self.authorization: list[str] = []
        self.requests: list[Any] = []
        self.page_sizes: list[int] = []

    def _record(self, request: Any, context: grpc.ServicerContext) -> None:
        self.authorization.append(dict(context.invocation_metadata()).get("authorization", ""))  # type: ignore[arg-type]
        self.requests.append(request)

    def ListApps(self, request: admin_pb2.ListAppsRequest, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        self.page_sizes.append(request.page_size)
        if request.page_token not in PAGES:
            _abort(
                context,
                code_pb2.INVALID_ARGUMENT,
                "bad page token",
                error_details_pb2.ErrorInfo(reason="INVALID_REQUEST", domain="baton.dev"),
            )
        ids, next_token = PAGES[request.page_token]
        return admin_pb2.ListAppsResponse(
            apps=[admin_pb2.App(app_id=i) for i in ids], next_page_token=next_token
        )

    def ListResourceServers(self, request: admin_pb2.ListResourceServersRequest, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        if request.page_token == "":
            return admin_pb2.ListResourceServersResponse(
                resource_servers=[admin_pb2.ResourceServer(resource_server_id="rs_1")],
                next_page_token="n",
            )
        return admin_pb2.ListResourceServersResponse(
            resource_servers=[admin_pb2.ResourceServer(resource_server_id="rs_2")]
        )

    def UpdateApp(self, request: admin_pb2.UpdateAppRequest, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        return admin_pb2.UpdateAppResponse(app=admin_pb2.App(app_id=request.app_id))

    def CreateApp(self, request: admin_pb2.CreateAppRequest, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        return admin_pb2.CreateAppResponse(app=admin_pb2.App(app_id="app_new"), client_secret="s")

    def GetApp(self, request: admin_pb2.GetAppRequest, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        _abort(
            context,
            code_pb2.NOT_FOUND,
            "no such app",
            error_details_pb2.ErrorInfo(reason="NOT_FOUND", domain="baton.dev", metadata={"app_id": request.app_id}),
        )

    def RotateSigningKey(self, request: admin_pb2.RotateSigningKeyRequest, context: grpc.ServicerContext) -> Any:
        self._record(request, context)
        # Rate limited, with a RetryInfo before the ErrorInfo: order must not matter.
        _abort(
            context,
            code_pb2.RESOURCE_EXHAUSTED,
            "slow down",
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=2, nanos=500_000_000)),
            error_details_pb2.ErrorInfo(reason="RATE_LIMITED", domain="baton.dev"),
        )


@pytest.fixture
def servers() -> Iterator[tuple[FakeBroker, FakeAdmin, str]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    broker, admin = FakeBroker(), FakeAdmin()
    broker_pb2_grpc.add_BrokerServiceServicer_to_server(broker, server)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(admin, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield broker, admin, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


# RetryInfo and the new reasons.


def _issue_refused(broker: FakeBroker, addr: str, code: int, *details: Any) -> baton.BatonError:
    broker.refusal = (code, "refused", list(details))
    with baton.BrokerClient(addr, client_id="a", client_secret="b") as client:
        with pytest.raises(baton.BatonError) as caught:
            client.issue("t", ["read:x:y"], ["crm"])
    return caught.value


@pytest.mark.parametrize(
    ("reason", "value"),
    [
        ("RATE_LIMITED", errors_pb2.ERROR_REASON_RATE_LIMITED),
        ("AUTHENTICATION_THROTTLED", errors_pb2.ERROR_REASON_AUTHENTICATION_THROTTLED),
    ],
)
def test_rate_limit_errors_carry_retry_after(
    servers: tuple[FakeBroker, FakeAdmin, str], reason: str, value: int
) -> None:
    broker, _, addr = servers
    err = _issue_refused(
        broker,
        addr,
        code_pb2.RESOURCE_EXHAUSTED,
        error_details_pb2.ErrorInfo(reason=reason, domain="baton.dev", metadata={"limit": "10"}),
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=250_000_000)),
    )
    assert isinstance(err, baton.ResourceExhaustedError)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.reason == reason == baton.reason_of(value)
    assert err.error_reason == value
    assert err.metadata == {"limit": "10"}
    assert err.retry_after == pytest.approx(1.25)
    assert "retry_after=1.25" in repr(err)


def test_retry_info_order_and_sub_second_delays(servers: tuple[FakeBroker, FakeAdmin, str]) -> None:
    _, _, addr = servers
    with baton.AdminClient(addr, "bop_operator") as admin:
        with pytest.raises(baton.ResourceExhaustedError) as caught:
            admin.rotate_signing_key()
    assert caught.value.retry_after == pytest.approx(2.5)
    assert caught.value.reason == "RATE_LIMITED"

    broker, _, _ = servers
    err = _issue_refused(
        broker,
        addr,
        code_pb2.RESOURCE_EXHAUSTED,
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=40_000_000)),
    )
    assert err.retry_after == pytest.approx(0.04)
    assert err.reason == ""  # no ErrorInfo: the delay is still read


def test_no_retry_info_is_none_and_a_negative_delay_is_zero(servers: tuple[FakeBroker, FakeAdmin, str]) -> None:
    broker, _, addr = servers
    err = _issue_refused(
        broker,
        addr,
        code_pb2.PERMISSION_DENIED,
        error_details_pb2.ErrorInfo(reason="AUDIENCE_NOT_SERVED", domain="baton.dev", metadata={"audience": "crm"}),
    )
    assert isinstance(err, baton.PermissionDeniedError)
    assert err.retry_after is None
    assert err.error_reason == errors_pb2.ERROR_REASON_AUDIENCE_NOT_SERVED

    err = _issue_refused(
        broker,
        addr,
        code_pb2.RESOURCE_EXHAUSTED,
        error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=-3)),
    )
    assert err.retry_after == 0.0


def test_new_reasons_map_to_the_enum() -> None:
    for name, value in [
        ("RATE_LIMITED", 26),
        ("AUTHENTICATION_THROTTLED", 27),
        ("AUDIENCE_NOT_SERVED", 28),
        ("RESOURCE_SERVER_DISABLED", 29),
    ]:
        err = baton.BatonError(grpc.StatusCode.PERMISSION_DENIED, "m", name)
        assert int(err.error_reason) == value
        assert baton.reason_of(value) == name  # type: ignore[arg-type]


# revoke_many.


def test_revoke_many_sends_every_target_in_order(servers: tuple[FakeBroker, FakeAdmin, str]) -> None:
    broker, _, addr = servers
    own = broker_pb2.RevokeRequest(target=broker_pb2.REVOCATION_TARGET_APP, id="app_9", reason="mine")
    with baton.BrokerClient(addr, bearer_token="bop_operator") as client:
        response = client.revoke_many(
            [("token", "jti-1"), (broker_pb2.REVOCATION_TARGET_TASK, "task-1", "app_2"), own],
            reason="incident 42",
        )
    assert broker.authorization == "Bearer bop_operator"
    assert broker.revoke_many_request is not None
    assert [(t.target, t.id, t.app_id, t.reason) for t in broker.revoke_many_request.targets] == [
        (broker_pb2.REVOCATION_TARGET_TOKEN, "jti-1", "", "incident 42"),
        (broker_pb2.REVOCATION_TARGET_TASK, "task-1", "app_2", "incident 42"),
        (broker_pb2.REVOCATION_TARGET_APP, "app_9", "", "mine"),
    ]
    assert [r.id for r in response.revocations] == ["jti-1", "task-1", "app_9"]
    assert own.reason == "mine"  # the caller's message is not changed


@pytest.mark.parametrize(
    ("targets", "error"),
    [
        ("token", TypeError),  # a single string
        (("token", "jti-1"), TypeError),  # a single tuple, not a list of them
        (broker_pb2.RevokeRequest(id="x"), TypeError),  # a single request
        (42, TypeError),  # not iterable
        ([["token", "jti-1"]], TypeError),  # a list, not a tuple
        ([("token",)], TypeError),  # no id
        ([("token", 5)], TypeError),  # an id that is not a string
        ([("token", "a", "b", "c")], TypeError),  # too many fields
        ([(3.5, "a")], TypeError),  # a target of the wrong type
        ([("token", "a"), ("nonsense", "b")], ValueError),  # no such target
    ],
)
def test_revoke_many_refuses_bad_arguments_before_sending(
    servers: tuple[FakeBroker, FakeAdmin, str], targets: Any, error: type[Exception]
) -> None:
    broker, _, addr = servers
    with baton.BrokerClient(addr, client_id="a", client_secret="b") as client:
        with pytest.raises(error):
            client.revoke_many(targets)
    assert broker.calls == 0


# AdminClient.


def test_admin_client_sends_the_operator_token_and_pages_through_apps(
    servers: tuple[FakeBroker, FakeAdmin, str],
) -> None:
    _, admin, addr = servers
    with baton.AdminClient(addr, "bop_operator") as client:
        ids = [app.app_id for app in client.iter_apps(page_size=2)]
        assert ids == ["app_1", "app_2", "app_3", "app_4", "app_5"]
        assert admin.page_sizes == [2, 2, 2]
        assert [r.page_token for r in admin.requests] == ["", "p2", "p3"]
        assert [rs.resource_server_id for rs in client.iter_resource_servers()] == ["rs_1", "rs_2"]
        page = client.list_apps(page_token="p3")
        assert [a.app_id for a in page.apps] == ["app_5"] and page.next_page_token == ""
    assert set(admin.authorization) == {"Bearer bop_operator"}
    assert "bop_operator" not in repr(client)


def test_admin_errors_are_typed(servers: tuple[FakeBroker, FakeAdmin, str]) -> None:
    _, _, addr = servers
    with baton.AdminClient(addr, "bop_operator") as client:
        with pytest.raises(baton.NotFoundError) as caught:
            client.get_app("app_missing")
        assert caught.value.reason == "NOT_FOUND"
        assert caught.value.metadata == {"app_id": "app_missing"}
        with pytest.raises(baton.InvalidArgumentError):
            client.list_apps(page_token="forged")
    assert "bop_operator" not in repr(caught.value) and "bop_operator" not in str(caught.value)


def test_update_app_sends_only_what_changes(servers: tuple[FakeBroker, FakeAdmin, str]) -> None:
    _, admin, addr = servers
    with baton.AdminClient(addr, "bop_operator") as client:
        client.update_app("app_1", rate_limit_per_second=0)
        client.update_app(
            "app_1", scope_ceiling=["read:crm:*"], audiences=[], max_ttl=datetime.timedelta(minutes=10)
        )
    first, second = admin.requests
    assert first.HasField("rate_limit_per_second") and first.rate_limit_per_second == 0
    assert not first.HasField("name") and not first.HasField("max_ttl")
    assert not first.update_scope_ceiling and not first.update_audiences
    assert second.update_scope_ceiling and list(second.scope_ceiling) == ["read:crm:*"]
    # An empty list is sent as a replacement (the broker judges it), not dropped.
    assert second.update_audiences and list(second.audiences) == []
    assert second.max_ttl.ToTimedelta() == datetime.timedelta(minutes=10)
    assert not second.HasField("rate_limit_per_second")


def test_create_app_and_argument_checks(servers: tuple[FakeBroker, FakeAdmin, str]) -> None:
    _, admin, addr = servers
    with baton.AdminClient(addr, "bop_operator") as client:
        created = client.create_app("crm-bot", ["read:crm:*"], ["crm"], rate_limit_burst=20)
        assert created.app.app_id == "app_new"
        sent = admin.requests[-1]
        assert sent.HasField("rate_limit_burst") and not sent.HasField("rate_limit_per_second")
        calls = len(admin.requests)
        with pytest.raises(TypeError):
            client.create_app("x", "read:crm:*", ["crm"])
        with pytest.raises(TypeError):
            client.create_resource_server("x", "crm")
        with pytest.raises(TypeError):
            client.update_app("app_1", audiences="crm")
        assert len(admin.requests) == calls
    with pytest.raises(ValueError):
        baton.AdminClient(addr, "")
    with pytest.raises(baton.TokenTooLongError):
        baton.AdminClient(addr, "x" * (baton.MAX_TOKEN_LENGTH + 1))
