"""AccessReporter and the middleware's and interceptor's reporting against a
live broker (test/sdk/run-live.ts supplies BATON_RS_ID and BATON_RS_SECRET
besides the environment of test_live_broker.py); without it these tests fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from test_live_broker import LiveConfig, live_config
from test_live_verifier import issue, resource_server

import baton


class RecordingReporter(baton.AccessReporter):
    """An AccessReporter that also keeps what it was told (allowed, outcome, reason, resource)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.told: list[tuple[bool, str, str, str]] = []

    def report(self, token_id: str, agent_id: str, allowed: bool, **kwargs: Any) -> bool:
        self.told.append((allowed, kwargs.get("outcome", ""), kwargs.get("reason", ""), kwargs.get("resource", "")))
        return super().report(token_id, agent_id, allowed, **kwargs)


def reporter_for(cfg: LiveConfig, target: str | None = None, **options: Any) -> RecordingReporter:
    rs_id, rs_secret = os.environ.get("BATON_RS_ID"), os.environ.get("BATON_RS_SECRET")
    if not rs_id or not rs_secret:
        pytest.fail("live reporter test needs BATON_RS_ID and BATON_RS_SECRET (see test/sdk/run-live.ts)", pytrace=False)
    return RecordingReporter(target or cfg.addr, rs_id, rs_secret, audience=cfg.audience, **options)


@contextmanager
def closing(reporter: RecordingReporter) -> Iterator[RecordingReporter]:
    try:
        yield reporter
    finally:
        reporter.close(timeout=0.5)


def test_reporter_delivers_and_drops_a_refused_report() -> None:
    cfg = live_config()
    errors: list[baton.BatonError] = []
    with resource_server(cfg) as (subscriber, verifier, client), closing(reporter_for(cfg, flush_interval=0.02, on_error=errors.append)) as reporter:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        claims = verifier.verify(issue(client, cfg), required_scopes=[cfg.scope]).claims
        assert claims is not None
        assert reporter.report(claims.token_id, claims.agent_id, True, scope=cfg.scope, resource="GET /records/P-1042", outcome="200")
        assert reporter.report(claims.token_id, claims.agent_id, False, reason="TOKEN_STATUS_REVOKED", outcome="401")
        assert reporter.flush(timeout=10)
        assert (reporter.stats.sent, reporter.stats.rejected) == (2, 0)

        # A token the broker never issued: that report is dropped and counted, the rest delivered.
        reporter.report(claims.token_id, claims.agent_id, True)
        reporter.report("not-a-token", claims.agent_id, True)
        reporter.report(claims.token_id, claims.agent_id, True)
        assert reporter.flush(timeout=10)
        stats = reporter.stats
        assert (stats.sent, stats.rejected, stats.failed_batches, stats.pending) == (4, 1, 1, 0)
        assert [(e.reason, e.metadata.get("index")) for e in errors] == [("NOT_FOUND", "1")]


def wsgi_call(app: Any, token: str | None, method: str = "GET") -> str:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/records/P-1042", "SCRIPT_NAME": ""}
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    status: list[str] = []
    body = app(environ, lambda s, headers, exc_info=None: status.append(s))
    b"".join(body)
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return status[0].split(" ")[0]


def records_app(environ: Any, start_response: Any) -> list[bytes]:
    start_response("204 No Content", [])
    return []


def test_wsgi_middleware_reports_each_decision() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client), closing(reporter_for(cfg, flush_interval=0.02)) as reporter:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        app = baton.BatonWSGIMiddleware(
            records_app,
            verifier,
            required_scopes=lambda environ: ["delete:records:P-1042"] if environ["REQUEST_METHOD"] == "DELETE" else [cfg.scope],
            reporter=reporter,
        )
        token = issue(client, cfg)
        assert wsgi_call(app, token) == "204"
        assert wsgi_call(app, token, "DELETE") == "403"
        # No verified token: nothing to report about.
        assert wsgi_call(app, None) == "401"
        assert wsgi_call(app, "x.y.z") == "401"
        assert reporter.told == [
            (True, "204", "", "GET /records/P-1042"),
            (False, "403", "TOKEN_STATUS_INSUFFICIENT_SCOPE", "DELETE /records/P-1042"),
        ]
        assert reporter.flush(timeout=10)
        assert (reporter.stats.sent, reporter.stats.rejected) == (2, 0)


