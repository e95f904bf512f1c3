"""What the middleware adds per request, printed as medians (issue 9).

    .tools/venv/bin/python sdk/python/bench/middleware.py

* TokenVerifier.verify of an ES256 token alone, what every line below pays;
* ASGI and WSGI: one request through the middleware with an ES256 token,
  against the bare application, in microseconds (in process, no server).
* grpcio: a unary call over loopback through a server with the interceptor
  against one without, in microseconds per call (one client thread).
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _timing import per_call_us  # noqa: E402  (beside this script)
from jws_helpers import AUDIENCE, ISSUER, SigningKey, claims, jwks  # noqa: E402

import baton  # noqa: E402


class View:
    fresh_at = property(lambda self: time.time())

    def is_revoked(self, facts: Any) -> bool:
        return False


def main() -> None:
    key = SigningKey("k-1")
    verifier = baton.TokenVerifier(AUDIENCE, ISSUER, keys=lambda: jwks(key), revocations=View())
    verifier.load_keys()
    token = key.sign(claims(time.time()))
    scopes = ["read:records:P-1"]
    verify_alone = per_call_us(lambda: verifier.verify(token, required_scopes=scopes), 2000)

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def noop_send(message: Any) -> None:
        pass

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    scope = {"type": "http", "method": "GET", "path": "/records/P-1", "raw_path": b"/records/P-1",
             "headers": [(b"authorization", f"Bearer {token}".encode())]}
    loop = asyncio.new_event_loop()
    asgi_mw = baton.BatonASGIMiddleware(asgi_app, verifier, required_scopes=scopes)
    bare_asgi = per_call_us(lambda: loop.run_until_complete(asgi_app(dict(scope), receive, noop_send)), 2000)
    with_asgi = per_call_us(lambda: loop.run_until_complete(asgi_mw(dict(scope), receive, noop_send)), 2000)
    loop.close()

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/records/P-1", "SCRIPT_NAME": "",
               "HTTP_AUTHORIZATION": f"Bearer {token}"}
    wsgi_mw = baton.BatonWSGIMiddleware(wsgi_app, verifier, required_scopes=scopes)
    bare_wsgi = per_call_us(lambda: wsgi_app(dict(environ), lambda *a: None), 2000)
    with_wsgi = per_call_us(lambda: wsgi_mw(dict(environ), lambda *a: None), 2000)

    def serve(interceptors: list[grpc.ServerInterceptor]) -> tuple[grpc.Server, grpc.Channel]:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
        handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"ok")
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.S", {"M": handler})])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        return server, grpc.insecure_channel(f"127.0.0.1:{port}")

    grpc_us = {}
    for name, interceptors in (("bare", []), ("interceptor", [baton.BatonServerInterceptor(verifier)])):
        server, channel = serve(interceptors)
        call = channel.unary_unary("/bench.S/M")
        md = [("authorization", f"Bearer {token}")]
        call(b"", metadata=md, timeout=10)  # connect
        grpc_us[name] = per_call_us(lambda: call(b"", metadata=md, timeout=10), 300)
        channel.close()
        server.stop(None)

    print(f"TokenVerifier.verify alone {verify_alone:8.1f} us (ES256), for comparison")
    print(f"ASGI request   bare {bare_asgi:8.1f} us   with middleware {with_asgi:8.1f} us   (+{with_asgi - bare_asgi:.1f})")
    print(f"WSGI request   bare {bare_wsgi:8.1f} us   with middleware {with_wsgi:8.1f} us   (+{with_wsgi - bare_wsgi:.1f})")
    print(f"gRPC unary     bare {grpc_us['bare']:8.1f} us   with interceptor {grpc_us['interceptor']:7.1f} us   "
          f"(+{grpc_us['interceptor'] - grpc_us['bare']:.1f})")


if __name__ == "__main__":
    main()
