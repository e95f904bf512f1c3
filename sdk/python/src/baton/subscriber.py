"""A resource server's live copy of the broker's revocations (DESIGN §6, §7).

:class:`RevocationSubscriber` holds ``StreamRevocations`` open on a daemon
thread, keeps a local :class:`RevocationSet`, and answers "is this token
revoked?" from memory, for :class:`baton.TokenVerifier`.

* First connect: no cursor, so a snapshot, ``SnapshotComplete``, then live
  events.
* Reconnect: from the last cursor it *applied* (replay, then live), after a
  delay with exponential backoff and full jitter.
* ``CURSOR_EXPIRED`` / ``CURSOR_INVALID``: forget the cursor and take a
  fresh snapshot. The old set keeps answering (together with the snapshot
  received so far) until ``SnapshotComplete``, then is replaced.
* ``SUBSCRIBER_TOO_SLOW`` / ``SHUTTING_DOWN``: resume from its own applied
  cursor. The error's ``cursor`` metadata names the last one the broker
  handed over; ours is what actually reached the set, so it is the one that
  cannot skip an event.
* No message at all (not even a ``Checkpoint``) for ``idle_timeout`` (twice
  the broker's checkpoint interval): the connection is presumed half-open
  and replaced by a new channel, resuming from the cursor.

The stream has a connection of its own, never shared with unary calls (gRPC
otherwise pools connections between channels to one target): a connection
the broker closes because of another call's oversized metadata, or one that
went half-open, takes only the stream down, and only the stream's channel
is replaced.

:attr:`RevocationSubscriber.fresh_at` is the local time up to which the set
is known complete: set when ``SnapshotComplete`` is received (the snapshot
was read just before), and on each ``Checkpoint`` to
``min(now, checkpoint.observe_time)``, where ``observe_time`` is when the
broker's own view last matched its database. Taking ``observe_time`` rather
than "a message arrived" catches a broker that still streams checkpoints but
has lost its database; taking the minimum with now means a broker clock
ahead of ours never makes us look fresher. A revocation event does not
advance it (it proves the stream is alive, not that nothing is missing after
it), and it never goes backwards.

The matching rules mirror the broker's (``server/domain/revocations.ts``),
reimplemented here because the SDK ships on its own.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Protocol

import grpc

from baton.errors import BatonError, bearer_metadata, from_rpc_error
from baton.v1 import broker_pb2, broker_pb2_grpc

_log = logging.getLogger("baton")

#: Where a subscriber is: ``idle`` (not started), ``connecting`` (stream
#: opened, nothing received yet), ``snapshot`` (receiving a snapshot),
#: ``live`` (set complete, following events), ``backoff`` (stream ended,
#: waiting to reconnect), ``closed``.
SubscriberState = Literal["idle", "connecting", "snapshot", "live", "backoff", "closed"]

_CURSOR_RESET_REASONS = frozenset({"CURSOR_EXPIRED", "CURSOR_INVALID"})


@dataclass(frozen=True)
class LineageFacts:
    """One ancestor of a delegated token."""

    #: The ancestor token's id (``jti``).
    token_id: str
    #: The ancestor token's agent id (``sub``).
    agent_id: str


class RevocationFacts(Protocol):
    """What a revocation check needs of a token.

    :class:`baton.VerifiedClaims` has all of it; so may any object with
    these attributes.
    """

    @property
    def token_id(self) -> str:
        """``jti``."""
        ...

    @property
    def agent_id(self) -> str:
        """``sub``: the agent."""
        ...

    @property
    def app_id(self) -> str:
        """``client_id``: the app of the chain's root."""
        ...

    @property
    def task_id(self) -> str:
        """The task id."""
        ...

    @property
    def lineage(self) -> Sequence[LineageFacts]:
        """The ancestors, root first; empty for a token issued by an app."""
        ...

    @property
    def root_issued_at_ms(self) -> int:
        """When the chain's root was issued (``root_iat``, or ``iat`` without lineage), in ms."""
        ...


@dataclass(frozen=True)
class _Entry:
    revoked_at_ms: int
    expires_at_ms: float
    cursor: str


def _timestamp_ms(ts: Any) -> int:
    """A ``google.protobuf.Timestamp`` in whole milliseconds since the epoch."""
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


