"""BatonServerInterceptor (and BatonAioServerInterceptor) in a real grpcio server on loopback, with a real
TokenVerifier over tokens signed here (test_live_interceptor.py has tokens
from a live broker).

The service is a generic one over raw bytes (no generated code): each
method answers with the verified claims' token id, or ``-`` when none.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from jws_helpers import AUDIENCE, ISSUER, SigningKey, claims, jwks
from test_middleware import View

import baton
import baton.interceptor
from baton import AgentKey, BatonAioServerInterceptor, BatonServerInterceptor, TokenVerifier, grpc_claims

SERVICE = "test.Records"
UNARY = f"/{SERVICE}/Get"
SERVER_STREAM = f"/{SERVICE}/Watch"
CLIENT_STREAM = f"/{SERVICE}/Put"
BIDI = f"/{SERVICE}/Chat"
HEALTH = f"/{SERVICE}/Health"


class Records:
    """The handlers; counts the calls that reach them."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def answer(self, context: grpc.ServicerContext) -> bytes:
        with self.lock:
            self.calls += 1
        c = grpc_claims(context)
        return b"-" if c is None else c.token_id.encode()

    def get(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        return self.answer(context)

    def watch(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in range(2):
            yield self.answer(context)

    def put(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        assert list(requests) == [b"a", b"b"]
        return self.answer(context)

    def chat(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield self.answer(context)


def start_server(verifier: TokenVerifier, records: Records, **options: Any) -> tuple[grpc.Server, str]:
    handlers = {
        "Get": grpc.unary_unary_rpc_method_handler(records.get),
        "Watch": grpc.unary_stream_rpc_method_handler(records.watch),
        "Put": grpc.stream_unary_rpc_method_handler(records.put),
        "Chat": grpc.stream_stream_rpc_method_handler(records.chat),
        "Health": grpc.unary_unary_rpc_method_handler(records.get),
    }
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[BatonServerInterceptor(verifier, **options)],
    )
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


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


@pytest.fixture
def served(verifier: TokenVerifier) -> Iterator[tuple[grpc.Channel, Records]]:
    records = Records()
    server, addr = start_server(
        verifier,
        records,
        required_scopes={UNARY: ["read:records:P-1"], CLIENT_STREAM: ["write:notes:n-1"]},
        public_methods=[HEALTH],
    )
    channel = grpc.insecure_channel(addr)
    try:
        yield channel, records
    finally:
        channel.close()
        server.stop(grace=None)


def token(key: SigningKey, **overrides: Any) -> str:
    return key.sign(claims(time.time(), **overrides))


def unary(channel: grpc.Channel, metadata: list[tuple[str, str]], method: str = UNARY) -> bytes:
    try:
        response: bytes = channel.unary_unary(method)(b"x", metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        raise baton.from_rpc_error(error) from error
    return response


def refused(channel: grpc.Channel, metadata: list[tuple[str, str]], method: str = UNARY) -> baton.BatonError:
    with pytest.raises(baton.BatonError) as caught:
        unary(channel, metadata, method)
    return caught.value


def test_a_valid_token_reaches_the_handler_with_its_claims(
    key: SigningKey, served: tuple[grpc.Channel, Records]
) -> None:
    channel, records = served
    auth = [("authorization", f"Bearer {token(key)}")]
    assert unary(channel, auth) == b"tok_1"
    assert list(channel.unary_stream(SERVER_STREAM)(b"x", metadata=auth, timeout=10)) == [b"tok_1", b"tok_1"]
    assert channel.stream_unary(CLIENT_STREAM)(iter([b"a", b"b"]), metadata=auth, timeout=10) == b"tok_1"
    assert list(channel.stream_stream(BIDI)(iter([b"a", b"b"]), metadata=auth, timeout=10)) == [b"tok_1"] * 2
    # A public method needs no token, and its handler gets no claims.
    assert unary(channel, [], HEALTH) == b"-"
    assert records.calls == 7


def test_refusals_carry_the_status_and_a_baton_error_info(
    key: SigningKey, served: tuple[grpc.Channel, Records], view: View
) -> None:
    channel, records = served
    good = token(key)

    for metadata in (
        [],
        [("authorization", f"Basic {good}")],
        [("authorization", f"Bearer {good}"), ("authorization", f"Bearer {good}")],
    ):
        e = refused(channel, metadata)
        assert (e.code, e.reason, e.metadata) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING", {})
        assert e.message == "credentials missing: send authorization: Bearer <token>"

    expired = token(key, exp=int(time.time()) - 60, nbf=int(time.time()) - 120, iat=time.time() - 120)
    e = refused(channel, [("authorization", f"Bearer {expired}")])
    assert (e.code, e.reason, e.metadata) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "TOKEN_INVALID",
        {"token_status": "EXPIRED"},
    )
    assert e.message == "token refused: EXPIRED" and expired not in str(e)

    e = refused(channel, [("authorization", f"Bearer {token(key, aud=['another-api'])}")])
    assert e.metadata == {"token_status": "WRONG_AUDIENCE"}

    narrow = token(key, scope="read:records:P-2")
    e = refused(channel, [("authorization", f"Bearer {narrow}")])
    assert (e.code, e.reason, e.metadata) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "TOKEN_INVALID",
        {"token_status": "INSUFFICIENT_SCOPE"},
    )
    # Scopes are per method: the server stream needs none in particular.
    auth = [("authorization", f"Bearer {narrow}")]
    assert list(channel.unary_stream(SERVER_STREAM)(b"x", metadata=auth, timeout=10)) == [b"tok_1"] * 2
    with pytest.raises(grpc.RpcError) as caught:
        channel.stream_unary(CLIENT_STREAM)(iter([b"a", b"b"]), metadata=auth, timeout=10)
    assert baton.from_rpc_error(caught.value).metadata == {"token_status": "INSUFFICIENT_SCOPE"}

    view.set.add(baton.v1.broker_pb2.Revocation(target=baton.v1.broker_pb2.REVOCATION_TARGET_AGENT, id="agt_1"))
    e = refused(channel, [("authorization", f"Bearer {good}")])
    assert (e.reason, e.metadata) == ("TOKEN_INVALID", {"token_status": "REVOKED"})

    view.stale = True
    e = refused(channel, [("authorization", f"Bearer {token(key, sub='agt_2')}")])
    assert (e.code, e.reason, e.metadata) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", {})
    with pytest.raises(grpc.RpcError) as caught:
        list(channel.stream_stream(BIDI)(iter([b"a"]), metadata=[("authorization", f"Bearer {good}")], timeout=10))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

    assert records.calls == 2, "no refused call reaches its handler"
    assert unary(channel, [], HEALTH) == b"-", "the server still serves"


def test_proofs_bind_the_method(key: SigningKey, served: tuple[grpc.Channel, Records]) -> None:
    channel, records = served
    agent = AgentKey.generate()
    bound = token(key, cnf={"jkt": agent.thumbprint})
    auth = ("authorization", f"Bearer {bound}")

    e = refused(channel, [auth])
    assert (e.code, e.reason, e.metadata) == (grpc.StatusCode.UNAUTHENTICATED, "PROOF_REQUIRED", {})
    proof = agent.proof(UNARY, bound)
    assert unary(channel, [auth, (baton.PROOF_METADATA_KEY, proof)]) == b"tok_1"
    assert refused(channel, [auth, (baton.PROOF_METADATA_KEY, proof)]).reason == "PROOF_REPLAYED"
    assert refused(channel, [auth, (baton.PROOF_METADATA_KEY, agent.proof(SERVER_STREAM, bound))]).reason == "PROOF_INVALID"
    other = AgentKey.generate()
    assert refused(channel, [auth, (baton.PROOF_METADATA_KEY, other.proof(UNARY, bound))]).reason == "PROOF_INVALID"
    two = [(baton.PROOF_METADATA_KEY, agent.proof(UNARY, bound)) for _ in range(2)]
    assert refused(channel, [auth, *two]).reason == "PROOF_INVALID"
    assert records.calls == 1


def test_claims_are_per_call_under_concurrency(key: SigningKey, served: tuple[grpc.Channel, Records]) -> None:
    # Four worker threads, 64 calls with 64 different tokens: each handler
    # sees its own call's claims, never another's.
    channel, _ = served
    tokens = [token(key, jti=f"tok_{i:02d}") for i in range(64)]
    with futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda t: unary(channel, [("authorization", f"Bearer {t}")]), tokens))
    assert answers == [f"tok_{i:02d}".encode() for i in range(64)]
    # A finished call's claims are not kept: its context is gone, and its entry with it.
    deadline = time.monotonic() + 10
    while len(baton.interceptor._claims) > 0 and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert len(baton.interceptor._claims) == 0


