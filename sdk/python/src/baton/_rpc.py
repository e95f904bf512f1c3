"""The one way the SDK's clients make a unary gRPC call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from baton.errors import from_rpc_error

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
