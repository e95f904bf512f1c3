"""Baton: a credential broker for AI agents. Python client.

``baton.v1`` holds the messages and gRPC stubs generated from the contract;
this package adds :class:`BrokerClient` (credentials, deadlines),
:class:`AdminClient` (the operator's AdminService), typed
errors (:class:`BatonError` and its subclasses) and :class:`AgentKey` (an
agent's key pair, which binds tokens and signs proofs of possession).

For resource servers: :class:`RevocationSubscriber` keeps a live copy of the
broker's revocations (``StreamRevocations``) and :class:`TokenVerifier`
verifies tokens offline against it and the broker's key set;
:class:`BatonASGIMiddleware`, :class:`BatonWSGIMiddleware` and
:class:`BatonServerInterceptor` (grpcio) put it in front of an application.

Installed as the distribution ``baton-broker-sdk``; imported as ``baton``.
"""

#: The version of this SDK (the distribution's, read by the build from here).
__version__ = "0.1.0"

from baton.admin import AdminClient, approval_rule
from baton.approvals import MAX_DECISION_REASON_LENGTH, ApprovalClient, approval_state
from baton.client import (
    DEFAULT_APPROVAL_WAIT,
    DEFAULT_TIMEOUT,
    GET_APPROVAL_METHOD,
    WATCH_APPROVAL_METHOD,
    BrokerClient,
    RevokeTarget,
)
from baton.errors import (
    ERROR_DOMAIN,
    MAX_TOKEN_LENGTH,
    ApprovalError,
    ApprovalRequiredError,
    BatonError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TokenTooLongError,
    UnauthenticatedError,
    UnavailableError,
    from_rpc_error,
    reason_of,
)
from baton.interceptor import BatonAioServerInterceptor, BatonServerInterceptor, grpc_claims
from baton.reporter import MAX_ACCESS_REPORT_BATCH, AccessReporter, AccessReporterStats
from baton.middleware import (
    CLAIMS_KEY,
    PROOF_HEADER,
    BatonASGIMiddleware,
    BatonWSGIMiddleware,
    asgi_htm,
    wsgi_htm,
)
from baton.proof import (
    DELEGATE_METHOD,
    PROOF_METADATA_KEY,
    PROOF_TYPE,
    RENEW_METHOD,
    REVOKE_METHOD,
    AgentKey,
    AgentKeyAlgorithm,
    http_htm,
    jwk_thumbprint,
    token_hash,
)
from baton.subscriber import (
    LineageFacts,
    RevocationFacts,
    RevocationSet,
    RevocationSubscriber,
    SubscriberState,
)
from baton.verifier import (
    TOKEN_TYPE,
    ApprovalFacts,
    RevocationView,
    Scope,
    TokenVerifier,
    VerifiedClaims,
    VerifyFailureReason,
    VerifyResult,
    http_key_source,
    parse_scope,
    scope_covers,
    uncovered_scopes,
)

__all__ = [
    "__version__",
    "CLAIMS_KEY",
    "DEFAULT_TIMEOUT",
    "DELEGATE_METHOD",
    "ERROR_DOMAIN",
    "MAX_ACCESS_REPORT_BATCH",
    "MAX_TOKEN_LENGTH",
    "PROOF_HEADER",
    "PROOF_METADATA_KEY",
    "PROOF_TYPE",
    "RENEW_METHOD",
    "REVOKE_METHOD",
    "TOKEN_TYPE",
    "AccessReporter",
    "AccessReporterStats",
    "AdminClient",
    "ApprovalClient",
    "ApprovalError",
    "ApprovalFacts",
    "ApprovalRequiredError",
    "DEFAULT_APPROVAL_WAIT",
    "GET_APPROVAL_METHOD",
    "MAX_DECISION_REASON_LENGTH",
    "WATCH_APPROVAL_METHOD",
    "approval_rule",
    "approval_state",
    "AgentKey",
    "AgentKeyAlgorithm",
    "BatonASGIMiddleware",
    "BatonAioServerInterceptor",
    "BatonError",
    "BatonServerInterceptor",
    "BatonWSGIMiddleware",
    "BrokerClient",
    "InvalidArgumentError",
    "LineageFacts",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RevocationFacts",
    "RevocationSet",
    "RevocationSubscriber",
    "RevocationView",
    "RevokeTarget",
    "Scope",
    "SubscriberState",
    "TokenTooLongError",
    "TokenVerifier",
    "UnauthenticatedError",
    "UnavailableError",
    "VerifiedClaims",
    "VerifyFailureReason",
    "VerifyResult",
    "asgi_htm",
    "from_rpc_error",
    "grpc_claims",
    "http_htm",
    "http_key_source",
    "jwk_thumbprint",
    "parse_scope",
    "reason_of",
    "scope_covers",
    "token_hash",
    "uncovered_scopes",
    "wsgi_htm",
]
