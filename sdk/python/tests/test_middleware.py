"""BatonASGIMiddleware and BatonWSGIMiddleware with a real TokenVerifier over tokens signed here.

The WSGI middleware runs in a real server (wsgiref on loopback, requests
over http.client); the ASGI one is driven through the ASGI protocol itself
(scope, receive, send), which is all an ASGI server does with it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from jws_helpers import AUDIENCE, ISSUER, SigningKey, claims, jwks

import baton
from baton import AgentKey, BatonASGIMiddleware, BatonWSGIMiddleware, RevocationSet, TokenVerifier, http_htm


class View:
    """A revocation view that is fresh unless told otherwise."""

    def __init__(self) -> None:
        self.stale = False
        self.set = RevocationSet()

    @property
    def fresh_at(self) -> float | None:
        return None if self.stale else time.time()

    def is_revoked(self, facts: Any) -> bool:
        return self.set.is_revoked(facts)


@pytest.fixture
def key() -> SigningKey:
    return SigningKey("k-1")


@pytest.fixture
def view() -> View:
    return View()


@pytest.fixture
def verifier(key: SigningKey, view: View) -> TokenVerifier:
    v = TokenVerifier(AUDIENCE, ISSUER, keys=lambda: jwks(key), revocations=view)
    v.load_keys()
    return v


def token(key: SigningKey, **overrides: Any) -> str:
    return key.sign(claims(time.time(), **overrides))


# ---------------------------------------------------------------- ASGI


class Downstream:
    """The protected ASGI app: records the scopes it was called with and answers 200."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"served"})


def asgi_call(
    app: Any,
    path: str = "/records/P-1",
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    *,
    method: str = "GET",
    scope_type: str = "http",
    raw_path: bytes | None = None,
    extensions: dict[str, Any] | None = None,
) -> tuple[int | None, dict[str, str], bytes, list[dict[str, Any]]]:
    """One request through ``app``: status, headers (lower-case names), body, and every message sent."""
    scope: dict[str, Any] = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "path": path,
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }
    if scope_type == "http":
        scope["method"] = method
    if raw_path is not None:
        scope["raw_path"] = raw_path
    if extensions is not None:
        scope["extensions"] = extensions
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status, response_headers, body = None, {}, b""
    for m in sent:
        if m["type"].endswith("response.start"):
            status = m["status"]
            response_headers = {k.decode(): v.decode() for k, v in m["headers"]}
        elif m["type"].endswith("response.body"):
            body += m.get("body", b"")
    return status, response_headers, body, sent


def test_asgi_lets_a_valid_token_through_with_its_claims(key: SigningKey, verifier: TokenVerifier) -> None:
    downstream = Downstream()
    app = BatonASGIMiddleware(downstream, verifier, required_scopes=["read:records:P-1"])
    status, _, body, _ = asgi_call(app, headers=[("Authorization", f"Bearer {token(key)}")])
    assert (status, body) == (200, b"served")
    claims = downstream.scopes[0]["baton.claims"]
    assert isinstance(claims, baton.VerifiedClaims)
    assert (claims.agent_id, claims.token_id) == ("agt_1", "tok_1")
    # The scheme is case-insensitive, as in RFC 7235.
    status, _, _, _ = asgi_call(app, headers=[("authorization", f"bearer {token(key)}")])
    assert status == 200


