"""Resource-server middleware on top of :class:`baton.TokenVerifier`: ASGI and WSGI.

Both read ``Authorization: Bearer <token>`` and, for a key-bound token, a
proof of possession in the ``Baton-Proof`` header, verify them, and either
answer the request themselves (refused) or call the wrapped application
with the verified claims under ``"baton.claims"`` in the ASGI scope or the
WSGI environ. They need nothing beyond the standard library: the ASGI and
WSGI protocols are plain Python. :class:`baton.BatonServerInterceptor` is
the same for a grpcio server.

The proof's ``htm``, which binds it to one request, is ``"<METHOD> <path>"``
(:func:`baton.http_htm`): the method in upper case and the request path as
the client sent it, without query or fragment. ASGI: ``raw_path`` when the
server gives it, else ``path`` percent-encoded again; WSGI: ``RAW_URI`` or
``REQUEST_URI`` when the server gives one, else ``SCRIPT_NAME + PATH_INFO``
percent-encoded again. Behind a proxy that rewrites paths, pass ``htm=``.

Refusals (as the TypeScript SDK's ``batonHttpMiddleware``), a JSON body
``{"error", "reason"}`` and ``Cache-Control: no-store``:

=================================  ====  =========================================================
verifier reason                    HTTP  header
=================================  ====  =========================================================
no, repeated or non-Bearer token   401   ``WWW-Authenticate: Bearer``
``INSUFFICIENT_SCOPE``             403   ``WWW-Authenticate: Bearer error="insufficient_scope"``
``STALE`` (revocations too old)    503   ``Retry-After: 1``
any other                          401   ``WWW-Authenticate: Bearer error="invalid_token"``
=================================  ====  =========================================================

``STALE`` is the resource server's own trouble, not the caller's, and a
retry (perhaps on another instance) can succeed: hence 503. Nothing of the
token is ever written to a response.

Given an :class:`baton.AccessReporter` (``reporter=``), both report every
decision about a token whose signature verified: allowed, with the status
the application answered as outcome, or denied, with the reason
(``TOKEN_STATUS_<status>`` for a TokenStatus, else the verifier's: ``STALE``,
``PROOF_REQUIRED``, ...) and the refusal's status. The resource is the
``htm`` (``GET /records/P-1``); the scope, the first the request needed.
``report`` only buffers, so reporting adds no I/O to the request. A request
with no token, or one whose signature did not verify, names no trustworthy
token and agent and is not reported.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from baton._args import string_list
from baton.proof import http_htm
from baton.verifier import TokenVerifier, VerifiedClaims

if TYPE_CHECKING:
    from baton.reporter import AccessReporter

#: The HTTP header that carries a proof of possession.
PROOF_HEADER = "baton-proof"
#: Where the middleware puts the verified :class:`baton.VerifiedClaims`:
#: ``scope["baton.claims"]`` (ASGI), ``environ["baton.claims"]`` (WSGI).
CLAIMS_KEY = "baton.claims"

_BEARER = re.compile(r"Bearer +(\S+)\s*", re.IGNORECASE)
# Several proofs on one call: not a JWS, so refused as PROOF_INVALID.
_SEVERAL_PROOFS = "several proofs"
# Characters a path may carry unencoded (RFC 3986 pchar and "/"): re-encoding
# a decoded path leaves them as clients send them.
_PATH_SAFE = "/:@!$&'()*+,;=~"


def bearer_token(values: Sequence[str]) -> str | None:
    """The token of the one ``authorization: Bearer <token>``; ``None`` when absent, repeated or another scheme."""
    if len(values) != 1:
        return None
    m = _BEARER.fullmatch(values[0])
    return m.group(1) if m else None


def proof_of(values: Sequence[str]) -> str | None:
    """The one proof sent; ``None`` when none, an invalid one when several."""
    if not values:
        return None
    return values[0] if len(values) == 1 else _SEVERAL_PROOFS


@dataclass(frozen=True)
class Refusal:
    """Why a call was refused: a :class:`baton.VerifyFailureReason` value or ``CREDENTIALS_MISSING``."""

    reason: str
    detail: str
    #: Set when the signature verified (an expired or revoked token, say).
    claims: VerifiedClaims | None = None


# Verifier reasons that are TokenStatus values, reported as ``TOKEN_STATUS_<reason>``.
_TOKEN_STATUSES = frozenset(
    {
        "MALFORMED", "ALGORITHM_NOT_ALLOWED", "UNKNOWN_KEY", "BAD_SIGNATURE", "EXPIRED", "NOT_YET_VALID",
        "WRONG_ISSUER", "WRONG_AUDIENCE", "REVOKED", "INSUFFICIENT_SCOPE", "WRONG_TYPE",
    }
)


def report_decision(
    reporter: AccessReporter | None,
    verdict: VerifiedClaims | Refusal,
    resource: str,
    scopes: Sequence[str],
    outcome: str,
) -> None:
    """Report one decision when there is a reporter and a verified token to report about."""
    if reporter is None:
        return
    if isinstance(verdict, Refusal):
        if verdict.claims is None:
            return
        reason = f"TOKEN_STATUS_{verdict.reason}" if verdict.reason in _TOKEN_STATUSES else verdict.reason
        claims, allowed = verdict.claims, False
    else:
        claims, reason, allowed = verdict, "", True
    reporter.report(
        claims.token_id, claims.agent_id, allowed,
        scope=scopes[0] if scopes else "", resource=resource, reason=reason, outcome=outcome,
    )


def authorize(
    verifier: TokenVerifier,
    token: str | None,
    proof: str | None,
    htm: str,
    required_scopes: Sequence[str],
) -> VerifiedClaims | Refusal:
    """The verified claims of a call, or why it is refused (shared by the middleware and the interceptor)."""
    if token is None:
        return Refusal("CREDENTIALS_MISSING", "send authorization: Bearer <token>")
    result = verifier.verify(token, required_scopes=required_scopes, proof=proof, htm=htm)
    if result.ok and result.claims is not None:
        return result.claims
    return Refusal(str(result.reason), result.detail, result.claims)


#: The scopes every request needs, or a function of the request (the ASGI
#: scope or the WSGI environ) returning them.
RequiredScopes = Union[Sequence[str], Callable[[Any], Sequence[str]]]


def _scopes_function(required_scopes: RequiredScopes) -> Callable[[Any], list[str]]:
    if callable(required_scopes):
        fn = required_scopes
        return lambda request: string_list(fn(request), "required_scopes")
    fixed = string_list(required_scopes, "required_scopes")
    return lambda request: fixed


@dataclass(frozen=True)
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


_STATUS_TEXT = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _refusal_response(refusal: Refusal, scopes: Sequence[str]) -> _Response:
    """The HTTP answer to a refusal (see the table in the module's docstring)."""
    status, error = 401, "invalid_token"
    challenge: str | None = f'Bearer error="invalid_token", error_description="{refusal.reason}"'
    if refusal.reason == "CREDENTIALS_MISSING":
        challenge = "Bearer"
    elif refusal.reason == "INSUFFICIENT_SCOPE":
        status, error = 403, "insufficient_scope"
        challenge = f'Bearer error="insufficient_scope", scope="{_quoted(" ".join(scopes))}"'
    elif refusal.reason == "STALE":
        status, error, challenge = 503, "temporarily_unavailable", None
    body = json.dumps({"error": error, "reason": refusal.reason}).encode()
    headers = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("content-length", str(len(body))),
    ]
    if challenge is not None:
        headers.append(("www-authenticate", challenge))
    if status == 503:
        headers.append(("retry-after", "1"))
    return _Response(status, headers, body)


