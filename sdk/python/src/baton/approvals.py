"""A thin client for Baton's ApprovalService, for approvers (issue 8).

An Issue or Delegate for a scope the app's policy says needs human approval
raises :class:`baton.ApprovalRequiredError` naming a new pending approval.
Approvers (named humans with ``apv_...`` credentials, created by the
operator with :meth:`baton.AdminClient.create_approver`) list it, approve or
deny it with a reason; the requester follows it
(:meth:`baton.BrokerClient.wait_for_approval`) and, once it is APPROVED,
sends the same request again with ``approval_id``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import grpc

from baton._rpc import ChannelClient, call, wait_for_decision
from baton.client import DEFAULT_APPROVAL_WAIT, DEFAULT_TIMEOUT
from baton.errors import bearer_metadata
from baton.v1 import approvals_pb2, approvals_pb2_grpc

_Response = TypeVar("_Response")

#: The longest approve or deny reason the broker accepts, in characters.
MAX_DECISION_REASON_LENGTH = 512


def approval_state(state: approvals_pb2.ApprovalState | str) -> approvals_pb2.ApprovalState:
    """An ``ApprovalState`` from itself or its name, with or without prefix (``"pending"``).

    Raises:
        ValueError: For an unknown name.
        TypeError: For something else than a state or a string.
    """
    if isinstance(state, str):
        name = state.upper()
        if not name.startswith("APPROVAL_STATE_"):
            name = "APPROVAL_STATE_" + name
        return cast(approvals_pb2.ApprovalState, approvals_pb2.ApprovalState.Value(name))
    if isinstance(state, bool) or not isinstance(state, int):
        raise TypeError(f"state is an ApprovalState or its name, not {type(state).__name__}")
    return state


def _reason(reason: Any) -> str:
    """A decision's reason: required, 1 to 512 characters (checked before sending)."""
    if not isinstance(reason, str):
        raise TypeError(f"reason is a string, not {type(reason).__name__}")
    if not reason.strip() or len(reason) > MAX_DECISION_REASON_LENGTH:
        raise ValueError(
            f"reason must be 1 to {MAX_DECISION_REASON_LENGTH} characters (the audit trail "
            f"records why), not {len(reason)}"
        )
    return reason


