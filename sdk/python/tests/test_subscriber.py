"""RevocationSubscriber against a scripted broker (an in-process gRPC server).

Each connection the subscriber opens is scripted: what the "broker" sends
and how the stream ends, including Baton's error details. Covered: snapshot
then live events, set swap only at SnapshotComplete, resume from its own
cursor after SUBSCRIBER_TOO_SLOW, re-snapshot after CURSOR_EXPIRED /
CURSOR_INVALID, fresh_at (SnapshotComplete, then min(now, observe_time),
never backwards), a silent stream replaced on a new connection, a
connection not shared with unary calls, backoff with full jitter, key-set changes,
credentials, close.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

import baton
import baton.subscriber as subscriber_module
from baton import LineageFacts, RevocationSubscriber
from baton.v1 import broker_pb2, broker_pb2_grpc

FAST = {"backoff_base": 0.02, "backoff_max": 0.1}
CALLER = {"client_id": "app_1", "client_secret": "s3cret"}


def eventually(fn: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@dataclass(frozen=True)
class Facts:
    token_id: str
    agent_id: str = "agent"
    app_id: str = "app"
    task_id: str = "task"
    lineage: tuple[LineageFacts, ...] = ()
    root_issued_at_ms: int = 0


def rev(token_id: str, cursor: str, expires_in: float = 60.0) -> broker_pb2.StreamRevocationsResponse:
    r = broker_pb2.Revocation(
        target=broker_pb2.REVOCATION_TARGET_TOKEN, id=token_id, app_id="app", cursor=cursor
    )
    r.revoke_time.FromMilliseconds(int(time.time() * 1000))
    r.expire_time.FromMilliseconds(int((time.time() + expires_in) * 1000))
    return broker_pb2.StreamRevocationsResponse(revocation=r)


def complete(cursor: str) -> broker_pb2.StreamRevocationsResponse:
    return broker_pb2.StreamRevocationsResponse(
        snapshot_complete=broker_pb2.SnapshotComplete(cursor=cursor)
    )


def checkpoint(cursor: str, observed: float | None) -> broker_pb2.StreamRevocationsResponse:
    c = broker_pb2.Checkpoint(cursor=cursor)
    if observed is not None:
        c.observe_time.FromNanoseconds(int(observed * 1e9))
    return broker_pb2.StreamRevocationsResponse(checkpoint=c)


@dataclass(frozen=True)
class Fail:
    """End the stream with a Baton error status."""

    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None  # sent as a google.rpc.RetryInfo


END = object()  # end the stream cleanly


class Connection:
    """One stream the subscriber opened: push messages or a Fail/END onto it."""

    def __init__(self, cursor: str, metadata: dict[str, str], peer: str = "") -> None:
        self.cursor = cursor
        self.metadata = metadata
        # The client's address and port: another port is another connection.
        self.peer = peer
        self.opened = time.monotonic()
        self.items: queue.Queue[Any] = queue.Queue()
        self.cancelled = threading.Event()

    def send(self, *items: Any) -> None:
        for item in items:
            self.items.put(item)


class ScriptedBroker(broker_pb2_grpc.BrokerServiceServicer):
    """Serves StreamRevocations from scripts: connection i starts with scripts[i]."""

    def __init__(self, scripts: list[list[Any]]) -> None:
        self.scripts = scripts
        self.connections: list[Connection] = []
        # The peer of each unary call (GetKeySet).
        self.unary_peers: list[str] = []
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        broker_pb2_grpc.add_BrokerServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def StreamRevocations(  # noqa: N802 (generated name)
        self, request: broker_pb2.StreamRevocationsRequest, context: grpc.ServicerContext
    ) -> Iterator[broker_pb2.StreamRevocationsResponse]:
        conn = Connection(request.cursor, dict(context.invocation_metadata()), context.peer())
        context.add_callback(conn.cancelled.set)
        with self._lock:
            index = len(self.connections)
            self.connections.append(conn)
        conn.send(*(self.scripts[index] if index < len(self.scripts) else []))
        while context.is_active():
            try:
                item = conn.items.get(timeout=0.02)
            except queue.Empty:
                continue
            if item is END:
                return
            if isinstance(item, Fail):
                info = error_details_pb2.ErrorInfo(
                    reason=item.reason, domain="baton.dev", metadata=item.metadata
                )
                status = status_pb2.Status(code=item.code.value[0], message=item.reason)
                status.details.add().Pack(info)
                if item.retry_after is not None:
                    retry = error_details_pb2.RetryInfo()
                    retry.retry_delay.FromNanoseconds(int(item.retry_after * 1e9))
                    status.details.add().Pack(retry)
                context.abort_with_status(rpc_status.to_status(status))
            yield item

    def GetKeySet(  # noqa: N802 (generated name)
        self, request: broker_pb2.GetKeySetRequest, context: grpc.ServicerContext
    ) -> broker_pb2.GetKeySetResponse:
        with self._lock:
            self.unary_peers.append(context.peer())
        return broker_pb2.GetKeySetResponse(jwks_json='{"keys":[]}')

    def cursors(self) -> list[str]:
        with self._lock:
            return [c.cursor for c in self.connections]

    def connection(self, index: int) -> Connection:
        eventually(lambda: len(self.connections) > index, what=f"connection {index}")
        return self.connections[index]

    def stop(self) -> None:
        self.server.stop(grace=None)


@pytest.fixture
def make_broker() -> Iterator[Callable[[list[list[Any]]], ScriptedBroker]]:
    brokers: list[ScriptedBroker] = []

    def make(scripts: list[list[Any]]) -> ScriptedBroker:
        brokers.append(ScriptedBroker(scripts))
        return brokers[-1]

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def subscribers() -> Iterator[list[RevocationSubscriber]]:
    subs: list[RevocationSubscriber] = []
    yield subs
    for s in subs:
        s.close()


class Recorder:
    def __init__(self, sub: RevocationSubscriber) -> None:
        self.revocations: list[tuple[str, bool]] = []
        self.states: list[tuple[str, baton.BatonError | None]] = []
        self.key_sets: list[dict[str, Any]] = []
        sub.on_revocation(lambda r, snapshot: self.revocations.append((r.id, snapshot)))
        sub.on_state_change(lambda s, e: self.states.append((s, e)))
        sub.on_key_set(self.key_sets.append)

    def error_reasons(self) -> list[str]:
        return [e.reason for _, e in self.states if e is not None and e.reason]


def test_snapshot_then_live_events_then_checkpoints(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker([[rev("tA", "1")]])
    clock = [1000.0]
    sub = RevocationSubscriber(broker.target, **CALLER, now=lambda: clock[0], **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    assert sub.state == "idle"
    sub.start()
    conn = broker.connection(0)
    assert conn.cursor == ""
    assert conn.metadata["authorization"] == "Basic YXBwXzE6czNjcmV0"
    eventually(lambda: sub.state == "snapshot", what="the snapshot entry")
    # A snapshot entry answers at once (it can only add), but the view is not complete yet.
    assert sub.is_revoked(Facts("tA"))
    assert sub.fresh_at is None
    assert not sub.wait_ready(0.05)
    assert sub.size == 0

    conn.send(complete("1"))
    assert sub.wait_ready(5)
    assert sub.fresh_at == 1000.0  # when SnapshotComplete arrived
    assert sub.cursor == "1" and sub.size == 1 and sub.state == "live"

    conn.send(rev("tB", "2"))
    eventually(lambda: sub.cursor == "2", what="the live event")
    assert sub.is_revoked(Facts("tB"))
    assert sub.fresh_at == 1000.0  # a revocation event does not advance freshness
    assert rec.revocations == [("tA", True), ("tB", False)]

    # A checkpoint: min(now, observe_time).
    clock[0] = 1010.0
    conn.send(checkpoint("3", 1008.0))
    eventually(lambda: sub.cursor == "3", what="checkpoint 3")
    assert sub.fresh_at == 1008.0
    # A broker clock ahead of ours never makes the view fresher than now.
    conn.send(checkpoint("4", 5000.0))
    eventually(lambda: sub.cursor == "4", what="checkpoint 4")
    assert sub.fresh_at == 1010.0
    # Never backwards, and a checkpoint without observe_time counts as now.
    conn.send(checkpoint("5", 900.0))
    eventually(lambda: sub.cursor == "5", what="checkpoint 5")
    assert sub.fresh_at == 1010.0
    clock[0] = 1020.0
    conn.send(checkpoint("6", None))
    eventually(lambda: sub.cursor == "6", what="checkpoint 6")
    assert sub.fresh_at == 1020.0
    assert [s for s, _ in rec.states[:3]] == ["connecting", "snapshot", "live"]


def test_resumes_from_its_own_cursor_and_re_snapshots_swapping_only_at_snapshot_complete(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker(
        [
            # The broker's metadata claims more than was applied; the subscriber's own cursor wins.
            [rev("tA", "1"), complete("1"), rev("tB", "2"),
             Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "SUBSCRIBER_TOO_SLOW", {"cursor": "5"})],
            [Fail(grpc.StatusCode.OUT_OF_RANGE, "CURSOR_EXPIRED")],
            [rev("tC", "7")],
        ]
    )
    sub = RevocationSubscriber(broker.target, bearer_token="op", **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    sub.start()
    assert sub.wait_ready(5)
    third = broker.connection(2)
    eventually(lambda: sub.is_revoked(Facts("tC")), what="the new snapshot's entry")
    assert broker.cursors() == ["", "2", ""]
    assert third.metadata["authorization"] == "Bearer op"
    assert rec.error_reasons() == ["SUBSCRIBER_TOO_SLOW", "CURSOR_EXPIRED"]
    # Mid-snapshot: the old set still answers, the partial snapshot adds to it.
    fresh = sub.fresh_at
    assert fresh is not None
    assert sub.is_revoked(Facts("tA")) and sub.is_revoked(Facts("tB"))
    assert sub.state == "snapshot" and sub.cursor == ""

    third.send(complete("7"))
    eventually(lambda: sub.cursor == "7", what="SnapshotComplete")
    assert not sub.is_revoked(Facts("tA")) and not sub.is_revoked(Facts("tB"))
    assert sub.is_revoked(Facts("tC"))
    assert sub.fresh_at is not None and sub.fresh_at >= fresh


def test_cursor_invalid_and_a_cut_snapshot_take_a_new_snapshot(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker(
        [
            [Fail(grpc.StatusCode.INVALID_ARGUMENT, "CURSOR_INVALID")],
            # A snapshot cut short (clean end before SnapshotComplete) is discarded whole.
            [rev("tX", "1"), END],
            [rev("tY", "2"), complete("2")],
        ]
    )
    sub = RevocationSubscriber(broker.target, **CALLER, cursor="bogus", **FAST)
    subscribers.append(sub)
    sub.start()
    assert sub.wait_ready(5)
    assert broker.cursors() == ["bogus", "", ""]
    assert sub.is_revoked(Facts("tY")) and not sub.is_revoked(Facts("tX"))


def test_resuming_from_a_given_cursor_is_ready_at_the_first_checkpoint(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker([[rev("tA", "43")]])
    sub = RevocationSubscriber(broker.target, **CALLER, cursor="42", **FAST)
    subscribers.append(sub)
    sub.start()
    conn = broker.connection(0)
    eventually(lambda: sub.cursor == "43", what="the replayed event")
    assert sub.is_revoked(Facts("tA"))
    assert sub.fresh_at is None and not sub.wait_ready(0)
    conn.send(checkpoint("44", time.time()))
    assert sub.wait_ready(5)
    assert conn.cursor == "42"


def test_shutting_down_resumes_and_a_checkpoint_during_a_snapshot_is_ignored(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker(
        [
            [checkpoint("0", time.time()), rev("tA", "1"), complete("1"),
             Fail(grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN", {"cursor": "1"})],
            [rev("tB", "2"), checkpoint("2", time.time())],
        ]
    )
    sub = RevocationSubscriber(broker.target, **CALLER, **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    sub.start()
    eventually(lambda: sub.cursor == "2", what="the resumed stream")
    assert broker.cursors() == ["", "1"]
    assert rec.error_reasons() == ["SHUTTING_DOWN"]
    assert sub.is_revoked(Facts("tA")) and sub.is_revoked(Facts("tB"))
    assert rec.revocations == [("tA", True), ("tB", False)]


def test_idle_stream_is_replaced_and_events_of_a_left_stream_are_ignored(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker([[complete("1")], [checkpoint("2", time.time())]])
    sub = RevocationSubscriber(broker.target, **CALLER, idle_timeout=0.3, **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    sub.start()
    assert sub.wait_ready(5)
    first = broker.connection(0)
    # Nothing more on the first stream: after idle_timeout it is left and cancelled.
    second = broker.connection(1)
    assert second.cursor == "1"
    assert first.cancelled.wait(5)
    assert any(e is not None and e.code == grpc.StatusCode.DEADLINE_EXCEEDED for _, e in rec.states)
    eventually(lambda: sub.cursor == "2", what="the second stream's checkpoint")

    # A message of a call the subscriber has left (a race with the watchdog) is not applied.
    left_call = object()
    assert not sub._apply(left_call, rev("tLate", "99"))
    assert not sub.is_revoked(Facts("tLate")) and sub.cursor == "2"


def test_a_silent_stream_is_replaced_on_a_new_connection_from_its_cursor(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    # A broker that accepts the stream and then sends nothing, not even a
    # Checkpoint: by default, after twice the checkpoint interval the
    # subscriber gives up on it and reconnects, on a new connection (a
    # half-open one would otherwise come back) and from its cursor.
    interval = 0.5
    broker = make_broker([[complete("1")], [], []])
    sub = RevocationSubscriber(broker.target, **CALLER, checkpoint_interval=interval, **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    sub.start()
    assert sub.wait_ready(5)
    fresh_at = sub.fresh_at
    first, second, third = (broker.connection(i) for i in range(3))
    gaps = (second.opened - first.opened, third.opened - second.opened)
    print(f"silent stream replaced after {gaps[0]:.3f} s, then {gaps[1]:.3f} s (idle_timeout {2 * interval} s)")
    # Generous bounds for a loaded machine: the point is about a second (the
    # idle timeout), neither at once nor the 60 s it used to be.
    for gap in gaps:
        assert 2 * interval * 0.5 <= gap < 10, gaps
    assert [c.cursor for c in broker.connections[:3]] == ["", "1", "1"]
    peers = [c.peer for c in broker.connections[:3]]
    assert len(set(peers)) == 3, peers
    # Nothing came while silent: freshness did not move (a verifier goes STALE).
    assert sub.fresh_at == fresh_at
    idle = [e for _, e in rec.states if e is not None]
    assert idle and all(e.code == grpc.StatusCode.DEADLINE_EXCEEDED for e in idle[:2]), idle

    def checkpoint_on_the_latest() -> bool:
        # The latest stream: on a slow machine the third may have been left already.
        broker.connections[-1].send(checkpoint("2", time.time() + 60))
        time.sleep(0.1)
        return sub.cursor == "2"

    eventually(checkpoint_on_the_latest, what="a checkpoint on a replacement stream")
    assert sub.fresh_at is not None and fresh_at is not None and sub.fresh_at > fresh_at


def test_the_stream_has_a_connection_of_its_own(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    # gRPC pools connections between channels to one target: without care a
    # BrokerClient's calls (an oversized token, GOAWAY) would take the stream down.
    broker = make_broker([[complete("1")]])
    with baton.BrokerClient(broker.target) as client:
        client.get_key_set()
        sub = RevocationSubscriber(broker.target, **CALLER, **FAST)
        subscribers.append(sub)
        sub.start()
        assert sub.wait_ready(5)
        client.get_key_set()
    assert broker.unary_peers[0] == broker.unary_peers[1]
    assert broker.connection(0).peer != broker.unary_peers[0], (broker.connection(0).peer, broker.unary_peers)


def test_backoff_is_exponential_with_full_jitter_and_resets_on_a_message(
    monkeypatch: pytest.MonkeyPatch,
    make_broker: Callable[..., ScriptedBroker],
    subscribers: list[RevocationSubscriber],
) -> None:
    ceilings: list[float] = []
    real_uniform = subscriber_module.random.uniform

    def uniform(low: float, high: float) -> float:
        if threading.current_thread().name == "baton-revocation-subscriber":
            ceilings.append(high)
            return min(high, 0.005)
        return real_uniform(low, high)

    monkeypatch.setattr(subscriber_module.random, "uniform", uniform)
    fails = [[Fail(grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")] for _ in range(5)]
    broker = make_broker([*fails, [complete("1"), END], [Fail(grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")]])
    sub = RevocationSubscriber(broker.target, **CALLER, backoff_base=0.1, backoff_max=0.5)
    subscribers.append(sub)
    sub.start()
    eventually(lambda: len(ceilings) >= 7, what="seven reconnects")
    sub.close()
    # Doubling from the base, capped at the max; after a stream that delivered, back to the base (then doubling again).
    assert ceilings[:7] == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.1, 0.2])


def test_a_throttled_reconnect_waits_the_retry_delay(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker(
        [[Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "AUTHENTICATION_THROTTLED", retry_after=1.0)]]
    )
    # Backoff alone would reconnect within 0.1 s.
    sub = RevocationSubscriber(broker.target, **CALLER, **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    sub.start()
    first = broker.connection(0)
    second = broker.connection(1)
    # A lower bound only: a loaded machine can make it later, never earlier.
    assert second.opened - first.opened >= 0.95
    errors = [e for _, e in rec.states if e is not None]
    assert errors[0].reason == "AUTHENTICATION_THROTTLED"
    assert errors[0].retry_after == pytest.approx(1.0)


def test_closed_port_never_becomes_ready(subscribers: list[RevocationSubscriber]) -> None:
    sub = RevocationSubscriber("127.0.0.1:1", **CALLER, **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    sub.start()
    assert not sub.wait_ready(0.5)
    assert sub.fresh_at is None
    eventually(lambda: sum(s == "connecting" for s, _ in rec.states) >= 2, what="a reconnect")
    errors = [e for s, e in rec.states if s == "backoff" and e is not None]
    assert errors and errors[0].code == grpc.StatusCode.UNAVAILABLE


def test_key_set_changes_reach_listeners_and_a_raising_listener_is_harmless(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    jwks = '{"keys":[{"kid":"k1","kty":"OKP","crv":"Ed25519","x":"AAAA","alg":"EdDSA","use":"sig"}]}'
    broker = make_broker(
        [
            [
                complete("1"),
                broker_pb2.StreamRevocationsResponse(key_set_changed=broker_pb2.KeySetChanged(jwks_json="{not json")),
                broker_pb2.StreamRevocationsResponse(key_set_changed=broker_pb2.KeySetChanged(jwks_json='{"k":1}')),
                broker_pb2.StreamRevocationsResponse(key_set_changed=broker_pb2.KeySetChanged(jwks_json=jwks)),
                rev("tA", "2"),
            ]
        ]
    )
    sub = RevocationSubscriber(broker.target, **CALLER, **FAST)
    subscribers.append(sub)

    def broken(*_: Any) -> None:
        raise RuntimeError("listener bug")

    sub.on_revocation(broken)
    sub.on_key_set(broken)
    rec = Recorder(sub)
    unsubscribe = sub.on_revocation(lambda *_: rec.revocations.append(("extra", False)))
    unsubscribe()
    sub.start()
    eventually(lambda: sub.cursor == "2", what="the event after the key sets")
    assert [k["keys"][0]["kid"] for k in rec.key_sets] == ["k1"]
    assert rec.revocations == [("tA", False)]
    assert sub.is_revoked(Facts("tA"))


def test_prune_forgets_expired_entries(
    make_broker: Callable[..., ScriptedBroker], subscribers: list[RevocationSubscriber]
) -> None:
    broker = make_broker([[rev("old", "1", expires_in=-1), rev("new", "2", expires_in=60), complete("2")]])
    sub = RevocationSubscriber(broker.target, **CALLER, **FAST)
    subscribers.append(sub)
    sub.start()
    assert sub.wait_ready(5)
    assert sub.size == 2
    assert sub.prune() == 1
    assert sub.size == 1 and sub.is_revoked(Facts("new"))


def test_close_cancels_the_stream_and_ends_the_threads(
    make_broker: Callable[..., ScriptedBroker],
) -> None:
    broker = make_broker([[complete("1")]])
    sub = RevocationSubscriber(broker.target, **CALLER, **FAST)
    states: list[str] = []
    sub.on_state_change(lambda s, _: states.append(s))
    with sub:
        assert sub.wait_ready(5)
        conn = broker.connection(0)
    assert conn.cancelled.wait(5)
    assert sub.state == "closed" and states[-1] == "closed"
    assert sub._thread is not None and not sub._thread.is_alive()
    assert sub._watchdog is not None and not sub._watchdog.is_alive()
    sub.close()  # idempotent
    with pytest.raises(RuntimeError):
        sub.start()
    # wait_ready returns (False) at once for a subscriber closed before it was ready.
    never = RevocationSubscriber("127.0.0.1:1", **CALLER)
    never.start()
    threading.Timer(0.1, never.close).start()
    started = time.monotonic()
    assert not never.wait_ready(5)
    assert time.monotonic() - started < 4


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="loopback"):
        RevocationSubscriber("baton.example:443", **CALLER)
    with pytest.raises(ValueError):
        RevocationSubscriber("127.0.0.1:1")  # no credentials
    with pytest.raises(ValueError):
        RevocationSubscriber("127.0.0.1:1", client_id="a")
    with pytest.raises(ValueError):
        RevocationSubscriber("127.0.0.1:1", **CALLER, bearer_token="x")
    with pytest.raises(ValueError):
        RevocationSubscriber("127.0.0.1:1", **CALLER, backoff_base=-1)
    with pytest.raises(ValueError):
        RevocationSubscriber("127.0.0.1:1", **CALLER, prune_interval=0)
    with pytest.raises(ValueError):
        RevocationSubscriber("127.0.0.1:1", **CALLER, checkpoint_interval=0)
    with pytest.raises(ValueError):
        RevocationSubscriber("127.0.0.1:1", **CALLER, idle_timeout=-1)
    # With transport security any address is allowed.
    RevocationSubscriber("baton.example:443", **CALLER, channel_credentials=grpc.ssl_channel_credentials())
    for target in ("localhost:1", "127.0.0.2:50051", "[::1]:50051", "dns:///localhost:1", "unix:/tmp/s"):
        assert subscriber_module.is_loopback_target(target), target
    for target in ("10.0.0.1:1", "baton.example:443", "[2001:db8::1]:1", "localhost.evil.com:1"):
        assert not subscriber_module.is_loopback_target(target), target


def test_a_target_function_off_loopback_is_refused_at_connect(subscribers: list[RevocationSubscriber]) -> None:
    sub = RevocationSubscriber(lambda: "10.0.0.1:50051", **CALLER, **FAST)
    subscribers.append(sub)
    rec = Recorder(sub)
    sub.start()
    eventually(lambda: rec.states, what="a state change")
    eventually(lambda: any(e is not None for _, e in rec.states), what="a refusal")
    error = next(e for _, e in rec.states if e is not None)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert not sub.wait_ready(0.1)
