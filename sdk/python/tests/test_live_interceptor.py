"""BatonServerInterceptor in a real grpcio server on loopback, against tokens
from a live broker and a RevocationSubscriber on its stream.

Same environment as test_live_broker.py; without it these tests fail.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
import pytest
from test_live_broker import live_config
from test_live_verifier import REVOCATION_DEADLINE, issue, resource_server

import baton
from baton import AgentKey, BatonServerInterceptor, TokenVerifier, grpc_claims
from baton.v1 import broker_pb2

METHOD = "/test.Records/Get"


@contextmanager
def protected_server(verifier: TokenVerifier, scope: str) -> Iterator[grpc.Channel]:
    """A grpcio server whose one method answers with the caller's agent id; a channel to it."""

    def get(request: bytes, context: grpc.ServicerContext) -> bytes:
        claims = grpc_claims(context)
        assert claims is not None
        return f"{claims.agent_id} {claims.token_id}".encode()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[BatonServerInterceptor(verifier, required_scopes={METHOD: [scope]})],
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Records", {"Get": grpc.unary_unary_rpc_method_handler(get)})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel
    finally:
        channel.close()
        server.stop(grace=None)


def call(channel: grpc.Channel, token: str, proof: str | None = None) -> bytes:
    metadata = [("authorization", f"Bearer {token}")]
    if proof is not None:
        metadata.append((baton.PROOF_METADATA_KEY, proof))
    try:
        answer: bytes = channel.unary_unary(METHOD)(b"", metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        raise baton.from_rpc_error(error) from error
    return answer


def test_broker_tokens_through_the_interceptor() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client), protected_server(verifier, cfg.scope) as channel:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        token = issue(client, cfg)
        claims = client.validate(token, cfg.audience).claims
        assert call(channel, token) == f"{claims.agent_id} {claims.token_id}".encode()

        with pytest.raises(baton.BatonError) as caught:
            call(channel, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBA"))
        assert (caught.value.code, caught.value.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_INVALID")

        # Revoked at the broker: refused here once the stream brings it.
        client.revoke(broker_pb2.REVOCATION_TARGET_TOKEN, claims.token_id, reason="sdk/python interceptor test")
        deadline = time.monotonic() + REVOCATION_DEADLINE
        while True:
            try:
                call(channel, token)
            except baton.BatonError as error:
                assert (error.code, error.reason, error.metadata) == (
                    grpc.StatusCode.UNAUTHENTICATED,
                    "TOKEN_INVALID",
                    {"token_status": "REVOKED"},
                )
                break
            assert time.monotonic() < deadline, "the revoked token was still served"
            time.sleep(0.05)


def test_key_bound_broker_token_needs_a_proof_for_the_method() -> None:
    cfg = live_config()
    with resource_server(cfg) as (subscriber, verifier, client), protected_server(verifier, cfg.scope) as channel:
        assert subscriber.wait_ready(5), f"not ready: {subscriber.state}"
        key = AgentKey.generate()
        token = issue(client, cfg, key)
        with pytest.raises(baton.BatonError) as caught:
            call(channel, token)
        assert caught.value.reason == "PROOF_REQUIRED"
        token_id = client.validate(token, cfg.audience).claims.token_id
        assert call(channel, token, key.proof(METHOD, token)).endswith(f" {token_id}".encode())
        proof = key.proof(METHOD, token)
        call(channel, token, proof)
        with pytest.raises(baton.BatonError) as caught:
            call(channel, token, proof)
        assert caught.value.reason == "PROOF_REPLAYED"
        with pytest.raises(baton.BatonError) as caught:
            call(channel, token, key.proof("/test.Records/Other", token))
        assert caught.value.reason == "PROOF_INVALID"
