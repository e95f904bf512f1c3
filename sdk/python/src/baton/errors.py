"""Typed errors for Baton calls.

Every error the broker returns carries a ``google.rpc.Status`` in the
``grpc-status-details-bin`` trailer, holding one ``google.rpc.ErrorInfo``
with domain ``baton.dev`` and a reason (a ``baton.v1.ErrorReason`` value name
without the ``ERROR_REASON_`` prefix). :func:`from_rpc_error` turns a failed
call into a :class:`BatonError` (or a subclass chosen by status code) that
exposes them.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from baton.v1 import errors_pb2

#: The ``google.rpc.ErrorInfo`` domain of Baton's errors.
ERROR_DOMAIN = "baton.dev"

_REASON_PREFIX = "ERROR_REASON_"

#: The longest bearer token (in characters) the SDK sends or verifies: the
#: broker's limit, 16 KiB.
MAX_TOKEN_LENGTH = 16 * 1024


class BatonError(Exception):
    """An error returned by the broker, or by gRPC on the way to it.

    Attributes:
        code: The gRPC status code.
        message: The gRPC status message (short, for people).
        reason: The ErrorInfo reason, for example ``"SCOPE_NOT_COVERED"``;
            empty when the error carries no Baton ErrorInfo (a deadline
            exceeded, a broker that cannot be reached).
        metadata: The ErrorInfo metadata naming the offending input, for
            example ``{"excess_scopes": "...", "rule": "ceiling"}``.
        retry_after: Seconds to wait before retrying, from the status's
            ``google.rpc.RetryInfo`` (``RATE_LIMITED``,
            ``AUTHENTICATION_THROTTLED``); ``None`` when it carries none.
    """

    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict[str, str]
    retry_after: float | None

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Build an error from its parts (see :func:`from_rpc_error`)."""
        self.code = code
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.retry_after = retry_after
        text = f"{code.name}"
        if reason:
            text += f" {reason}"
        if message:
            text += f": {message}"
        super().__init__(text)

    @property
    def error_reason(self) -> errors_pb2.ErrorReason:
        """The reason as a ``baton.v1.ErrorReason`` value.

        ``ERROR_REASON_UNSPECIFIED`` when the reason is empty or unknown to
        this SDK version.
        """
        try:
            value = errors_pb2.ErrorReason.Value(_REASON_PREFIX + self.reason)
        except ValueError:
            return errors_pb2.ERROR_REASON_UNSPECIFIED
        # At run time enum values are plain ints; the stubs type them.
        return cast(errors_pb2.ErrorReason, value)

    def __repr__(self) -> str:
        """Show the code, reason, message and metadata."""
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, "
            f"message={self.message!r}, metadata={self.metadata!r}, "
            f"retry_after={self.retry_after!r})"
        )


class InvalidArgumentError(BatonError):
    """The request was refused as malformed (``INVALID_ARGUMENT``)."""


class UnauthenticatedError(BatonError):
    """The credentials are missing or wrong (``UNAUTHENTICATED``)."""


class PermissionDeniedError(BatonError):
    """The caller may not do this (``PERMISSION_DENIED``)."""


class NotFoundError(BatonError):
    """The named app, key or token does not exist (``NOT_FOUND``)."""


class UnavailableError(BatonError):
    """The broker cannot serve now; retrying may help (``UNAVAILABLE``)."""


class ResourceExhaustedError(BatonError):
    """Over a rate limit (``RESOURCE_EXHAUSTED``): reason ``RATE_LIMITED``
    or ``AUTHENTICATION_THROTTLED``; wait :attr:`retry_after` seconds."""


class TokenTooLongError(ValueError):
    """A bearer token longer than :data:`baton.MAX_TOKEN_LENGTH`, refused before sending.

    The broker answers oversized metadata by closing the whole connection
    (HTTP/2 GOAWAY), which would fail every other call on it; such a token
    can never be valid, so the SDK never sends it. The message gives the
    length, never the token.
    """

    def __init__(self, length: int, limit: int) -> None:
        """Name the length and the limit."""
        super().__init__(
            f"the bearer token is {length} characters; the broker accepts at most {limit} "
            "(baton.MAX_TOKEN_LENGTH), so it was not sent"
        )
        self.length = length
        self.limit = limit


