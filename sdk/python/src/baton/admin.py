"""A thin client for Baton's AdminService (the operator's calls)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import grpc

from baton._args import string_list
from baton._rpc import ChannelClient, call
from baton.client import DEFAULT_TIMEOUT
from baton.errors import bearer_metadata
from baton.v1 import admin_pb2, admin_pb2_grpc

_Response = TypeVar("_Response")


class AdminClient(ChannelClient):
    """A connection to a broker's AdminService with the operator credential.

    Every call sends ``authorization: Bearer <operator token>``, has a
    deadline, and raises :class:`baton.BatonError` (or a subclass) on
    failure, as :class:`baton.BrokerClient` does. Methods return the
    generated response messages (``baton.v1.admin_pb2``).

    Usable as a context manager; otherwise call :meth:`close`.
    """

    def __init__(
        self,
        target: str,
        operator_token: str,
        timeout: float | None = DEFAULT_TIMEOUT,
        *,
        channel_credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Open a channel to the broker at ``target``.

        Args:
            target: ``host:port`` or any gRPC target URI.
            operator_token: The operator credential (the broker's
                ``BATON_OPERATOR_TOKEN``). Keep it secret: it is never shown
                in errors or ``repr``.
            timeout: The deadline of each call, in seconds, unless the call
                gives its own; ``None`` for no deadline.
            channel_credentials: Transport security, for example
                ``grpc.ssl_channel_credentials()``. ``None`` is plaintext,
                only fit for a broker on loopback.
            options: gRPC channel options.

        Raises:
            ValueError: When ``operator_token`` is empty, or
                :class:`baton.TokenTooLongError` when it is longer than
                :data:`baton.MAX_TOKEN_LENGTH`.
            TypeError: When ``operator_token`` is not a string.
        """
        if not isinstance(operator_token, str):
            raise TypeError(f"operator_token is a string, not {type(operator_token).__name__}")
        if not operator_token:
            raise ValueError("the operator token is required")
        self._metadata = bearer_metadata(operator_token)
        self._timeout = timeout
        if channel_credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, channel_credentials, options=options)
        self._stub = admin_pb2_grpc.AdminServiceStub(self._channel)

    @property
    def stub(self) -> admin_pb2_grpc.AdminServiceStub:
        """The generated stub; calls on it need ``metadata=client.call_metadata``."""
        return self._stub

    @property
    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata (``authorization``) this client sends on its calls."""
        return self._metadata

    # Apps.

    def create_app(
        self,
        name: str,
        scope_ceiling: Sequence[str],
        audiences: Sequence[str],
        *,
        max_ttl: datetime.timedelta | None = None,
        max_delegation_depth: int = 0,
        rate_limit_per_second: int | None = None,
        rate_limit_burst: int | None = None,
        approval_policy: Sequence[admin_pb2.ApprovalRule] = (),
        max_task_lifetime: datetime.timedelta | None = None,
        timeout: float | None = None,
    ) -> admin_pb2.CreateAppResponse:
        """Register an app; the response holds its client secret, shown only here.

        Args:
            name: Unique; 1 to 128 characters from ``A-Z a-z 0-9 . _ -``.
            scope_ceiling: 1 to 64 scopes covering all the app may issue.
            audiences: 1 to 16 resource servers the app may issue for.
            max_ttl: The longest TTL it may issue; ``None``: 1 hour.
            max_delegation_depth: 0 for the default, 5.
            rate_limit_per_second: Its rate limit per replica; ``None`` or 0
                for the broker's default.
            rate_limit_burst: Its burst; ``None`` or 0 for the default.
            approval_policy: Which scopes need human approval, and whose:
                rules as :func:`approval_rule` makes them (or
                ``admin_pb2.ApprovalRule``). None by default.
            max_task_lifetime: How long a task may keep renewing its tokens
                (whole seconds, 1 second to 30 days); ``None`` for the
                broker's default (``BATON_MAX_TASK_SECONDS``).
            timeout: This call's deadline in seconds; the client's by default.

        Raises:
            BatonError: For example reason ``ALREADY_EXISTS`` for a taken name.
            TypeError: When ``scope_ceiling`` or ``audiences`` is a single
                string rather than a list (nothing is sent).
        """
        request = admin_pb2.CreateAppRequest(
            name=name,
            scope_ceiling=string_list(scope_ceiling, "scope_ceiling"),
            audiences=string_list(audiences, "audiences"),
            max_ttl=max_ttl,
            max_delegation_depth=max_delegation_depth,
            rate_limit_per_second=rate_limit_per_second,
            rate_limit_burst=rate_limit_burst,
            approval_policy=_policy(approval_policy),
            max_task_lifetime=max_task_lifetime,
        )
        return self._call(self._stub.CreateApp, request, timeout)

    def get_app(self, app_id: str, *, timeout: float | None = None) -> admin_pb2.GetAppResponse:
        """Return one app (``response.app``); ``NotFoundError`` when there is none."""
        return self._call(self._stub.GetApp, admin_pb2.GetAppRequest(app_id=app_id), timeout)

    def list_apps(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> admin_pb2.ListAppsResponse:
        """One page of apps ordered by id (see :meth:`iter_apps` for all of them).

        Args:
            page_size: At most this many; 0 for the broker's default (50).
            page_token: The previous page's ``next_page_token``; empty first.
            timeout: This call's deadline in seconds; the client's by default.
        """
        request = admin_pb2.ListAppsRequest(page_size=page_size, page_token=page_token)
        return self._call(self._stub.ListApps, request, timeout)

    def iter_apps(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[admin_pb2.App]:
        """Every app, ordered by id, fetched a page at a time as the iteration goes.

        ``timeout`` applies to each page's call.
        """
        return _pages(
            lambda token: self.list_apps(page_size=page_size, page_token=token, timeout=timeout),
            lambda page: page.apps,
        )

    def update_app(
        self,
        app_id: str,
        *,
        name: str | None = None,
        scope_ceiling: Sequence[str] | None = None,
        audiences: Sequence[str] | None = None,
        max_ttl: datetime.timedelta | None = None,
        max_delegation_depth: int | None = None,
        rate_limit_per_second: int | None = None,
        rate_limit_burst: int | None = None,
        approval_policy: Sequence[admin_pb2.ApprovalRule] | None = None,
        max_task_lifetime: datetime.timedelta | None = None,
        timeout: float | None = None,
    ) -> admin_pb2.UpdateAppResponse:
        """Change an app; what is ``None`` is left as it is.

        Narrowing the ceiling, the audiences or the maximum TTL revokes the
        app's live tokens that no longer fit (``revoked_token_count``).
        A rate limit or burst of 0 returns it to the broker's default.
        ``approval_policy`` replaces the policy (``[]`` removes it).
        Lowering ``max_task_lifetime`` revokes nothing: the next Renew uses it.

        Raises:
            BatonError: For example :class:`baton.NotFoundError`.
            TypeError: When ``scope_ceiling`` or ``audiences`` is a single
                string rather than a list (nothing is sent).
        """
        request = admin_pb2.UpdateAppRequest(
            app_id=app_id,
            name=name,
            max_ttl=max_ttl,
            max_delegation_depth=max_delegation_depth,
            rate_limit_per_second=rate_limit_per_second,
            rate_limit_burst=rate_limit_burst,
            max_task_lifetime=max_task_lifetime,
        )
        # Presence is explicit: an empty list would mean "no ceiling", which
        # the broker refuses, not "unchanged".
        if scope_ceiling is not None:
            request.update_scope_ceiling = True
            request.scope_ceiling.extend(string_list(scope_ceiling, "scope_ceiling"))
        if audiences is not None:
            request.update_audiences = True
            request.audiences.extend(string_list(audiences, "audiences"))
        if approval_policy is not None:
            request.update_approval_policy = True
            request.approval_policy.extend(_policy(approval_policy))
        return self._call(self._stub.UpdateApp, request, timeout)

    def disable_app(
        self, app_id: str, *, reason: str = "", timeout: float | None = None
    ) -> admin_pb2.DisableAppResponse:
        """Disable an app: it can no longer authenticate; its tokens are revoked."""
        request = admin_pb2.DisableAppRequest(app_id=app_id, reason=reason)
        return self._call(self._stub.DisableApp, request, timeout)

    def rotate_app_secret(
        self, app_id: str, *, timeout: float | None = None
    ) -> admin_pb2.RotateAppSecretResponse:
        """Replace an app's secret (returned once); the old one stops working at once."""
        request = admin_pb2.RotateAppSecretRequest(app_id=app_id)
        return self._call(self._stub.RotateAppSecret, request, timeout)

    # Resource servers.

    def create_resource_server(
        self, name: str, audiences: Sequence[str], *, timeout: float | None = None
    ) -> admin_pb2.CreateResourceServerResponse:
        """Register a resource server; the response holds its secret, shown only here.

        Its id (``rs_...``) and secret are credentials like an app's for
        :class:`baton.RevocationSubscriber` (only the revocations that can
        affect tokens for its audiences) and :meth:`baton.BrokerClient.validate`
        (only for its audiences); it can call nothing else.

        Raises:
            TypeError: When ``audiences`` is a single string (nothing is sent).
        """
        request = admin_pb2.CreateResourceServerRequest(
            name=name, audiences=string_list(audiences, "audiences")
        )
        return self._call(self._stub.CreateResourceServer, request, timeout)

    def list_resource_servers(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> admin_pb2.ListResourceServersResponse:
        """One page of resource servers ordered by id (see :meth:`iter_resource_servers`)."""
        request = admin_pb2.ListResourceServersRequest(page_size=page_size, page_token=page_token)
        return self._call(self._stub.ListResourceServers, request, timeout)

    def iter_resource_servers(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[admin_pb2.ResourceServer]:
        """Every resource server, ordered by id, a page at a time."""
        return _pages(
            lambda token: self.list_resource_servers(
                page_size=page_size, page_token=token, timeout=timeout
            ),
            lambda page: page.resource_servers,
        )

    def disable_resource_server(
        self, resource_server_id: str, *, reason: str = "", timeout: float | None = None
    ) -> admin_pb2.DisableResourceServerResponse:
        """Disable a resource server: it can no longer authenticate, and its
        open streams end with ``RESOURCE_SERVER_DISABLED``."""
        request = admin_pb2.DisableResourceServerRequest(
            resource_server_id=resource_server_id, reason=reason
        )
        return self._call(self._stub.DisableResourceServer, request, timeout)

    # Signing keys and the audit trail.

    def list_signing_keys(self, *, timeout: float | None = None) -> admin_pb2.ListSigningKeysResponse:
        """The signing keys still published (public parts), newest first."""
        return self._call(self._stub.ListSigningKeys, admin_pb2.ListSigningKeysRequest(), timeout)

    def rotate_signing_key(
        self, *, timeout: float | None = None
    ) -> admin_pb2.RotateSigningKeyResponse:
        """Activate the published next key and publish a new next one."""
        return self._call(
            self._stub.RotateSigningKey, admin_pb2.RotateSigningKeyRequest(), timeout
        )

    def verify_audit_log(
        self, *, timeout: float | None = None
    ) -> admin_pb2.VerifyAuditLogResponse:
        """Re-compute the audit hash chain: ``intact``, or the first broken event."""
        return self._call(self._stub.VerifyAuditLog, admin_pb2.VerifyAuditLogRequest(), timeout)

    # Approvers (issue 8).

    def create_approver(
        self, name: str, groups: Sequence[str], *, timeout: float | None = None
    ) -> admin_pb2.CreateApproverResponse:
        """Register a named human approver; the response holds its secret, shown only here.

        Its id (``apv_...``) and secret are the credentials of
        :class:`baton.ApprovalClient`.

        Args:
            name: Unique, 1 to 64 characters from ``A-Z a-z 0-9 . _ -``.
            groups: 1 to 16 approver groups (``["clinical-leads"]``).

        Raises:
            TypeError: When ``groups`` is a single string (nothing is sent).
        """
        request = admin_pb2.CreateApproverRequest(name=name, groups=string_list(groups, "groups"))
        return self._call(self._stub.CreateApprover, request, timeout)

    def list_approvers(
        self, *, page_size: int = 0, page_token: str = "", timeout: float | None = None
    ) -> admin_pb2.ListApproversResponse:
        """One page of approvers ordered by id (see :meth:`iter_approvers`)."""
        request = admin_pb2.ListApproversRequest(page_size=page_size, page_token=page_token)
        return self._call(self._stub.ListApprovers, request, timeout)

    def iter_approvers(
        self, *, page_size: int = 0, timeout: float | None = None
    ) -> Iterator[admin_pb2.Approver]:
        """Every approver, ordered by id, a page at a time."""
        return _pages(
            lambda token: self.list_approvers(page_size=page_size, page_token=token, timeout=timeout),
            lambda page: page.approvers,
        )

    def disable_approver(
        self, approver_id: str, *, reason: str = "", timeout: float | None = None
    ) -> admin_pb2.DisableApproverResponse:
        """Disable an approver: it can no longer authenticate, and its
        decisions on approvals still pending are withdrawn."""
        request = admin_pb2.DisableApproverRequest(approver_id=approver_id, reason=reason)
        return self._call(self._stub.DisableApprover, request, timeout)

    def list_audit_events(
        self,
        *,
        app_id: str = "",
        task_id: str = "",
        agent_id: str = "",
        human_principal: str = "",
        token_id: str = "",
        kinds: Sequence[str] = (),
        start_time: datetime.datetime | None = None,
        end_time: datetime.datetime | None = None,
        after_seq: int = 0,
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> admin_pb2.ListAuditEventsResponse:
        """One page of audit events, oldest first (see :meth:`iter_audit_events`).

        Filters combine with AND; an unset one matches everything.

        Args:
            app_id: Only this app's events.
            task_id: Only this task's events.
            agent_id: Only events about this agent (``sub``).
            human_principal: Only events for this human.
            token_id: Only events about this token (``jti``).
            kinds: Only events of these kinds, e.g. ``["token.issued"]``.
            start_time: Only events at or after this (timezone-aware) time.
            end_time: Only events before this (timezone-aware) time.
            after_seq: Only events after this sequence number (to follow
                the trail: the last ``seq`` seen).
            page_size: At most this many; 0 for the broker's default (100).
            page_token: The previous page's ``next_page_token``, with the
                same filters (other filters: ``INVALID_REQUEST``).
            timeout: This call's deadline in seconds; the client's by default.

        Raises:
            TypeError: When a filter has the wrong type, ``kinds`` is a single
                string, or a time is not a ``datetime`` (nothing is sent).
            ValueError: When a time has no timezone, or ``after_seq`` or
                ``page_size`` is negative (nothing is sent).
        """
        request = admin_pb2.ListAuditEventsRequest(
            app_id=_text(app_id, "app_id"),
            task_id=_text(task_id, "task_id"),
            agent_id=_text(agent_id, "agent_id"),
            human_principal=_text(human_principal, "human_principal"),
            token_id=_text(token_id, "token_id"),
            kinds=string_list(kinds, "kinds"),
            start_time=_aware(start_time, "start_time"),
            end_time=_aware(end_time, "end_time"),
            after_seq=_whole(after_seq, "after_seq"),
            page_size=_whole(page_size, "page_size"),
            page_token=_text(page_token, "page_token"),
        )
        return self._call(self._stub.ListAuditEvents, request, timeout)

    def iter_audit_events(
        self,
        *,
        app_id: str = "",
        task_id: str = "",
        agent_id: str = "",
        human_principal: str = "",
        token_id: str = "",
        kinds: Sequence[str] = (),
        start_time: datetime.datetime | None = None,
        end_time: datetime.datetime | None = None,
        after_seq: int = 0,
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[admin_pb2.AuditEvent]:
        """Every matching audit event, oldest first, a page at a time as the
        iteration goes. The filters are those of :meth:`list_audit_events`,
        checked before the first call."""
        # Checked here, not at the first next(): a bad argument fails where it is given.
        for name, value in (
            ("app_id", app_id),
            ("task_id", task_id),
            ("agent_id", agent_id),
            ("human_principal", human_principal),
            ("token_id", token_id),
        ):
            _text(value, name)
        self._check_audit_filters(kinds, start_time, end_time, after_seq, page_size)
        return _pages(
            lambda token: self.list_audit_events(
                app_id=app_id,
                task_id=task_id,
                agent_id=agent_id,
                human_principal=human_principal,
                token_id=token_id,
                kinds=kinds,
                start_time=start_time,
                end_time=end_time,
                after_seq=after_seq,
                page_size=page_size,
                page_token=token,
                timeout=timeout,
            ),
            lambda page: page.events,
        )

    @staticmethod
    def _check_audit_filters(
        kinds: Any, start_time: Any, end_time: Any, after_seq: Any, page_size: Any
    ) -> None:
        string_list(kinds, "kinds")
        _aware(start_time, "start_time")
        _aware(end_time, "end_time")
        _whole(after_seq, "after_seq")
        _whole(page_size, "page_size")

    def __repr__(self) -> str:
        """Never the operator token."""
        return "AdminClient()"

    def _call(self, method: Callable[..., _Response], request: Any, timeout: float | None) -> _Response:
        return call(method, request, self._timeout if timeout is None else timeout, self._metadata)


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} is a string, not {type(value).__name__}")
    return value


def _aware(value: Any, name: str) -> datetime.datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"{name} is a datetime.datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # A naive time would be read as UTC, which is rarely what was meant.
        raise ValueError(f"{name} must be timezone-aware")
    return value


def _whole(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} is an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


_Page = TypeVar("_Page")
_Item = TypeVar("_Item")


def _pages(
    fetch: Callable[[str], _Page], items: Callable[[_Page], Sequence[_Item]]
) -> Iterator[_Item]:
    """Yield the items of each page until one has no ``next_page_token``."""
    token = ""
    while True:
        page = fetch(token)
        yield from items(page)
        token = page.next_page_token  # type: ignore[attr-defined]
        if not token:
            return


# ---- Approval policy (issue 8) ----

def approval_rule(
    pattern: str,
    scope_class: admin_pb2.ScopeClass | str,
    approvals_required: int = 0,
    approver_group: str = "",
) -> admin_pb2.ApprovalRule:
    """One rule of an app's approval policy.

    Args:
        pattern: A scope pattern, ``"write:prescriptions:*"``.
        scope_class: A ``ScopeClass`` or its name, with or without the
            ``SCOPE_CLASS_`` prefix: ``"read"``, ``"write"``,
            ``"dangerous_write"``.
        approvals_required: Distinct approvals needed: 0 for read; 0 or 1
            for write; 1 or 2 (dual control) for dangerous write.
        approver_group: The group whose members may decide; required when
            ``approvals_required`` is above 0.

    Raises:
        ValueError: For an unknown class name or a negative count.
        TypeError: For arguments of the wrong type.
    """
    if not isinstance(pattern, str) or not isinstance(approver_group, str):
        raise TypeError("pattern and approver_group are strings")
    if isinstance(approvals_required, bool) or not isinstance(approvals_required, int):
        raise TypeError(f"approvals_required is an int, not {type(approvals_required).__name__}")
    if approvals_required < 0:
        raise ValueError("approvals_required is 0 or more")
    return admin_pb2.ApprovalRule(
        pattern=pattern,
        scope_class=_scope_class(scope_class),
        approvals_required=approvals_required,
        approver_group=approver_group,
    )


def _scope_class(value: admin_pb2.ScopeClass | str) -> admin_pb2.ScopeClass:
    if isinstance(value, str):
        name = value.upper()
        if not name.startswith("SCOPE_CLASS_"):
            name = "SCOPE_CLASS_" + name
        # Value raises ValueError for an unknown name.
        return cast(admin_pb2.ScopeClass, admin_pb2.ScopeClass.Value(name))
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"scope_class is a ScopeClass or its name, not {type(value).__name__}")
    return value


def _policy(rules: Sequence[admin_pb2.ApprovalRule]) -> list[admin_pb2.ApprovalRule]:
    """The rules as a list, each an ``ApprovalRule`` (anything else is a TypeError; nothing is sent)."""
    if isinstance(rules, (str, bytes, admin_pb2.ApprovalRule)):
        raise TypeError(f"approval_policy takes a list of rules, not a single {type(rules).__name__}")
    items = list(rules)
    for i, rule in enumerate(items):
        if not isinstance(rule, admin_pb2.ApprovalRule):
            raise TypeError(
                f"approval_policy[{i}] is a {type(rule).__name__}; make rules with baton.approval_rule"
            )
    return items