# ---------------------------------------------------------------- ASGI

ASGIScope = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[ASGIScope, ASGIReceive, ASGISend], Awaitable[None]]


def asgi_htm(scope: ASGIScope) -> str:
    """The ``htm`` of an ASGI request (``http`` or ``websocket``, whose handshake is a GET)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else urllib.parse.quote(scope.get("path") or "/", safe=_PATH_SAFE)
    return http_htm(scope.get("method", "GET"), path)


class BatonASGIMiddleware:
    """ASGI middleware that lets through only requests with a valid Baton token.

    Wrap the application: ``app = BatonASGIMiddleware(app, verifier,
    required_scopes=["read:records:*"])``; with Starlette or FastAPI,
    ``app.add_middleware(BatonASGIMiddleware, verifier=verifier)``. An
    accepted request reaches the application with the claims in
    ``scope["baton.claims"]`` (``request.scope["baton.claims"]``). A refused
    HTTP request is answered here (see :mod:`baton.middleware`); a refused
    WebSocket handshake with the same HTTP response when the server supports
    the ``websocket.http.response`` extension, else closed with code 1008
    (the server answers 403). Other scope types (``lifespan``) pass through.

    :meth:`baton.TokenVerifier.verify` runs on the event loop: it is CPU
    work (a signature check) except when a token names an unknown key, which
    refetches the key set at most once per ``key_refetch_interval``; call
    ``verifier.load_keys()`` at start.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: TokenVerifier,
        *,
        required_scopes: RequiredScopes = (),
        htm: Callable[[ASGIScope], str] | None = None,
        reporter: AccessReporter | None = None,
    ) -> None:
        """Wrap ``app``.

        Args:
            app: The ASGI application to protect.
            verifier: The verifier, for this server's audience.
            required_scopes: The scopes every request needs, or a function
                of the ASGI scope returning them (``[]`` for none).
            htm: The ``htm`` a proof must carry for a request; by default
                :func:`asgi_htm`.
            reporter: Reports each decision (see :mod:`baton.middleware`).

        Raises:
            TypeError: When ``required_scopes`` is a single string.
        """
        self.app = app
        self._verifier = verifier
        self._scopes = _scopes_function(required_scopes)
        self._htm = htm or asgi_htm
        self._reporter = reporter

    async def __call__(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        """Verify an ``http`` or ``websocket`` request, then pass it on or refuse it."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization: list[str] = []
        proofs: list[str] = []
        for name, value in scope.get("headers", ()):
            name = name.lower()
            if name == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif name == PROOF_HEADER.encode():
                proofs.append(value.decode("latin-1"))
        scopes = self._scopes(scope)
        htm = self._htm(scope)
        verdict = authorize(self._verifier, bearer_token(authorization), proof_of(proofs), htm, scopes)
        if not isinstance(verdict, Refusal):
            scope[CLAIMS_KEY] = verdict
            if self._reporter is None:
                await self.app(scope, receive, send)
                return
            status: list[int] = []

            async def send_noting_status(message: MutableMapping[str, Any]) -> None:
                if message.get("type") in ("http.response.start", "websocket.http.response.start"):
                    status.append(message.get("status", 0))
                elif message.get("type") == "websocket.accept":
                    status.append(101)
                await send(message)

            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                report_decision(self._reporter, verdict, htm, scopes, str(status[0]) if status else "")
            return
        response = _refusal_response(verdict, scopes)
        report_decision(self._reporter, verdict, htm, scopes, str(response.status))
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": response.status, "headers": headers})
            await send({"type": "http.response.body", "body": response.body})
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": response.status, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": response.body})
        else:
            await send({"type": "websocket.close", "code": 1008})


# ---------------------------------------------------------------- WSGI

WSGIEnviron = MutableMapping[str, Any]
WSGIStartResponse = Callable[..., Any]
WSGIApp = Callable[[WSGIEnviron, WSGIStartResponse], Iterable[bytes]]


def wsgi_htm(environ: WSGIEnviron) -> str:
    """The ``htm`` of a WSGI request."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        # PEP 3333: the decoded path, its bytes as latin-1 characters.
        path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
        raw = urllib.parse.quote(path, safe=_PATH_SAFE)
    return http_htm(environ.get("REQUEST_METHOD", "GET"), raw)


class BatonWSGIMiddleware:
    """WSGI middleware that lets through only requests with a valid Baton token.

    Wrap the application: ``app.wsgi_app = BatonWSGIMiddleware(app.wsgi_app,
    verifier)`` (Flask) or ``application = BatonWSGIMiddleware(application,
    verifier)`` (Django's wsgi.py). An accepted request reaches the
    application with the claims in ``environ["baton.claims"]``; a refused
    one is answered here (see :mod:`baton.middleware`).
    """

    def __init__(
        self,
        app: WSGIApp,
        verifier: TokenVerifier,
        *,
        required_scopes: RequiredScopes = (),
        htm: Callable[[WSGIEnviron], str] | None = None,
        reporter: AccessReporter | None = None,
    ) -> None:
        """Wrap ``app``.

        Args:
            app: The WSGI application to protect.
            verifier: The verifier, for this server's audience.
            required_scopes: The scopes every request needs, or a function
                of the environ returning them (``[]`` for none).
            htm: The ``htm`` a proof must carry for a request; by default
                :func:`wsgi_htm`.
            reporter: Reports each decision (see :mod:`baton.middleware`).

        Raises:
            TypeError: When ``required_scopes`` is a single string.
        """
        self.app = app
        self._verifier = verifier
        self._scopes = _scopes_function(required_scopes)
        self._htm = htm or wsgi_htm
        self._reporter = reporter

    def __call__(self, environ: WSGIEnviron, start_response: WSGIStartResponse) -> Iterable[bytes]:
        """Verify the request, then pass it on or refuse it."""
        authorization = environ.get("HTTP_AUTHORIZATION")
        proof = environ.get("HTTP_BATON_PROOF")
        scopes = self._scopes(environ)
        htm = self._htm(environ)
        verdict = authorize(
            self._verifier,
            # A server folds repeated headers into one, with commas: no longer one Bearer token.
            bearer_token([] if authorization is None else [authorization]),
            proof_of([] if proof is None else [proof]),
            htm,
            scopes,
        )
        if not isinstance(verdict, Refusal):
            environ[CLAIMS_KEY] = verdict
            if self._reporter is None:
                return self.app(environ, start_response)
            status: list[str] = []

            def start_response_noting_status(status_line: str, *args: Any) -> Any:
                status.append(status_line.split(" ", 1)[0])
                return start_response(status_line, *args)

            body = self.app(environ, start_response_noting_status)
            return _reported_when_done(
                body, lambda: report_decision(self._reporter, verdict, htm, scopes, status[-1] if status else "")
            )
        response = _refusal_response(verdict, scopes)
        report_decision(self._reporter, verdict, htm, scopes, str(response.status))
        start_response(f"{response.status} {_STATUS_TEXT[response.status]}", response.headers)
        return [response.body]


def _reported_when_done(body: Iterable[bytes], report: Callable[[], None]) -> Iterator[bytes]:
    """``body``, reporting once the server has sent it (a WSGI app may start its response while iterated)."""
    try:
        yield from body
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
        report()