def test_asgi_refusals(key: SigningKey, verifier: TokenVerifier, view: View) -> None:
    downstream = Downstream()
    app = BatonASGIMiddleware(downstream, verifier, required_scopes=["read:records:P-1"])
    good = token(key)

    for headers in (
        [],
        [("Authorization", f"Basic {good}")],
        [("Authorization", f"Bearer {good}"), ("Authorization", f"Bearer {good}")],
        [("Authorization", "Bearer")],
    ):
        status, h, body, _ = asgi_call(app, headers=headers)
        assert status == 401, headers
        assert h["www-authenticate"] == "Bearer"
        assert json.loads(body) == {"error": "invalid_token", "reason": "CREDENTIALS_MISSING"}
        assert h["content-type"] == "application/json" and h["cache-control"] == "no-store"

    expired = token(key, exp=int(time.time()) - 60, nbf=int(time.time()) - 120, iat=time.time() - 120)
    status, h, body, _ = asgi_call(app, headers=[("Authorization", f"Bearer {expired}")])
    assert status == 401
    assert h["www-authenticate"] == 'Bearer error="invalid_token", error_description="EXPIRED"'
    assert json.loads(body) == {"error": "invalid_token", "reason": "EXPIRED"}
    assert expired not in body.decode() and expired not in json.dumps(h)

    tampered = good[:-8] + ("A" * 7) + good[-1]
    status, _, body, _ = asgi_call(app, headers=[("Authorization", f"Bearer {tampered}")])
    assert status == 401 and json.loads(body)["reason"] == "BAD_SIGNATURE"

    narrow = token(key, scope="read:records:P-2")
    status, h, body, _ = asgi_call(app, headers=[("Authorization", f"Bearer {narrow}")])
    assert status == 403
    assert h["www-authenticate"] == 'Bearer error="insufficient_scope", scope="read:records:P-1"'
    assert json.loads(body) == {"error": "insufficient_scope", "reason": "INSUFFICIENT_SCOPE"}

    view.set.add(baton.v1.broker_pb2.Revocation(target=baton.v1.broker_pb2.REVOCATION_TARGET_TOKEN, id="tok_1"))
    status, _, body, _ = asgi_call(app, headers=[("Authorization", f"Bearer {good}")])
    assert status == 401 and json.loads(body)["reason"] == "REVOKED"

    view.stale = True
    status, h, body, _ = asgi_call(app, headers=[("Authorization", f"Bearer {token(key, jti='tok_2')}")])
    assert status == 503
    assert h["retry-after"] == "1" and "www-authenticate" not in h
    assert json.loads(body) == {"error": "temporarily_unavailable", "reason": "STALE"}

    assert downstream.scopes == [], "no refused request reaches the app"


def test_asgi_proofs_bind_method_and_path(key: SigningKey, verifier: TokenVerifier) -> None:
    agent = AgentKey.generate()
    bound = token(key, cnf={"jkt": agent.thumbprint})
    downstream = Downstream()
    app = BatonASGIMiddleware(downstream, verifier)
    auth = ("Authorization", f"Bearer {bound}")

    def call(proof: str | None, path: str = "/records/P-1", method: str = "GET", **kw: Any) -> tuple[int | None, bytes]:
        headers = [auth] + ([("Baton-Proof", proof)] if proof is not None else [])
        status, _, body, _ = asgi_call(app, path, headers, method=method, **kw)
        return status, body

    assert call(None) == (401, b'{"error": "invalid_token", "reason": "PROOF_REQUIRED"}')
    assert call(agent.proof(http_htm("GET", "/records/P-1?x=1"), bound)) == (200, b"served")
    proof = agent.proof("GET /records/P-1", bound)
    assert call(proof)[0] == 200
    assert json.loads(call(proof)[1])["reason"] == "PROOF_REPLAYED"
    assert json.loads(call(agent.proof("GET /records/P-2", bound))[1])["reason"] == "PROOF_INVALID"
    assert json.loads(call(agent.proof("GET /records/P-1", bound), method="DELETE")[1])["reason"] == "PROOF_INVALID"
    # Two proofs on one request: invalid, whatever each is.
    two = [("Baton-Proof", agent.proof("GET /records/P-1", bound)) for _ in range(2)]
    status, _, body, _ = asgi_call(app, headers=[auth, *two])
    assert status == 401 and json.loads(body)["reason"] == "PROOF_INVALID"
    # raw_path is the path as sent, however the client encoded it; path is decoded.
    sent = "/records/%50-1"
    assert call(agent.proof(f"GET {sent}", bound), path="/records/P-1", raw_path=sent.encode())[0] == 200
    # Without raw_path, path is encoded again the usual way.
    assert call(agent.proof("GET /records/P%201", bound), path="/records/P 1")[0] == 200
    assert len(downstream.scopes) == 4