class RevocationSet:
    """A set of revocations, indexed so a check costs O(lineage).

    A token is revoked when its own id or an ancestor's id (TOKEN), its agent
    or an ancestor's agent (AGENT), its chain's root token id (CHAIN), or its
    app (APP) or app and task (TASK) for a chain rooted at or before the
    revocation, matches an entry.

    Not thread-safe on its own; :class:`RevocationSubscriber` guards it.
    """

    __slots__ = ("_agents", "_apps", "_chains", "_tasks", "_tokens")

    def __init__(self) -> None:
        """Start empty."""
        # id -> the latest expiry (ms) among revocations of that id
        self._tokens: dict[str, float] = {}
        self._agents: dict[str, float] = {}
        self._chains: dict[str, float] = {}
        # key -> entries: a task or an app may be revoked more than once
        self._tasks: dict[tuple[str, str], list[_Entry]] = {}
        self._apps: dict[str, list[_Entry]] = {}

    def __len__(self) -> int:
        """The number of entries held."""
        n = len(self._tokens) + len(self._agents) + len(self._chains)
        n += sum(len(entries) for entries in self._tasks.values())
        n += sum(len(entries) for entries in self._apps.values())
        return n

    def add(self, revocation: broker_pb2.Revocation) -> bool:
        """Add a revocation.

        Returns:
            False when its target is unknown to this SDK (nothing could
            match it); True otherwise.
        """
        r = revocation
        # An unset expire_time is kept forever: it cannot be proven harmless.
        expires = float(_timestamp_ms(r.expire_time)) if r.HasField("expire_time") else math.inf
        revoked = _timestamp_ms(r.revoke_time) if r.HasField("revoke_time") else 0
        entry = _Entry(revoked, expires, r.cursor)
        if r.target == broker_pb2.REVOCATION_TARGET_TOKEN:
            _keep_latest(self._tokens, r.id, expires)
        elif r.target == broker_pb2.REVOCATION_TARGET_AGENT:
            _keep_latest(self._agents, r.id, expires)
        elif r.target == broker_pb2.REVOCATION_TARGET_CHAIN:
            _keep_latest(self._chains, r.id, expires)
        elif r.target == broker_pb2.REVOCATION_TARGET_TASK:
            _append(self._tasks, (r.app_id, r.id), entry)
        elif r.target == broker_pb2.REVOCATION_TARGET_APP:
            _append(self._apps, r.app_id, entry)
        else:
            return False
        return True

    def is_revoked(self, facts: RevocationFacts) -> bool:
        """Whether some entry matches the token (see the class docstring)."""
        if facts.token_id in self._tokens or facts.agent_id in self._agents:
            return True
        lineage = facts.lineage
        for ancestor in lineage:
            if ancestor.token_id in self._tokens or ancestor.agent_id in self._agents:
                return True
        root = lineage[0].token_id if lineage else facts.token_id
        if root in self._chains:
            return True
        rooted = facts.root_issued_at_ms
        return _revoked_since(self._apps.get(facts.app_id), rooted) or _revoked_since(
            self._tasks.get((facts.app_id, facts.task_id)), rooted
        )

    def prune(self, now_ms: float) -> int:
        """Forget entries whose every possible match expired before ``now_ms``.

        Returns:
            How many were forgotten.
        """
        removed = 0
        for by_id in (self._tokens, self._agents, self._chains):
            for key in [k for k, exp in by_id.items() if exp < now_ms]:
                del by_id[key]
                removed += 1
        lists: tuple[dict[Any, list[_Entry]], ...] = (self._tasks, self._apps)
        for by_key in lists:
            for key, entries in list(by_key.items()):
                kept = [e for e in entries if e.expires_at_ms >= now_ms]
                removed += len(entries) - len(kept)
                if kept:
                    by_key[key] = kept
                else:
                    del by_key[key]
        return removed


def _keep_latest(by_id: dict[str, float], key: str, expires: float) -> None:
    previous = by_id.get(key)
    by_id[key] = expires if previous is None else max(previous, expires)


def _append(by_key: dict[Any, list[_Entry]], key: Any, entry: _Entry) -> None:
    entries = by_key.get(key)
    if entries is None:
        by_key[key] = [entry]
    # The same revocation can arrive twice (in a snapshot, then replayed).
    elif not any(e.cursor == entry.cursor for e in entries):
        entries.append(entry)


def _revoked_since(entries: list[_Entry] | None, root_issued_at_ms: int) -> bool:
    return entries is not None and any(root_issued_at_ms <= e.revoked_at_ms for e in entries)


_HOST_PORT = re.compile(r"^(?:dns:(?:///?)?|ipv4:|ipv6:)?(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:/]+))(?::\d+)?$")