class ApprovalClient(ChannelClient):
    """A connection to a broker's ApprovalService with an approver's credentials.

    Approvers authenticate with ``authorization: Basic`` (their ``apv_...``
    id and secret) and see the approvals of their groups. An operator
    (``bearer_token``) may list, read and follow approvals but never decide
    them. Every call has a deadline and raises :class:`baton.BatonError` (or
    a subclass) on failure.

    Usable as a context manager; otherwise call :meth:`close`.
    """

    def __init__(
        self,
        target: str,
        approver_id: str | None = None,
        approver_secret: str | None = None,
        *,
        bearer_token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        channel_credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Open a channel to the broker at ``target``.

        Args:
            target: ``host:port`` or any gRPC target URI.
            approver_id: The approver's id, ``apv_...``; needs ``approver_secret``.
            approver_secret: Its secret, from ``create_approver``.
            bearer_token: The operator credential instead (read-only use).
            timeout: The deadline of each call in seconds; ``None`` for none.
            channel_credentials: Transport security; ``None`` is plaintext,
                only fit for a broker on loopback.
            options: gRPC channel options.

        Raises:
            ValueError: When credentials are missing, incomplete or of both kinds.
        """
        if (approver_id is None) != (approver_secret is None):
            raise ValueError("approver_id and approver_secret go together")
        if (approver_id is None) == (bearer_token is None):
            raise ValueError("give either approver_id/approver_secret or bearer_token")
        if approver_id is not None and approver_secret is not None:
            basic = base64.b64encode(f"{approver_id}:{approver_secret}".encode()).decode("ascii")
            self._metadata: tuple[tuple[str, str], ...] = (("authorization", f"Basic {basic}"),)
        else:
            self._metadata = bearer_metadata(cast(str, bearer_token))
        self._timeout = timeout
        if channel_credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, channel_credentials, options=options)
        self._stub = approvals_pb2_grpc.ApprovalServiceStub(self._channel)

    @property
    def stub(self) -> approvals_pb2_grpc.ApprovalServiceStub:
        """The generated stub; calls on it need ``metadata=client.call_metadata``."""
        return self._stub

    @property
    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata (``authorization``) this client sends on its calls."""
        return self._metadata

    def list_approvals(
        self,
        *,
        state: approvals_pb2.ApprovalState | str | None = None,
        app_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: float | None = None,
    ) -> approvals_pb2.ListApprovalsResponse:
        """One page of the approvals the caller may see, newest first (see :meth:`iter_approvals`).

        Args:
            state: Only approvals in this state (an ``ApprovalState`` or its
                name, ``"pending"``); all when ``None``.
            app_id: Only approvals of this app.
            page_size: At most this many; 0 for the broker's default (100).
            page_token: The previous page's ``next_page_token``; empty first.
            timeout: This call's deadline in seconds; the client's by default.
        """
        request = approvals_pb2.ListApprovalsRequest(
            state=approvals_pb2.APPROVAL_STATE_UNSPECIFIED if state is None else approval_state(state),
            app_id=app_id,
            page_size=page_size,
            page_token=page_token,
        )
        return self._call(self._stub.ListApprovals, request, timeout)

    def iter_approvals(
        self,
        *,
        state: approvals_pb2.ApprovalState | str | None = None,
        app_id: str = "",
        page_size: int = 0,
        timeout: float | None = None,
    ) -> Iterator[approvals_pb2.Approval]:
        """Every approval the caller may see, a page at a time as the iteration goes."""
        token = ""
        while True:
            page = self.list_approvals(
                state=state, app_id=app_id, page_size=page_size, page_token=token, timeout=timeout
            )
            yield from page.approvals
            if not page.next_page_token or page.next_page_token == token:
                return
            token = page.next_page_token

    def get_approval(self, approval_id: str, *, timeout: float | None = None) -> approvals_pb2.Approval:
        """Return one approval; :class:`baton.NotFoundError` when there is none."""
        request = approvals_pb2.GetApprovalRequest(approval_id=approval_id)
        response: approvals_pb2.GetApprovalResponse = self._call(self._stub.GetApproval, request, timeout)
        return response.approval

    def wait_for_approval(
        self, approval_id: str, timeout: float = DEFAULT_APPROVAL_WAIT
    ) -> approvals_pb2.Approval:
        """Wait until the approval is decided for good; see :meth:`baton.BrokerClient.wait_for_approval`."""
        return wait_for_decision(self._stub.WatchApproval, lambda: self._metadata, approval_id, timeout)

    def approve(
        self, approval_id: str, reason: str, *, timeout: float | None = None
    ) -> approvals_pb2.Approval:
        """Approve as this approver; the approval after this decision.

        It becomes APPROVED once enough distinct approvers approved.

        Raises:
            ValueError: When ``reason`` is empty or longer than 512 characters.
            TypeError: When ``reason`` is not a string (nothing is sent).
            BatonError: For example reason ``APPROVER_NOT_ELIGIBLE``, or an
                :class:`baton.ApprovalError` ``APPROVAL_NOT_PENDING``.
        """
        request = approvals_pb2.ApproveRequest(approval_id=approval_id, reason=_reason(reason))
        response: approvals_pb2.ApproveResponse = self._call(self._stub.Approve, request, timeout)
        return response.approval

    def deny(self, approval_id: str, reason: str, *, timeout: float | None = None) -> approvals_pb2.Approval:
        """Deny as this approver: the request can never be minted.

        Raises:
            ValueError: When ``reason`` is empty or longer than 512 characters.
            TypeError: When ``reason`` is not a string (nothing is sent).
            BatonError: As :meth:`approve`.
        """
        request = approvals_pb2.DenyRequest(approval_id=approval_id, reason=_reason(reason))
        response: approvals_pb2.DenyResponse = self._call(self._stub.Deny, request, timeout)
        return response.approval

    def __repr__(self) -> str:
        """Never the credentials."""
        return "ApprovalClient()"

    def _call(self, method: Callable[..., _Response], request: Any, timeout: float | None) -> _Response:
        return call(method, request, self._timeout if timeout is None else timeout, self._metadata)
