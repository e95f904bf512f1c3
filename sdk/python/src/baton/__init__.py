"""Baton: a credential broker for AI agents. Python client.

``baton.v1`` holds the messages and gRPC stubs generated from the contract;
this package adds :class:`BrokerClient` (credentials, deadlines), typed
errors (:class:`BatonError` and its subclasses) and :class:`AgentKey` (an
agent's key pair, which binds tokens and signs proofs of possession).
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
from baton.proof import (
    DELEGATE_METHOD,
    PROOF_METADATA_KEY,
    PROOF_TYPE,
    REVOKE_METHOD,
    AgentKey,
    AgentKeyAlgorithm,
    jwk_thumbprint,
    token_hash,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "DELEGATE_METHOD",
    "ERROR_DOMAIN",
    "PROOF_METADATA_KEY",
    "PROOF_TYPE",
    "REVOKE_METHOD",
    "AgentKey",
    "AgentKeyAlgorithm",
    "BatonError",
    "BrokerClient",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
    "jwk_thumbprint",
    "reason_of",
    "token_hash",
]