_BY_CODE: dict[grpc.StatusCode, type[BatonError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
}


def reason_of(reason: errors_pb2.ErrorReason) -> str:
    """Return the ErrorInfo reason string of an ``ErrorReason`` value.

    For example ``reason_of(errors_pb2.ERROR_REASON_SCOPE_NOT_COVERED)`` is
    ``"SCOPE_NOT_COVERED"``, to compare with :attr:`BatonError.reason`.
    """
    name: str = errors_pb2.ErrorReason.Name(reason)
    return name.removeprefix(_REASON_PREFIX)


def from_rpc_error(error: grpc.RpcError) -> BatonError:
    """Convert a failed gRPC call into a :class:`BatonError`.

    The subclass is chosen by status code (:class:`PermissionDeniedError`
    for ``PERMISSION_DENIED``...); other codes give a plain
    :class:`BatonError`. Reason and metadata come from the first
    ``ErrorInfo`` of domain ``baton.dev`` in the status details,
    :attr:`BatonError.retry_after` from the first ``RetryInfo``. Takes
    the errors of ``grpc.aio`` calls (``AioRpcError``) too.
    """
    # grpc.aio's errors carry the same code, details and trailers, without being a grpc.Call.
    call = error if isinstance(error, (grpc.Call, grpc.aio.AioRpcError)) else None
    code = call.code() if call is not None else grpc.StatusCode.UNKNOWN
    message = (call.details() or "") if call is not None else str(error)
    reason = ""
    metadata: dict[str, str] = {}
    retry_after: float | None = None
    try:
        status = rpc_status.from_call(call) if call is not None else None
    except ValueError:
        # The details disagree with the call's own code or message: not a
        # status Baton sent. Keep the code and message.
        status = None
    found_info = False
    for detail in status.details if status is not None else ():
        if retry_after is None and detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            # A negative delay is nonsense from the wire: no wait.
            delay = retry.retry_delay
            retry_after = max(0.0, delay.seconds + delay.nanos / 1e9)
        elif not found_info and detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                reason = info.reason
                metadata = dict(info.metadata)
                found_info = True
    if reason == "APPROVAL_REQUIRED":
        return ApprovalRequiredError(code, message, reason, metadata, retry_after)
    if reason in _APPROVAL_REASONS:
        cls = _ApprovalPermissionDeniedError if code == grpc.StatusCode.PERMISSION_DENIED else ApprovalError
        return cls(code, message, reason, metadata, retry_after)
    return _BY_CODE.get(code, BatonError)(code, message, reason, metadata, retry_after)


# ---- Approvals (issue 8) ----


class ApprovalError(BatonError):
    """A refusal about one approval.

    Reason ``APPROVAL_PENDING``, ``APPROVAL_DENIED``, ``APPROVAL_EXPIRED``,
    ``APPROVAL_USED``, ``APPROVAL_MISMATCH`` or ``APPROVAL_NOT_PENDING``
    (see :attr:`reason`); ``APPROVAL_REQUIRED`` is the subclass
    :class:`ApprovalRequiredError`. One with status ``PERMISSION_DENIED``
    (``APPROVAL_DENIED``, ``APPROVAL_MISMATCH``) is also a
    :class:`PermissionDeniedError`. :meth:`baton.BrokerClient.wait_for_approval`
    raises one with reason ``APPROVAL_PENDING`` and code
    ``DEADLINE_EXCEEDED`` when its wait times out.

    Attributes:
        approval_id: The approval concerned (metadata ``approval_id``);
            empty when the broker named none.
    """

    @property
    def approval_id(self) -> str:
        """The approval concerned, ``apr_...``; empty when not named."""
        return self.metadata.get("approval_id", "")


class _ApprovalPermissionDeniedError(ApprovalError, PermissionDeniedError):
    """An :class:`ApprovalError` with status ``PERMISSION_DENIED``."""


class ApprovalRequiredError(ApprovalError):
    """``APPROVAL_REQUIRED``: a requested scope needs human approval under the app's policy.

    Nothing was minted; a pending approval was created. Wait for it
    (:meth:`baton.BrokerClient.wait_for_approval`), then send the same request
    again with ``approval_id`` (:meth:`baton.BrokerClient.issue_with_approval`
    does both).
    """

    @property
    def approvals_required(self) -> int:
        """How many distinct approvers must approve; 0 when absent or unreadable."""
        text = self.metadata.get("approvals_required", "")
        return int(text) if text.isdigit() else 0

    @property
    def approver_group(self) -> str:
        """The group whose members may decide."""
        return self.metadata.get("approver_group", "")

    @property
    def expire_time(self) -> datetime.datetime | None:
        """When the approval expires if not decided and used; ``None`` when absent or unreadable."""
        text = self.metadata.get("expire_time", "")
        try:
            # RFC 3339; fromisoformat before Python 3.11 does not take "Z".
            when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo is not None else None


_APPROVAL_REASONS = frozenset(
    {
        "APPROVAL_PENDING",
        "APPROVAL_DENIED",
        "APPROVAL_EXPIRED",
        "APPROVAL_USED",
        "APPROVAL_MISMATCH",
        "APPROVAL_NOT_PENDING",
    }
)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """The ``authorization: Bearer`` metadata for ``token``.

    Raises:
        TokenTooLongError: When the token is longer than :data:`MAX_TOKEN_LENGTH`.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenTooLongError(len(token), MAX_TOKEN_LENGTH)
    return (("authorization", f"Bearer {token}"),)
