"""Figures for issue 7 items 6 and 9 (SDK side), printed as medians.

    .tools/venv/bin/python sdk/python/bench/issue7.py [--reconnects N]

* ES256 proof signing (AgentKey.proof, low-S) and TokenVerifier.verify of an
  ES256 token, in microseconds per call;
* how long a RevocationSubscriber with the default settings (checkpoint
  interval 5 s, so idle_timeout 10 s) takes to replace a stream that went
  silent, against an in-process server that accepts the stream and sends
  nothing after SnapshotComplete.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from _timing import per_call_us  # noqa: E402  (beside this script)
from jws_helpers import AUDIENCE, ISSUER, SigningKey, claims, jwks  # noqa: E402

import baton  # noqa: E402
from baton.v1 import broker_pb2, broker_pb2_grpc  # noqa: E402


class _View:
    fresh_at = time.time() + 3600

    def is_revoked(self, facts: object) -> bool:
        return False


class _Silent(broker_pb2_grpc.BrokerServiceServicer):
    """SnapshotComplete on each new stream, then nothing; records when each stream opened."""

    def __init__(self) -> None:
        self.opened: list[float] = []
        self.changed = threading.Condition()

    def StreamRevocations(self, request, context):  # noqa: N802
        with self.changed:
            self.opened.append(time.monotonic())
            self.changed.notify_all()
        if not request.cursor:
            yield broker_pb2.StreamRevocationsResponse(
                snapshot_complete=broker_pb2.SnapshotComplete(cursor="1")
            )
        while context.is_active():
            time.sleep(0.05)


def reconnect_seconds(samples: int) -> list[float]:
    servicer = _Silent()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=samples + 4))
    broker_pb2_grpc.add_BrokerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sub = baton.RevocationSubscriber(f"127.0.0.1:{port}", client_id="a", client_secret="b")
    try:
        sub.start()
        with servicer.changed:
            servicer.changed.wait_for(lambda: len(servicer.opened) > samples, timeout=samples * 20 + 20)
        opened = list(servicer.opened)
    finally:
        sub.close()
        server.stop(grace=None)
    return [b - a for a, b in zip(opened, opened[1:])]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reconnects", type=int, default=5)
    args = parser.parse_args()

    agent = baton.AgentKey.generate()
    print(f"AgentKey.proof ES256 (low-S): {per_call_us(lambda: agent.proof(baton.REVOKE_METHOD, 'a.b.c'), 500):.1f} us median")

    key = SigningKey("k", "ES256")
    verifier = baton.TokenVerifier(AUDIENCE, ISSUER, keys=lambda: jwks(key), revocations=_View())
    verifier.load_keys()
    token = key.sign(claims(time.time()))
    assert verifier.verify(token).ok
    print(f"TokenVerifier.verify ES256: {per_call_us(lambda: verifier.verify(token), 500):.1f} us median")

    gaps = reconnect_seconds(args.reconnects)
    print(
        "silent stream replaced after (defaults, idle_timeout 10 s): "
        f"median {statistics.median(gaps):.2f} s, min {min(gaps):.2f} s, max {max(gaps):.2f} s, n={len(gaps)}"
    )


if __name__ == "__main__":
    main()