def is_loopback_target(target: str) -> bool:
    """Whether a gRPC target names this machine (``localhost``, ``127.x``, ``::1``, ``unix:``)."""
    if target.startswith("unix:") or target.startswith("unix-abstract:"):
        return True
    match = _HOST_PORT.match(target)
    if match is None:
        # A bare IPv6 address without brackets or port.
        host = target
    else:
        host = match.group("v6") or match.group("host") or ""
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _caller_metadata(
    client_id: str | None, client_secret: str | None, bearer_token: str | None
) -> tuple[tuple[str, str], ...]:
    if (client_id is None) != (client_secret is None):
        raise ValueError("client_id and client_secret go together")
    if client_id is not None and client_secret is not None:
        if bearer_token is not None:
            raise ValueError("give either client_id/client_secret or bearer_token, not both")
        basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")
        return (("authorization", f"Basic {basic}"),)
    if bearer_token is not None:
        return bearer_metadata(bearer_token)
    raise ValueError("credentials are required: client_id/client_secret (an app) or bearer_token (an operator)")


def _non_negative(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number")
    return float(value)


_Listener = Callable[..., None]


class _Listeners:
    """Callbacks; one that raises is logged and never stops the subscriber."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._fns: list[_Listener] = []

    def add(self, fn: _Listener) -> Callable[[], None]:
        with self._lock:
            self._fns.append(fn)

        def unsubscribe() -> None:
            with self._lock:
                if fn in self._fns:
                    self._fns.remove(fn)

        return unsubscribe

    def emit(self, *args: Any) -> None:
        with self._lock:
            fns = list(self._fns)
        for fn in fns:
            try:
                fn(*args)
            except Exception:
                # A listener's bug must not stop the subscriber keeping the set current.
                _log.warning("a RevocationSubscriber %s listener raised", self._what, exc_info=True)


class RevocationSubscriber:
    """Keeps a local copy of the broker's live revocations through ``StreamRevocations``.

    Runs the stream on a daemon thread, reconnecting and resuming as needed
    (see the module docstring). Thread-safe: :meth:`is_revoked` and the
    properties may be read from any thread.

    Example::

        subscriber = RevocationSubscriber("127.0.0.1:50051", client_id=..., client_secret=...)
        subscriber.start()
        if not subscriber.wait_ready(5):
            raise RuntimeError("no revocation snapshot yet")
        subscriber.is_revoked(claims)  # from memory
        subscriber.close()

    Usable as a context manager, which starts it and closes it.
    """

    def __init__(
        self,
        target: str | Callable[[], str],
        client_id: str | None = None,
        client_secret: str | None = None,
        bearer_token: str | None = None,
        *,
        channel_credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        cursor: str = "",
        backoff_base: float = 0.2,
        backoff_max: float = 15.0,
        prune_interval: float = 60.0,
        checkpoint_interval: float = 5.0,
        idle_timeout: float | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        """Configure a subscriber; :meth:`start` opens the stream.

        Args:
            target: The broker (``host:port`` or a gRPC target URI), or a
                function called at every (re)connect that returns one: a list
                of replicas to rotate through, or a discovery lookup.
            client_id: The subscribing app's client id (``Basic``), or a
                resource server's (``rs_...``: it then receives only the
                revocations that can affect tokens for its audiences); needs
                ``client_secret``.
            client_secret: That app's or resource server's secret.
            bearer_token: An operator credential, instead of an app's.
            channel_credentials: Transport security, for example
                ``grpc.ssl_channel_credentials()``. Without it the channel is
                plaintext, allowed only to a loopback address: the
                credentials travel on the stream.
            options: gRPC channel options.
            cursor: Resume after this cursor instead of starting with a
                snapshot. The set starts empty, so this only makes sense with
                a set restored by the caller; an expired or unknown cursor
                falls back to a snapshot.
            backoff_base: The first reconnect waits up to this long, in
                seconds; each failure doubles it.
            backoff_max: The longest reconnect wait, in seconds.
            prune_interval: How often expired revocations are forgotten, in
                seconds.
            checkpoint_interval: The broker's checkpoint interval
                (``BATON_STREAM_CHECKPOINT_SECONDS``), in seconds: an idle
                stream still gets a Checkpoint this often.
            idle_timeout: Reconnect, on a new channel and from the cursor,
                when no message (not even a Checkpoint) arrived for this
                long, in seconds: a half-open connection otherwise looks
                alive. ``None`` (the default) is twice
                ``checkpoint_interval``; 0 disables.
            now: The clock, in seconds since the epoch (for ``fresh_at`` and
                pruning).

        Raises:
            ValueError: When credentials are missing, incomplete or of both
                kinds, an option is out of range, or ``target`` is a
                non-loopback address and no ``channel_credentials`` are given.
        """
        self._metadata = _caller_metadata(client_id, client_secret, bearer_token)
        if isinstance(target, str) and channel_credentials is None and not is_loopback_target(target):
            raise ValueError(
                "plaintext is only allowed on loopback: pass channel_credentials "
                "(grpc.ssl_channel_credentials())"
            )
        self._target = target
        self._channel_credentials = channel_credentials
        # A connection of its own: by default gRPC shares one between channels
        # with the same target and options, so a unary client's connection
        # (closed by the broker for oversized metadata, say) would carry the
        # stream too, and a replacement channel could get the same half-open
        # connection back.
        self._options = (*options, ("grpc.use_local_subchannel_pool", 1))
        self._backoff_base = _non_negative(backoff_base, "backoff_base")
        self._backoff_max = _non_negative(backoff_max, "backoff_max")
        interval = _non_negative(checkpoint_interval, "checkpoint_interval")
        if interval == 0:
            raise ValueError("checkpoint_interval must be positive")
        self._idle_timeout = (
            2 * interval if idle_timeout is None else _non_negative(idle_timeout, "idle_timeout")
        )
        self._prune_interval = _non_negative(prune_interval, "prune_interval")
        if self._prune_interval == 0:
            raise ValueError("prune_interval must be positive")
        self._now = now

        # Everything below is guarded by _lock.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._set = RevocationSet()
        # The snapshot being received; replaces _set at SnapshotComplete.
        self._pending: RevocationSet | None = None
        # The last cursor applied to _set; "" means the next connect takes a snapshot.
        self._cursor = cursor
        self._fresh_at: float | None = None
        self._ready = False
        self._state: SubscriberState = "idle"
        self._call: Any = None
        # Why the current call was left by the watchdog (idle), if it was.
        self._left_with: BatonError | None = None
        self._last_message = time.monotonic()
        self._attempt = 0
        self._channel: grpc.Channel | None = None
        self._address = ""

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watchdog: threading.Thread | None = None
        self._on_revocation = _Listeners("revocation")
        self._on_key_set = _Listeners("key set")
        self._on_state_change = _Listeners("state")

    # -- public API -----------------------------------------------------------------

    def start(self) -> None:
        """Open the stream on a daemon thread. Calling it again does nothing.

        Raises:
            RuntimeError: After :meth:`close`.
        """
        with self._lock:
            if self._state == "closed":
                raise RuntimeError("the subscriber is closed")
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="baton-revocation-subscriber", daemon=True
            )
            self._watchdog = threading.Thread(
                target=self._housekeep, name="baton-revocation-housekeeping", daemon=True
            )
        self._thread.start()
        self._watchdog.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the set is first known complete.

        That is ``SnapshotComplete``, or a ``Checkpoint`` when resuming from a
        given cursor.

        Args:
            timeout: The longest wait, in seconds; ``None`` waits for ever
                (or until :meth:`close`).

        Returns:
            True once ready; False on timeout or when closed before.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._ready or self._state == "closed", timeout)
            return self._ready

    def is_revoked(self, facts: RevocationFacts) -> bool:
        """Whether a token is revoked, by the rules of DESIGN §6.

        During a re-snapshot both the old set and the snapshot received so
        far are consulted: either may only add revocations, never lift one.
        """
        with self._lock:
            if self._set.is_revoked(facts):
                return True
            return self._pending is not None and self._pending.is_revoked(facts)

    @property
    def fresh_at(self) -> float | None:
        """The local time (seconds since the epoch) up to which the set is known complete.

        ``None`` before the first snapshot or checkpoint. See the module
        docstring.
        """
        with self._lock:
            return self._fresh_at

    @property
    def cursor(self) -> str:
        """The last cursor applied; empty before the first snapshot completes or after a cursor error."""
        with self._lock:
            return self._cursor

    @property
    def state(self) -> SubscriberState:
        """The current state."""
        with self._lock:
            return self._state

    @property
    def size(self) -> int:
        """The number of entries in the set in force."""
        with self._lock:
            return len(self._set)

    def on_revocation(
        self, fn: Callable[[broker_pb2.Revocation, bool], None]
    ) -> Callable[[], None]:
        """Call ``fn(revocation, snapshot)`` for every revocation received.

        ``snapshot`` is True for an entry of a snapshot, not in force until
        ``SnapshotComplete``. Called on the subscriber's thread; keep it
        short. Returns a function that unsubscribes.
        """
        return self._on_revocation.add(fn)

    def on_key_set(self, fn: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call ``fn(jwks)`` with the new JWK set (a dict) on every ``KeySetChanged``.

        Returns a function that unsubscribes.
        """
        return self._on_key_set.add(fn)

    def on_state_change(
        self, fn: Callable[[SubscriberState, BatonError | None], None]
    ) -> Callable[[], None]:
        """Call ``fn(state, error)`` on every state change.

        ``backoff`` comes with the error that ended the stream, if any.
        Returns a function that unsubscribes.
        """
        return self._on_state_change.add(fn)

    def prune(self) -> int:
        """Forget expired revocations now (also done every ``prune_interval``).

        Returns:
            How many were forgotten.
        """
        now_ms = self._now() * 1000
        with self._lock:
            removed = self._set.prune(now_ms)
            if self._pending is not None:
                removed += self._pending.prune(now_ms)
            return removed

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop: cancel the stream, close the channel and end both threads.

        Waits up to ``timeout`` seconds for the threads to end (not when
        called from a listener, on the subscriber's own thread). Idempotent.
        """
        with self._changed:
            if self._state == "closed":
                return
            self._stop.set()
            call, self._call = self._call, None
            channel, self._channel = self._channel, None
            self._pending = None
            self._state = "closed"
            self._changed.notify_all()
        if call is not None:
            call.cancel()
        if channel is not None:
            channel.close()
        self._on_state_change.emit("closed", None)
        current = threading.current_thread()
        for thread in (self._thread, self._watchdog):
            if thread is not None and thread is not current and thread.is_alive():
                thread.join(timeout)

    def __enter__(self) -> RevocationSubscriber:
        """Start the subscriber and return it."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the subscriber."""
        self.close()

    # -- the stream thread ----------------------------------------------------------

    def _set_state(self, state: SubscriberState, error: BatonError | None = None) -> None:
        """Change state (not past closed) and tell the listeners; call without the lock."""
        with self._changed:
            if self._state == "closed" or (self._state == state and error is None):
                return
            self._state = state
            self._changed.notify_all()
        self._on_state_change.emit(state, error)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                error = self._stream_once()
            except Exception as exc:  # a bug here must not kill the subscriber silently
                _log.warning("the revocation stream failed unexpectedly", exc_info=True)
                error = BatonError(grpc.StatusCode.UNKNOWN, f"unexpected: {exc}")
            if self._stop.is_set():
                break
            # Full jitter: uniform in [0, min(max, base * 2^attempt)].
            with self._lock:
                ceiling = min(self._backoff_max, self._backoff_base * 2 ** min(self._attempt, 30))
                self._attempt += 1
            delay = random.uniform(0, ceiling)
            if error is not None and error.retry_after is not None:
                # RATE_LIMITED / AUTHENTICATION_THROTTLED: an earlier try is
                # refused anyway (and a throttled one prolongs the throttle).
                delay = max(delay, error.retry_after)
            self._set_state("backoff", error)
            if self._stop.wait(delay):
                break

    def _channel_for(self, address: str) -> grpc.Channel:
        with self._lock:
            if self._channel is not None and self._address == address:
                return self._channel
            old, self._channel = self._channel, None
        if old is not None:
            old.close()
        if self._channel_credentials is None:
            channel = grpc.insecure_channel(address, options=self._options)
        else:
            channel = grpc.secure_channel(address, self._channel_credentials, options=self._options)
        with self._lock:
            if self._stop.is_set():
                channel.close()
                raise _Stopped
            self._channel, self._address = channel, address
        return channel

    def _stream_once(self) -> BatonError | None:
        """One connection: open, apply messages until it ends; return why it ended."""
        target = self._target
        address = target() if callable(target) else target
        if self._channel_credentials is None and not is_loopback_target(address):
            return BatonError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "plaintext is only allowed on loopback: pass channel_credentials",
            )
        try:
            stub = broker_pb2_grpc.BrokerServiceStub(self._channel_for(address))
        except _Stopped:
            return None
        except Exception as exc:
            return BatonError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot open a channel: {exc}")
        with self._lock:
            if self._stop.is_set():
                return None
            self._pending = RevocationSet() if self._cursor == "" else None
            request = broker_pb2.StreamRevocationsRequest(cursor=self._cursor)
            call = stub.StreamRevocations(request, metadata=self._metadata)
            self._call = call
            self._left_with = None
            self._last_message = time.monotonic()
        self._set_state("connecting")
        error: BatonError | None = None
        stale_channel: grpc.Channel | None = None
        try:
            for message in call:
                if not self._apply(call, message):
                    break
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
        finally:
            with self._lock:
                if self._call is call:
                    self._call = None
                elif self._left_with is not None:
                    # Left by the watchdog: its reason, not the CANCELLED it caused.
                    error = self._left_with
                    # The connection may be half-open: the next stream gets a
                    # new channel rather than this one back.
                    stale_channel, self._channel = self._channel, None
                # A snapshot cut short is discarded whole; the next connect takes a new one.
                self._pending = None
                if error is not None and error.reason in _CURSOR_RESET_REASONS:
                    self._cursor = ""
            call.cancel()
            if stale_channel is not None:
                stale_channel.close()
        return error

    def _apply(self, call: Any, message: broker_pb2.StreamRevocationsResponse) -> bool:
        """Apply one message of ``call``; False when the call was left (ignore it)."""
        event = message.WhichOneof("event")
        revocation: broker_pb2.Revocation | None = None
        snapshot = False
        state: SubscriberState | None = None
        with self._changed:
            if self._call is not call:
                return False
            self._attempt = 0
            self._last_message = time.monotonic()
            if event == "revocation":
                revocation = message.revocation
                if self._pending is not None:
                    self._pending.add(revocation)
                    snapshot = True
                    state = "snapshot"
                else:
                    self._set.add(revocation)
                    self._cursor = revocation.cursor
                    state = "live"
            elif event == "snapshot_complete":
                if self._pending is not None:
                    self._set = self._pending
                self._pending = None
                self._cursor = message.snapshot_complete.cursor
                self._fresh(self._now())
                state = "live"
            elif event == "checkpoint":
                # None is sent before SnapshotComplete; one would say nothing
                # about an incomplete set.
                if self._pending is not None:
                    return True
                checkpoint = message.checkpoint
                self._cursor = checkpoint.cursor
                now = self._now()
                observed = now
                if checkpoint.HasField("observe_time"):
                    observed = checkpoint.observe_time.seconds + checkpoint.observe_time.nanos / 1e9
                self._fresh(min(now, observed))
                state = "live"
        if state is not None:
            self._set_state(state)
        if revocation is not None:
            self._on_revocation.emit(revocation, snapshot)
        elif event == "key_set_changed":
            jwks = _parse_jwks(message.key_set_changed.jwks_json)
            if jwks is not None:
                self._on_key_set.emit(jwks)
        return True

    def _fresh(self, at: float) -> None:
        """Advance fresh_at (never backwards) and mark ready; with the lock held."""
        self._fresh_at = at if self._fresh_at is None else max(self._fresh_at, at)
        self._ready = True
        self._changed.notify_all()

    # -- the housekeeping thread ----------------------------------------------------

    def _housekeep(self) -> None:
        """Prune on an interval, and leave a call that has been silent too long.

        Sleeps until the next of the two is due (not on a fixed tick), so a
        silent stream is left right at ``idle_timeout``.
        """
        next_prune = time.monotonic() + self._prune_interval
        while True:
            now = time.monotonic()
            wake = next_prune
            if self._idle_timeout > 0:
                with self._lock:
                    # Without a call, look again after a whole timeout: a call
                    # opened meanwhile is due no earlier than that.
                    since = self._last_message if self._call is not None else now
                wake = min(wake, since + self._idle_timeout)
            if self._stop.wait(max(wake - now, 0.01)):
                return
            now = time.monotonic()
            if now >= next_prune:
                next_prune = now + self._prune_interval
                self.prune()
            if self._idle_timeout == 0:
                continue
            with self._lock:
                call = self._call
                if call is None or now - self._last_message < self._idle_timeout:
                    continue
                self._call = None
                self._left_with = BatonError(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"no message from the broker in {self._idle_timeout:g} s",
                )
            call.cancel()


class _Stopped(Exception):
    """The subscriber was closed while connecting."""


def _parse_jwks(text: str) -> dict[str, Any] | None:
    try:
        jwks = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(jwks, Mapping) and isinstance(jwks.get("keys"), list):
        return dict(jwks)
    return None
