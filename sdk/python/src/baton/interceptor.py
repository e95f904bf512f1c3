"""grpcio server interceptors on top of :class:`baton.TokenVerifier`.

:class:`BatonServerInterceptor` for ``grpc.server``,
:class:`BatonAioServerInterceptor` for ``grpc.aio.server``; in a handler,
:func:`grpc_claims` gives the verified claims.

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

Given an :class:`baton.AccessReporter` (``reporter=``), both report every
decision about a token whose signature verified, as the middleware does
(:mod:`baton.middleware`): the resource is the method path, the outcome the
status code name the call ended with (``OK``, ``NOT_FOUND``, ...).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from baton._args import string_list
from baton.errors import ERROR_DOMAIN
from baton.middleware import Refusal, authorize, bearer_token, proof_of, report_decision
from baton.proof import PROOF_METADATA_KEY
from baton.verifier import TokenVerifier, VerifiedClaims

if TYPE_CHECKING:
    from baton.reporter import AccessReporter

_PROOF_REASONS = ("PROOF_REQUIRED", "PROOF_INVALID", "PROOF_REPLAYED")

# The claims of each call in progress, by its ServicerContext: grpcio gives a
# handler no other per-call place. grpc.server's contexts take weak
# references, so an entry goes with its context; grpc.aio's do not, so their
# entries are removed when the handler ends.
_claims: weakref.WeakKeyDictionary[Any, VerifiedClaims] = weakref.WeakKeyDictionary()
_aio_claims: dict[Any, VerifiedClaims] = {}
_claims_lock = threading.Lock()


def grpc_claims(context: grpc.ServicerContext | grpc.aio.ServicerContext) -> VerifiedClaims | None:
    """The claims the interceptor verified for this call (pass the handler's ``context``).

    ``None`` for a public method, or without the interceptor.
    """
    with _claims_lock:
        claims = _aio_claims.get(context)
        if claims is None:
            try:
                claims = _claims.get(context)
            except TypeError:
                pass  # a context that takes no weak reference is never in _claims
        return claims


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
_Behavior = Callable[[Any, Any], Any]


def _remember(context: Any, claims: VerifiedClaims) -> None:
    with _claims_lock:
        _claims[context] = claims


@contextlib.contextmanager
def _remembered_while(context: Any, claims: VerifiedClaims) -> Iterator[None]:
    """The claims of a grpc.aio call while its handler runs."""
    with _claims_lock:
        _aio_claims[context] = claims
    try:
        yield
    finally:
        with _claims_lock:
            _aio_claims.pop(context, None)


def _same_kind(handler: grpc.RpcMethodHandler, wrap: Callable[[_Behavior], _Behavior]) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` whose behavior is ``wrap(behavior)``."""
    options = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream), **options)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary), **options)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream), **options)
    return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), **options)


class _Rules:
    """The options both interceptors share, and the verdict on one call."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        required_scopes: MethodScopes | None = None,
        public_methods: Collection[str] = (),
        reporter: AccessReporter | None = None,
    ) -> None:
        """Configure the interceptor.

        Args:
            verifier: The verifier, for this server's audience.
            required_scopes: The scopes each method needs, by full path
                (``/pkg.Service/Method``), or a function of the full path. A
                method not listed needs a valid token and no particular scope.
            public_methods: Full paths of methods that need no token at all
                (health checks, reflection).
            reporter: Reports each decision (see :mod:`baton.interceptor`).

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
        self._reporter = reporter

    def _report(self, verdict: VerifiedClaims | Refusal, method: str, outcome: str) -> None:
        if self._reporter is not None:
            report_decision(self._reporter, verdict, method, self._scopes(method), outcome)

    def _verdict(self, method: str, metadata: Iterable[tuple[str, Any]]) -> VerifiedClaims | Refusal:
        authorization: list[str] = []
        proofs: list[str] = []
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str):
                authorization.append(value)
            elif key == PROOF_METADATA_KEY and isinstance(value, str):
                proofs.append(value)
        return authorize(self._verifier, bearer_token(authorization), proof_of(proofs), method, self._scopes(method))


class BatonServerInterceptor(_Rules, grpc.ServerInterceptor):
    """Verifies every call's token and proof before the handler runs (``grpc.server``).

    ``grpc.server(executor, interceptors=[BatonServerInterceptor(verifier)])``;
    in a handler, :func:`grpc_claims` (``baton.grpc_claims(context)``) gives
    the claims. A refused call ends with the status in the table of
    :mod:`baton.interceptor` and its handler never runs. For ``grpc.aio``
    servers, :class:`BatonAioServerInterceptor`.

    The check runs on the server's worker thread, just before the handler
    (after a unary request has been received), not on grpcio's polling
    thread: a key-set refetch for an unknown ``kid`` then stalls one call,
    not the server.
    """

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

        def guard(behavior: _Behavior) -> _Behavior:
            # wraps: keeps grpcio's per-behavior attributes (experimental_thread_pool).
            @functools.wraps(behavior)
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                verdict = self._verdict(method, context.invocation_metadata() or ())
                if isinstance(verdict, Refusal):
                    status = refusal_status(verdict)
                    self._report(verdict, method, status.code.name)
                    context.abort_with_status(status)  # raises
                _remember(context, verdict)  # type: ignore[arg-type]
                if self._reporter is None:
                    return behavior(request, context)
                return _reporting(behavior, lambda code: self._report(verdict, method, code))(request, context)

            return guarded

        return _same_kind(handler, guard)


