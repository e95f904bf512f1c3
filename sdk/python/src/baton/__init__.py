"""Baton: a credential broker for AI agents. Python client.

``baton.v1`` holds the messages and gRPC stubs generated from the contract;
this package adds :class:`BrokerClient` (credentials, deadlines) and typed
errors (:class:`BatonError` and its subclasses).
"""

from baton.client import DEFAULT_TIMEOUT, BrokerClient
from baton.errors import (
    ERROR_DOMAIN,
    BatonError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
    reason_of,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "ERROR_DOMAIN",
    "BatonError",
    "BrokerClient",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
    "reason_of",
]