def test_asgi_middleware_reports_the_answered_status() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client), closing(reporter_for(cfg, flush_interval=0.02)) as reporter:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        middleware = baton.BatonASGIMiddleware(app, verifier, required_scopes=[cfg.scope], reporter=reporter)
        token = issue(client, cfg)
        sent: list[Any] = []

        async def run() -> None:
            scope = {"type": "http", "method": "GET", "path": "/records/P-1042", "headers": [(b"authorization", f"Bearer {token}".encode())]}

            async def send(message: Any) -> None:
                sent.append(message)

            async def receive() -> Any:
                return {"type": "http.request", "body": b""}

            await middleware(scope, receive, send)

        asyncio.run(run())
        assert sent[0]["status"] == 200
        assert reporter.told == [(True, "200", "", "GET /records/P-1042")]
        assert reporter.flush(timeout=10)
        assert reporter.stats.sent == 1


def test_grpc_interceptor_reports_allowed_and_refused_calls() -> None:
    cfg = live_config()
    method = "/test.Records/Get"
    with resource_server(cfg) as (subscriber, verifier, client), closing(reporter_for(cfg, flush_interval=0.02)) as reporter:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2),
            interceptors=[baton.BatonServerInterceptor(verifier, required_scopes={method: ["delete:records:P-1042"], "/test.Records/Read": [cfg.scope]}, reporter=reporter)],
        )
        handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"ok")
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Records", {"Get": handler, "Read": handler})])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                token = issue(client, cfg)
                md = [("authorization", f"Bearer {token}")]
                assert channel.unary_unary("/test.Records/Read")(b"", metadata=md, timeout=10) == b"ok"
                with pytest.raises(grpc.RpcError) as caught:
                    channel.unary_unary(method)(b"", metadata=md, timeout=10)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        finally:
            server.stop(grace=None)
        assert reporter.told == [
            (True, "OK", "", "/test.Records/Read"),
            (False, "PERMISSION_DENIED", "TOKEN_STATUS_INSUFFICIENT_SCOPE", method),
        ]
        assert reporter.flush(timeout=10)
        assert (reporter.stats.sent, reporter.stats.rejected) == (2, 0)


def test_verification_is_unaffected_by_an_unreachable_broker() -> None:
    cfg = live_config()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    with resource_server(cfg) as (subscriber, verifier, client), closing(reporter_for(cfg, dead, buffer_size=2, flush_interval=0.01, min_backoff=0.01)) as reporter:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        app = baton.BatonWSGIMiddleware(records_app, verifier, required_scopes=[cfg.scope], reporter=reporter)
        token = issue(client, cfg)
        assert [wsgi_call(app, token) for _ in range(5)] == ["204"] * 5
        stats = reporter.stats
        assert (stats.sent, stats.dropped, stats.pending) == (0, 3, 2)


def test_aio_interceptor_reports_the_final_status() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client), closing(reporter_for(cfg, flush_interval=0.02)) as reporter:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        token = issue(client, cfg)

        async def get(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if request == b"missing":
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such record")
            return b"ok"

        async def run() -> None:
            server = grpc.aio.server(interceptors=[baton.BatonAioServerInterceptor(verifier, reporter=reporter)])
            handler = grpc.unary_unary_rpc_method_handler(get)
            server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Records", {"Get": handler})])
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            try:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    md = [("authorization", f"Bearer {token}")]
                    assert await channel.unary_unary("/test.Records/Get")(b"", metadata=md, timeout=10) == b"ok"
                    with pytest.raises(grpc.aio.AioRpcError) as caught:
                        await channel.unary_unary("/test.Records/Get")(b"missing", metadata=md, timeout=10)
                    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            finally:
                await server.stop(None)

        asyncio.run(run())
        assert [(allowed, outcome) for allowed, outcome, _, _ in reporter.told] == [(True, "OK"), (True, "NOT_FOUND")]
        assert reporter.flush(timeout=10)
        assert (reporter.stats.sent, reporter.stats.rejected) == (2, 0)