class BatonAioServerInterceptor(_Rules, grpc.aio.ServerInterceptor):
    """:class:`BatonServerInterceptor` for ``grpc.aio`` servers.

    ``grpc.aio.server(interceptors=[BatonAioServerInterceptor(verifier)])``;
    in a handler, ``baton.grpc_claims(context)`` gives the claims. The check
    runs on the event loop when the call arrives, before any request is
    read: a signature check, plus a key-set fetch only for an unknown
    ``kid`` (rate-limited; call ``verifier.load_keys()`` at start). Handlers
    may be coroutines, async generators, or plain functions and generators
    (run in the server's ``migration_thread_pool``): each keeps its kind.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler for an authorized call, one that ends the call with the refusal otherwise."""
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method in self._public:
            return handler
        verdict = self._verdict(method, handler_call_details.invocation_metadata or ())  # type: ignore[attr-defined]
        if isinstance(verdict, Refusal):
            status = refusal_status(verdict)
            self._report(verdict, method, status.code.name)

            async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
                await context.abort(status.code, status.details, status.trailing_metadata)

            return _same_kind(handler, lambda behavior: refuse)
        claims = verdict
        if self._reporter is None:
            return _same_kind(handler, lambda behavior: _recording(behavior, claims))
        report = functools.partial(self._report, claims, method)
        return _same_kind(handler, lambda behavior: _reporting(_recording(behavior, claims), report))


def _recording(behavior: _Behavior, claims: VerifiedClaims) -> _Behavior:
    """``behavior``, of the same kind (grpc.aio tells them apart), with the call's claims while it runs."""
    if inspect.isasyncgenfunction(behavior):

        @functools.wraps(behavior)
        async def async_generator(request: Any, context: Any) -> Any:
            with _remembered_while(context, claims):
                async for response in behavior(request, context):
                    yield response

        return async_generator
    if inspect.iscoroutinefunction(behavior):

        @functools.wraps(behavior)
        async def coroutine(request: Any, context: Any) -> Any:
            with _remembered_while(context, claims):
                return await behavior(request, context)

        return coroutine
    if inspect.isgeneratorfunction(behavior):

        @functools.wraps(behavior)
        def generator(request: Any, context: Any) -> Any:
            with _remembered_while(context, claims):
                yield from behavior(request, context)

        return generator

    @functools.wraps(behavior)
    def function(request: Any, context: Any) -> Any:
        with _remembered_while(context, claims):
            return behavior(request, context)

    return function


def _outcome(context: Any, failed: bool) -> str:
    """The name of the status code a call ended with, as far as its context tells."""
    code = None
    with contextlib.suppress(Exception):
        code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))
    return "UNKNOWN" if failed else "OK"


def _reporting(behavior: _Behavior, report: Callable[[str], None]) -> _Behavior:
    """``behavior``, of the same kind, calling ``report(outcome)`` once the call has ended."""

    if inspect.isasyncgenfunction(behavior):

        @functools.wraps(behavior)
        async def async_generator(request: Any, context: Any) -> Any:
            failed = True
            try:
                async for response in behavior(request, context):
                    yield response
                failed = False
            finally:
                report(_outcome(context, failed))

        return async_generator
    if inspect.iscoroutinefunction(behavior):

        @functools.wraps(behavior)
        async def coroutine(request: Any, context: Any) -> Any:
            failed = True
            try:
                result = await behavior(request, context)
                failed = False
                return result
            finally:
                report(_outcome(context, failed))

        return coroutine

    if inspect.isgeneratorfunction(behavior):

        @functools.wraps(behavior)
        def generator(request: Any, context: Any) -> Any:
            yield from _reported_stream(behavior(request, context), context, report)

        return generator

    @functools.wraps(behavior)
    def function(request: Any, context: Any) -> Any:
        try:
            result = behavior(request, context)
        except BaseException:
            report(_outcome(context, True))
            raise
        report(_outcome(context, False))
        return result

    return function


def _reported_stream(responses: Iterator[Any], context: Any, report: Callable[[str], None]) -> Iterator[Any]:
    failed = True
    try:
        yield from responses
        failed = False
    finally:
        report(_outcome(context, failed))