def test_asgi_required_scopes_per_request_and_custom_htm(key: SigningKey, verifier: TokenVerifier) -> None:
    downstream = Downstream()
    app = BatonASGIMiddleware(
        downstream,
        verifier,
        required_scopes=lambda scope: ["write:notes:n-1"] if scope["method"] == "POST" else ["read:records:P-1"],
        htm=lambda scope: "GET /mounted" + scope["path"],
    )
    reader = token(key, scope="read:records:P-1")
    assert asgi_call(app, headers=[("Authorization", f"Bearer {reader}")])[0] == 200
    assert asgi_call(app, headers=[("Authorization", f"Bearer {reader}")], method="POST")[0] == 403
    agent = AgentKey.generate()
    bound = token(key, cnf={"jkt": agent.thumbprint})
    proof = agent.proof("GET /mounted/records/P-1", bound)
    assert asgi_call(app, headers=[("Authorization", f"Bearer {bound}"), ("Baton-Proof", proof)])[0] == 200
    with pytest.raises(TypeError):
        BatonASGIMiddleware(downstream, verifier, required_scopes="read:records:P-1")
    bad = BatonASGIMiddleware(downstream, verifier, required_scopes=lambda scope: "read:records:P-1")
    with pytest.raises(TypeError):
        asgi_call(bad, headers=[("Authorization", f"Bearer {reader}")])


def test_asgi_websocket_and_lifespan(key: SigningKey, verifier: TokenVerifier) -> None:
    downstream = Downstream()
    app = BatonASGIMiddleware(downstream, verifier)
    # Refused handshake: closed before accept (the server answers 403) ...
    _, _, _, sent = asgi_call(app, "/ws", scope_type="websocket")
    assert sent == [{"type": "websocket.close", "code": 1008}]
    # ... or, with the denial-response extension, the same 401 as over HTTP.
    status, h, body, _ = asgi_call(app, "/ws", scope_type="websocket", extensions={"websocket.http.response": {}})
    assert status == 401 and h["www-authenticate"] == "Bearer"
    assert json.loads(body)["reason"] == "CREDENTIALS_MISSING"
    assert downstream.scopes == []
    asgi_call(app, "/ws", [("Authorization", f"Bearer {token(key)}")], scope_type="websocket")
    assert downstream.scopes[-1]["baton.claims"].token_id == "tok_1"
    # Not a request: passed through untouched.
    asgi_call(app, scope_type="lifespan")
    assert downstream.scopes[-1]["type"] == "lifespan" and "baton.claims" not in downstream.scopes[-1]


