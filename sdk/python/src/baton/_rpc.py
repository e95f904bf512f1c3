"""The one way the SDK's clients make a unary gRPC call."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import grpc

from baton.errors import ApprovalError, from_rpc_error
from baton.v1 import approvals_pb2

_Response = TypeVar("_Response")


def call(
    method: Callable[..., _Response],
    request: Any,
    timeout: float | None,
    metadata: tuple[tuple[str, str], ...],
) -> _Response:
    """Call ``method`` with ``timeout`` and ``metadata``.

    Raises:
        BatonError: The failed call as :func:`baton.errors.from_rpc_error`
            turns it, chained to the ``grpc.RpcError``.
    """
    try:
        return method(request, timeout=timeout, metadata=metadata)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from error


_Client = TypeVar("_Client", bound="ChannelClient")


class ChannelClient:
    """What every client with a channel of its own shares: :meth:`close` and
    use as a context manager. Subclasses set ``self._channel``."""

    _channel: grpc.Channel

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def __enter__(self: _Client) -> _Client:
        """Return the client itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the client."""
        self.close()


# ---- Approvals (issue 8): following an approval until it is decided ----

#: The first and the longest pause, in seconds, before following an
#: approval again after its stream broke.
_RESUBSCRIBE_BASE = 0.2
_RESUBSCRIBE_MAX = 5.0

#: Stream failures worth following again: the broker restarting, a proxy
#: dropping the stream, a passing limit.
_RESUBSCRIBE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


def wait_for_decision(
    watch: Callable[..., Any],
    metadata: Callable[[], tuple[tuple[str, str], ...]],
    approval_id: str,
    timeout: float,
) -> Any:
    """Follow an approval through ``WatchApproval`` until it is decided for good.

    ``watch`` is the stub's ``WatchApproval``; ``metadata`` is asked for each
    stream (an agent needs a fresh proof each time). A stream that breaks or
    ends before a decision is followed again after a pause.

    Returns:
        The approval (``approvals_pb2.Approval``), APPROVED, DENIED,
        EXPIRED or USED.

    Raises:
        ApprovalError: Reason ``APPROVAL_PENDING``, code
            ``DEADLINE_EXCEEDED``, when still undecided after ``timeout``
            seconds.
        BatonError: For a refusal (unknown approval, not the caller's, bad
            credentials).
    """
    if not isinstance(approval_id, str) or not approval_id:
        raise ValueError("approval_id is required")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError("timeout is a positive number of seconds")
    terminal = {
        approvals_pb2.APPROVAL_STATE_APPROVED,
        approvals_pb2.APPROVAL_STATE_DENIED,
        approvals_pb2.APPROVAL_STATE_EXPIRED,
        approvals_pb2.APPROVAL_STATE_USED,
    }
    deadline = time.monotonic() + timeout
    pause = _RESUBSCRIBE_BASE
    request = approvals_pb2.WatchApprovalRequest(approval_id=approval_id)
    while True:
        failure = None
        stream = watch(request, timeout=max(0.001, deadline - time.monotonic()), metadata=metadata())
        try:
            for response in stream:
                if response.approval.state in terminal:
                    stream.cancel()
                    return response.approval
        except grpc.RpcError as error:
            failure = from_rpc_error(error)
        if (
            failure is not None and failure.code == grpc.StatusCode.DEADLINE_EXCEEDED
        ) or time.monotonic() >= deadline:
            raise ApprovalError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"approval {approval_id} was not decided within {timeout:g} s",
                "APPROVAL_PENDING",
                {"approval_id": approval_id},
            )
        if failure is not None and failure.code not in _RESUBSCRIBE_CODES:
            raise failure
        wait = max(pause, (failure.retry_after or 0.0) if failure is not None else 0.0)
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, _RESUBSCRIBE_MAX)