def test_options_are_checked(verifier: TokenVerifier) -> None:
    with pytest.raises(TypeError):
        BatonServerInterceptor(verifier, required_scopes={UNARY: "read:records:P-1"})
    with pytest.raises(TypeError):
        BatonServerInterceptor(verifier, public_methods=HEALTH)


# ---------------------------------------------------------------- grpc.aio


def run_aio(verifier: TokenVerifier, scenario: Callable[[grpc.aio.Channel], Awaitable[None]]) -> list[str]:
    """A grpc.aio server with the aio interceptor, handlers of every kind; runs ``scenario`` against it.

    Returns the token id (or ``-``) each handler saw, in call order.
    """
    seen: list[str] = []

    def note(context: Any) -> bytes:
        c = grpc_claims(context)
        seen.append("-" if c is None else c.token_id)
        return seen[-1].encode()

    async def get(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return note(context)

    async def watch(request: bytes, context: grpc.aio.ServicerContext) -> Any:
        for _ in range(2):
            yield note(context)

    async def watch_by_write(request: bytes, context: grpc.aio.ServicerContext) -> None:
        await context.write(note(context))

    async def put(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
        assert [r async for r in requests] == [b"a", b"b"]
        return note(context)

    async def chat(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        async for _ in requests:
            yield note(context)

    def get_sync(request: bytes, context: Any) -> bytes:
        return note(context)

    def watch_sync(request: bytes, context: Any) -> Iterator[bytes]:
        yield note(context)

    handlers = {
        "Get": grpc.unary_unary_rpc_method_handler(get),
        "Watch": grpc.unary_stream_rpc_method_handler(watch),
        "WatchByWrite": grpc.unary_stream_rpc_method_handler(watch_by_write),
        "Put": grpc.stream_unary_rpc_method_handler(put),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
        "GetSync": grpc.unary_unary_rpc_method_handler(get_sync),
        "WatchSync": grpc.unary_stream_rpc_method_handler(watch_sync),
        "Health": grpc.unary_unary_rpc_method_handler(get),
    }

    async def main() -> None:
        server = grpc.aio.server(
            migration_thread_pool=futures.ThreadPoolExecutor(max_workers=2),
            interceptors=[
                BatonAioServerInterceptor(
                    verifier, required_scopes={UNARY: ["read:records:P-1"]}, public_methods=[HEALTH]
                )
            ],
        )
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await scenario(channel)
        finally:
            await server.stop(None)

    asyncio.run(main())
    return seen


async def aio_refusal(call: Awaitable[Any]) -> baton.BatonError:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return baton.from_rpc_error(error)
    raise AssertionError("the call was not refused")


def test_aio_handlers_of_every_kind_get_their_call_claims(key: SigningKey, verifier: TokenVerifier) -> None:
    auth = [("authorization", f"Bearer {token(key)}")]

    async def scenario(channel: grpc.aio.Channel) -> None:
        assert await channel.unary_unary(UNARY)(b"x", metadata=auth) == b"tok_1"
        assert [r async for r in channel.unary_stream(SERVER_STREAM)(b"x", metadata=auth)] == [b"tok_1"] * 2
        assert [r async for r in channel.unary_stream(f"/{SERVICE}/WatchByWrite")(b"x", metadata=auth)] == [b"tok_1"]
        assert await channel.stream_unary(CLIENT_STREAM)(iter([b"a", b"b"]), metadata=auth) == b"tok_1"
        assert [r async for r in channel.stream_stream(BIDI)(iter([b"a", b"b"]), metadata=auth)] == [b"tok_1"] * 2
        assert await channel.unary_unary(f"/{SERVICE}/GetSync")(b"x", metadata=auth) == b"tok_1"
        assert [r async for r in channel.unary_stream(f"/{SERVICE}/WatchSync")(b"x", metadata=auth)] == [b"tok_1"]
        assert await channel.unary_unary(HEALTH)(b"x") == b"-"

    assert run_aio(verifier, scenario) == ["tok_1"] * 9 + ["-"]
    assert baton.interceptor._aio_claims == {}, "no claims kept after the calls"


def test_aio_refusals(key: SigningKey, verifier: TokenVerifier, view: View) -> None:
    good = [("authorization", f"Bearer {token(key)}")]
    narrow = [("authorization", f"Bearer {token(key, scope='read:records:P-2')}")]
    agent = AgentKey.generate()
    bound = token(key, cnf={"jkt": agent.thumbprint})

    async def scenario(channel: grpc.aio.Channel) -> None:
        e = await aio_refusal(channel.unary_unary(UNARY)(b"x"))
        assert (e.code, e.reason) == (grpc.StatusCode.UNAUTHENTICATED, "CREDENTIALS_MISSING"), repr(e)
        e = await aio_refusal(channel.unary_unary(UNARY)(b"x", metadata=narrow))
        assert (e.code, e.reason, e.metadata) == (
            grpc.StatusCode.PERMISSION_DENIED,
            "TOKEN_INVALID",
            {"token_status": "INSUFFICIENT_SCOPE"},
        )
        for method in (SERVER_STREAM, f"/{SERVICE}/WatchSync"):
            e = await aio_refusal(channel.unary_stream(method)(b"x", metadata=[("authorization", "Bearer x.y.z")]).read())
            assert (e.code, e.reason, e.metadata) == (
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_INVALID",
                {"token_status": "MALFORMED"},
            )
        e = await aio_refusal(channel.stream_unary(CLIENT_STREAM)(iter([b"a", b"b"])))
        assert e.reason == "CREDENTIALS_MISSING"
        e = await aio_refusal(channel.stream_stream(BIDI)(iter([b"a"])).read())
        assert e.reason == "CREDENTIALS_MISSING"

        md = [("authorization", f"Bearer {bound}")]
        assert (await aio_refusal(channel.unary_unary(UNARY)(b"x", metadata=md))).reason == "PROOF_REQUIRED"
        proof = agent.proof(UNARY, bound)
        assert await channel.unary_unary(UNARY)(b"x", metadata=[*md, (baton.PROOF_METADATA_KEY, proof)]) == b"tok_1"
        replay = channel.unary_unary(UNARY)(b"x", metadata=[*md, (baton.PROOF_METADATA_KEY, proof)])
        assert (await aio_refusal(replay)).reason == "PROOF_REPLAYED"

        view.stale = True
        e = await aio_refusal(channel.unary_unary(UNARY)(b"x", metadata=good))
        assert (e.code, e.reason) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")

    assert run_aio(verifier, scenario) == ["tok_1"], "only the call with a valid proof reached a handler"
