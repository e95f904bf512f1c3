"""A grpcio server interceptor on top of :class:`baton.TokenVerifier`.

Every call must carry ``authorization: Bearer <token>`` and, for a
key-bound token, a proof of possession in ``baton-proof`` metadata whose
``htm`` is the full method (``/pkg.Service/Method``). Refusals carry a
``google.rpc.ErrorInfo`` (domain ``baton.dev``) like the broker's own, as
the TypeScript and Go SDKs' interceptors send them:

==========================  ===================  ===============================================
refusal                     status               ErrorInfo reason
==========================  ===================  ===============================================
no Bearer token             UNAUTHENTICATED      ``CREDENTIALS_MISSING``
scope not covered           PERMISSION_DENIED    ``TOKEN_INVALID``, ``token_status`` metadata
revocation view stale       UNAVAILABLE          ``UNAVAILABLE``
proof missing/bad/replayed  UNAUTHENTICATED      ``PROOF_REQUIRED`` / ``PROOF_INVALID`` /
                                                 ``PROOF_REPLAYED``
anything else               UNAUTHENTICATED      ``TOKEN_INVALID``, ``token_status`` metadata
==========================  ===================  ===============================================

A client reads them with :func:`baton.from_rpc_error` (``error.reason``,
``error.metadata["token_status"]``).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Union

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from baton._args import string_list
from baton.errors import ERROR_DOMAIN
from baton.middleware import Refusal, authorize, bearer_token, proof_of
from baton.proof import PROOF_METADATA_KEY
from baton.verifier import TokenVerifier, VerifiedClaims

_PROOF_REASONS = ("PROOF_REQUIRED", "PROOF_INVALID", "PROOF_REPLAYED")

# The claims of each call in progress, by its ServicerContext: grpcio gives a
# handler no other per-call place, and an entry goes with its context.
_claims: weakref.WeakKeyDictionary[grpc.ServicerContext, VerifiedClaims] = weakref.WeakKeyDictionary()
_claims_lock = threading.Lock()


def grpc_claims(context: grpc.ServicerContext) -> VerifiedClaims | None:
    """The claims :class:`BatonServerInterceptor` verified for this call (pass the handler's ``context``).

    ``None`` for a public method, or without the interceptor.
    """
    with _claims_lock:
        return _claims.get(context)


def refusal_status(refusal: Refusal) -> grpc.Status:
    """The status a refused call ends with: code, message and a Baton ErrorInfo."""
    reason, metadata = "TOKEN_INVALID", {"token_status": refusal.reason}
    code, message = grpc.StatusCode.UNAUTHENTICATED, f"token refused: {refusal.reason}"
    if refusal.reason == "CREDENTIALS_MISSING":
        reason, metadata = refusal.reason, {}
        message = "credentials missing: send authorization: Bearer <token>"
    elif refusal.reason == "STALE":
        code, reason, metadata = grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", {}
        message = "the service cannot check revocations right now; retry"
    elif refusal.reason in _PROOF_REASONS:
        reason, metadata = refusal.reason, {}
    elif refusal.reason == "INSUFFICIENT_SCOPE":
        code = grpc.StatusCode.PERMISSION_DENIED
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


#: The scopes of each method, by full path, or a function of the full path.
MethodScopes = Union[Mapping[str, Sequence[str]], Callable[[str], Sequence[str]]]


class BatonServerInterceptor(grpc.ServerInterceptor):
    """Verifies every call's token and proof before the handler runs.

    ``grpc.server(executor, interceptors=[BatonServerInterceptor(verifier)])``;
    in a handler, :func:`grpc_claims` (``baton.grpc_claims(context)``) gives
    the claims. A refused call ends with the status in the table of
    :mod:`baton.interceptor` and its handler never runs.

    The check runs on the server's worker thread, just before the handler
    (after a unary request has been received), not on grpcio's polling
    thread: a key-set refetch for an unknown ``kid`` then stalls one call,
    not the server.
    """

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        required_scopes: MethodScopes | None = None,
        public_methods: Collection[str] = (),
    ) -> None:
        """Configure the interceptor.

        Args:
            verifier: The verifier, for this server's audience.
            required_scopes: The scopes each method needs, by full path
                (``/pkg.Service/Method``), or a function of the full path. A
                method not listed needs a valid token and no particular scope.
            public_methods: Full paths of methods that need no token at all
                (health checks, reflection).

        Raises:
            TypeError: When a method's scopes or ``public_methods`` is a
                single string.
        """
        self._verifier = verifier
        if required_scopes is None:
            self._scopes: Callable[[str], list[str]] = lambda method: []
        elif callable(required_scopes):
            fn = required_scopes
            self._scopes = lambda method: string_list(fn(method), "required_scopes")
        else:
            table = {m: string_list(s, f"required_scopes[{m!r}]") for m, s in required_scopes.items()}
            self._scopes = lambda method: table.get(method, [])
        self._public = frozenset(string_list(public_methods, "public_methods"))

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Wrap the method's handler so that it runs only for an authorized call."""
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method in self._public:
            return handler

        def guard(behavior: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
            # wraps: keeps grpcio's per-behavior attributes (experimental_thread_pool).
            @functools.wraps(behavior)
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                self._authorize(method, context)
                return behavior(request, context)

            return guarded

        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(guard(handler.stream_stream), **options)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(guard(handler.stream_unary), **options)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(guard(handler.unary_stream), **options)
        return grpc.unary_unary_rpc_method_handler(guard(handler.unary_unary), **options)

    def _authorize(self, method: str, context: grpc.ServicerContext) -> None:
        """Record the call's claims, or end the call with the refusal (``abort`` raises)."""
        authorization: list[str] = []
        proofs: list[str] = []
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                authorization.append(value)
            elif key == PROOF_METADATA_KEY and isinstance(value, str):
                proofs.append(value)
        verdict = authorize(
            self._verifier, bearer_token(authorization), proof_of(proofs), method, self._scopes(method)
        )
        if isinstance(verdict, Refusal):
            context.abort_with_status(refusal_status(verdict))
        with _claims_lock:
            _claims[context] = verdict  # type: ignore[assignment]