# ---------------------------------------------------------------- WSGI


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def wsgi_server(verifier: TokenVerifier) -> Iterator[tuple[str, int, list[dict[str, Any]]]]:
    """A wsgiref server on loopback running the middleware; yields host, port and the environs that got through."""
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ)
        claims = environ["baton.claims"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"hello {claims.agent_id}".encode()]

    protected = BatonWSGIMiddleware(
        app,
        verifier,
        required_scopes=lambda environ: ["read:records:P-1"] if environ["PATH_INFO"].startswith("/records") else [],
    )
    server: WSGIServer = make_server("127.0.0.1", 0, protected, handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_port, seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def http_get(
    addr: tuple[str, int, Any], path: str, headers: dict[str, str] | list[tuple[str, str]] = (), method: str = "GET"  # type: ignore[assignment]
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=10)
    try:
        conn.putrequest(method, path)
        for k, v in headers.items() if isinstance(headers, dict) else headers:
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_wsgi_in_a_real_server(
    key: SigningKey, wsgi_server: tuple[str, int, list[dict[str, Any]]], view: View
) -> None:
    seen = wsgi_server[2]
    good = token(key)
    status, _, body = http_get(wsgi_server, "/records/P-1", {"Authorization": f"Bearer {good}"})
    assert (status, body) == (200, b"hello agt_1")
    assert seen[-1]["baton.claims"].token_id == "tok_1"

    status, h, body = http_get(wsgi_server, "/records/P-1")
    assert status == 401 and h["www-authenticate"] == "Bearer"
    assert json.loads(body) == {"error": "invalid_token", "reason": "CREDENTIALS_MISSING"}

    narrow = token(key, scope="read:records:P-2")
    status, h, body = http_get(wsgi_server, "/records/P-1", {"Authorization": f"Bearer {narrow}"})
    assert status == 403 and h["www-authenticate"] == 'Bearer error="insufficient_scope", scope="read:records:P-1"'
    # Another path needs no particular scope.
    assert http_get(wsgi_server, "/other", {"Authorization": f"Bearer {narrow}"})[0] == 200

    expired = token(key, exp=int(time.time()) - 60, nbf=int(time.time()) - 120, iat=time.time() - 120)
    status, h, body = http_get(wsgi_server, "/records/P-1", {"Authorization": f"Bearer {expired}"})
    assert status == 401 and json.loads(body)["reason"] == "EXPIRED"
    assert h["www-authenticate"] == 'Bearer error="invalid_token", error_description="EXPIRED"'
    assert expired.encode() not in body

    # Two Authorization headers reach WSGI folded into one: not one Bearer token.
    status, _, body = http_get(
        wsgi_server, "/records/P-1", [("Authorization", f"Bearer {good}"), ("Authorization", f"Bearer {good}")]
    )
    assert status == 401 and json.loads(body)["reason"] == "CREDENTIALS_MISSING"

    view.stale = True
    status, h, body = http_get(wsgi_server, "/records/P-1", {"Authorization": f"Bearer {good}"})
    assert status == 503 and h["retry-after"] == "1"
    assert json.loads(body) == {"error": "temporarily_unavailable", "reason": "STALE"}
    assert len(seen) == 2, "no refused request reaches the app"


def test_wsgi_proofs(key: SigningKey, wsgi_server: tuple[str, int, list[dict[str, Any]]]) -> None:
    agent = AgentKey.generate()
    bound = token(key, cnf={"jkt": agent.thumbprint})
    auth = {"Authorization": f"Bearer {bound}"}

    def get(path: str, proof: str | None, method: str = "GET") -> tuple[int, str]:
        status, _, body = http_get(wsgi_server, path, {**auth, **({"Baton-Proof": proof} if proof else {})}, method)
        return status, (json.loads(body)["reason"] if status != 200 else "")

    assert get("/records/P-1", None) == (401, "PROOF_REQUIRED")
    assert get("/records/P-1?q=1", agent.proof("GET /records/P-1", bound)) == (200, "")
    proof = agent.proof("GET /records/P-1", bound)
    assert get("/records/P-1", proof) == (200, "")
    assert get("/records/P-1", proof) == (401, "PROOF_REPLAYED")
    assert get("/records/P-2", agent.proof("GET /records/P-1", bound)) == (401, "PROOF_INVALID")
    assert get("/records/P-1", agent.proof("GET /records/P-1", bound), method="DELETE") == (401, "PROOF_INVALID")
    # wsgiref gives no RAW_URI: the decoded PATH_INFO is encoded again as sent.
    assert get("/records/P%201:x", agent.proof("GET /records/P%201:x", bound)) == (200, "")
    other = AgentKey.generate()
    assert get("/records/P-1", other.proof("GET /records/P-1", bound)) == (401, "PROOF_INVALID")
