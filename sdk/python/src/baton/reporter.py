"""Access reporting: tell the broker what this resource server decided.

:class:`AccessReporter` sends access decisions to the broker
(``BrokerService.ReportAccess``), which stores each as an audit event
(``access.allowed`` / ``access.denied``) with the token's delegation
lineage, so the audit trail shows use as well as issuance.

Reporting must never slow or break verification: :meth:`AccessReporter.report`
only appends the decision to a bounded in-memory buffer under a lock and
returns, without any I/O. A daemon thread sends the buffer in batches (at
most 500, the broker's limit) every ``flush_interval`` seconds, or as soon as
a batch fills. When the broker is unreachable (``UNAVAILABLE``, a deadline,
``RATE_LIMITED``) the batch stays at the head of the buffer and is retried
with exponential backoff; once the buffer is full, new decisions are dropped
and counted. The broker takes a batch all or nothing; when it refuses one as
wrong (a report about a token it does not know: one long expired and pruned,
say) it names the report, which is discarded and counted as rejected, and
the rest is sent again. A refusal naming none discards the batch.

The middleware (:class:`baton.BatonASGIMiddleware`,
:class:`baton.BatonWSGIMiddleware`) and the interceptors
(:class:`baton.BatonServerInterceptor`, :class:`baton.BatonAioServerInterceptor`)
report every decision about a token whose signature verified when given
``reporter=``.
"""

from __future__ import annotations

import collections
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc

from baton.client import BrokerClient
from baton.errors import BatonError
from baton.v1 import broker_pb2

#: The most reports one ``ReportAccess`` call may carry: the broker's limit.
MAX_ACCESS_REPORT_BATCH = 500

# Failures that go away by themselves: the batch is kept and retried.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        # The reporter's own channel closing under a send: kept, not rejected.
        grpc.StatusCode.CANCELLED,
    }
)
# Control characters would make the broker refuse the whole batch.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _clean(text: str, limit: int) -> str:
    return _CONTROL.sub("?", text[:limit])


class _Decision(NamedTuple):
    token_id: str
    agent_id: str
    allowed: bool
    scope: str
    resource: str
    reason: str
    outcome: str
    audience: str | None
    decide_time: float


@dataclass(frozen=True)
class AccessReporterStats:
    """What an :class:`AccessReporter` has done so far."""

    #: Reports the broker stored.
    sent: int
    #: Decisions dropped because the buffer was full (or the reporter closed).
    dropped: int
    #: Send attempts that failed (each retry counts).
    failed_batches: int
    #: Reports discarded because the broker refused them as invalid.
    rejected: int
    #: Decisions waiting to be sent.
    pending: int


def _positive(value: Any, name: str, upper: float | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number")
    if upper is not None and value > upper:
        raise ValueError(f"{name} must be at most {upper}")
    return value


class AccessReporter:
    """Reports access decisions to the broker in the background.

    Example::

        reporter = baton.AccessReporter("broker:7443", rs_id, rs_secret, audience="ehr-api",
                                        channel_credentials=grpc.ssl_channel_credentials())
        app = baton.BatonASGIMiddleware(app, verifier, reporter=reporter)  # reports every decision
        reporter.report(token_id, agent_id, False, reason="consent_missing", resource="GET /records/P-1")
        reporter.close()  # flushes, up to 5 s

    Usable as a context manager; otherwise call :meth:`close`.
    """

    def __init__(
        self,
        target: str | BrokerClient,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        audience: str,
        channel_credentials: grpc.ChannelCredentials | None = None,
        buffer_size: int = 10_000,
        batch_size: int = MAX_ACCESS_REPORT_BATCH,
        flush_interval: float = 1.0,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 5.0,
        on_error: Callable[[BatonError], None] | None = None,
    ) -> None:
        """Start the reporter (the channel connects on the first send).

        Args:
            target: The broker's address, or a :class:`baton.BrokerClient`
                made with this resource server's credentials (shared: the
                reporter does not close it).
            client_id: With an address: this resource server's client id
                (``rs_...``).
            client_secret: Its secret.
            audience: The audience this resource server serves, used when a
                decision names none.
            channel_credentials: With an address: transport security
                (``None`` is plaintext, for a broker on loopback).
            buffer_size: The most decisions held; past it new ones are
                dropped and counted.
            batch_size: Reports per call, 1 to 500.
            flush_interval: How often the buffer is sent, in seconds.
            min_backoff: The first retry's delay after a failed send, in
                seconds, doubling up to ``max_backoff``.
            max_backoff: The longest delay between retries, in seconds.
            timeout: Each call's deadline, in seconds.
            on_error: Told of every failed send (for logging), on the
                reporter's thread; must not block.

        Raises:
            TypeError: When ``audience`` or the credentials are not strings.
            ValueError: When a size or duration is out of range, or the
                credentials are missing.
        """
        if not isinstance(audience, str) or not audience:
            raise TypeError("audience must be a non-empty string")
        if isinstance(target, BrokerClient):
            self._broker, self._owns_broker = target, False
        else:
            if not isinstance(target, str) or not isinstance(client_id, str) or not isinstance(client_secret, str):
                raise TypeError("give the broker's address with client_id and client_secret as strings, or a BrokerClient")
            self._broker = BrokerClient(
                target, client_id, client_secret, timeout=timeout, channel_credentials=channel_credentials
            )
            self._owns_broker = True
        self._audience = audience
        self._buffer_size = int(_positive(buffer_size, "buffer_size"))
        self._batch_size = int(_positive(batch_size, "batch_size", MAX_ACCESS_REPORT_BATCH))
        self._interval = _positive(flush_interval, "flush_interval")
        self._min_backoff = _positive(min_backoff, "min_backoff")
        self._max_backoff = _positive(max_backoff, "max_backoff")
        self._timeout = _positive(timeout, "timeout")
        self._on_error = on_error
        # Oldest first; the head batch stays here until the broker has it.
        self._buffer: collections.deque[tuple[Any, ...]] = collections.deque()
        self._lock = threading.Lock()
        # One sender at a time: the background thread, or flush().
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._retry_at = 0.0
        self._backoff = 0.0
        self._sent = self._dropped = self._failed = self._rejected = 0
        self._thread = threading.Thread(target=self._run, name="baton-access-reporter", daemon=True)
        self._thread.start()

    def report(
        self,
        token_id: str,
        agent_id: str,
        allowed: bool,
        *,
        scope: str = "",
        resource: str = "",
        reason: str = "",
        outcome: str = "",
        audience: str | None = None,
        decide_time: float | None = None,
    ) -> bool:
        """Queue one decision and return at once: no I/O.

        Args:
            token_id: ``jti`` of the token presented.
            agent_id: ``sub`` of the token presented (the agent).
            allowed: True when the request was let through.
            scope: The scope the request needed.
            resource: What was accessed, e.g. ``GET /records/P-1042`` (cut
                to 512 characters). Never a credential.
            reason: Why it was denied: a TokenStatus name
                (``TOKEN_STATUS_REVOKED``) or a code of your own (cut to 128).
            outcome: The outcome, e.g. an HTTP or gRPC status (cut to 128).
            audience: The audience checked; the reporter's by default.
            decide_time: When the decision was made (seconds since the
                epoch); now by default.

        Returns:
            False when the decision was dropped (buffer full, or closed).

        Raises:
            TypeError: When a text argument is not a string or ``allowed``
                not a bool.
        """
        if not isinstance(token_id, str) or not isinstance(agent_id, str) or not isinstance(allowed, bool):
            raise TypeError("token_id and agent_id must be strings and allowed a bool")
        for value in (scope, resource, reason, outcome):
            if not isinstance(value, str):
                raise TypeError(f"scope, resource, reason and outcome must be strings, not {type(value).__name__}")
        if audience is not None and not isinstance(audience, str):
            raise TypeError("audience must be a string")
        with self._lock:
            if self._closed or len(self._buffer) >= self._buffer_size:
                self._dropped += 1
                return False
            # A plain tuple (the fields of _Decision): the cheapest thing to build here.
            self._buffer.append(
                (token_id, agent_id, allowed, scope, resource, reason, outcome, audience,
                 time.time() if decide_time is None else decide_time)
            )
            # Wake the sender once per batch filled, not on every call (Event.set takes a lock).
            full = len(self._buffer) % self._batch_size == 0
        if full:
            self._wake.set()
        return True

    @property
    def stats(self) -> AccessReporterStats:
        """The counters."""
        with self._lock:
            return AccessReporterStats(self._sent, self._dropped, self._failed, self._rejected, len(self._buffer))

    def flush(self, timeout: float = 5.0) -> bool:
        """Send everything buffered now, ignoring the backoff, for at most ``timeout`` seconds.

        Returns:
            True when the buffer is empty; False when the time ran out (the
            rest stays buffered).
        """
        deadline = time.monotonic() + timeout
        while self.stats.pending and time.monotonic() < deadline:
            if not self._send_lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
                break
            try:
                emptied = self._send_all(deadline)
            finally:
                self._send_lock.release()
            if not emptied:
                time.sleep(max(min(self._min_backoff, deadline - time.monotonic()), 0))
        return self.stats.pending == 0

    def close(self, timeout: float = 5.0) -> bool:
        """Stop taking decisions, send what is buffered (for at most ``timeout`` seconds), and stop.

        Closes the broker client when the reporter made it. Later reports
        are dropped and counted.

        Returns:
            True when everything was sent.
        """
        with self._lock:
            self._closed = True
        drained = self.flush(timeout)
        self._wake.set()
        self._thread.join(timeout=max(timeout, 0.1))
        if self._owns_broker:
            self._broker.close()
        return drained

    def __enter__(self) -> AccessReporter:
        """Return the reporter itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the reporter."""
        self.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with self._lock:
                if self._closed:
                    return
            if time.monotonic() < self._retry_at or not self._send_lock.acquire(blocking=False):
                continue
            try:
                if not self._send_all(None):
                    # Jitter: resource servers coming back together do not retry in step.
                    self._retry_at = time.monotonic() + self._backoff * (0.5 + random.random() / 2)
            finally:
                self._send_lock.release()

    def _wire(self, d: tuple[Any, ...]) -> broker_pb2.AccessReport:
        d = _Decision(*d)
        report = broker_pb2.AccessReport(
            token_id=d.token_id,
            agent_id=d.agent_id,
            audience=d.audience or self._audience,
            scope=d.scope,
            resource=_clean(d.resource, 512),
            allowed=d.allowed,
            reason=_clean(d.reason, 128),
            outcome=_clean(d.outcome, 128),
        )
        report.decide_time.FromNanoseconds(int(d.decide_time * 1e9))
        return report

    def _send_all(self, deadline: float | None) -> bool:
        """Send batches from the head until the buffer is empty (True) or a send must be retried later (False)."""
        while deadline is None or time.monotonic() < deadline:
            with self._lock:
                batch = [self._buffer[i] for i in range(min(len(self._buffer), self._batch_size))]
            if not batch:
                return True
            timeout = self._timeout if deadline is None else max(min(self._timeout, deadline - time.monotonic()), 0.001)
            try:
                self._broker.report_access([self._wire(d) for d in batch], timeout=timeout)
            except (BatonError, ValueError) as failure:
                # ValueError: grpcio's answer on a channel already closed (close() ran).
                error = failure if isinstance(failure, BatonError) else BatonError(grpc.StatusCode.CANCELLED, str(failure))
                retry = error.code in _RETRYABLE
                with self._lock:
                    self._failed += 1
                    if not retry:
                        # The broker names the report it refused: drop that one and send
                        # the rest again. Without an index the whole batch is at fault.
                        index = error.metadata.get("index", "")
                        if index.isdigit() and int(index) < len(batch):
                            self._rejected += 1
                            del self._buffer[int(index)]
                        else:
                            self._rejected += len(batch)
                            for _ in batch:
                                self._buffer.popleft()
                if self._on_error is not None:
                    try:
                        self._on_error(error)
                    except Exception:  # noqa: BLE001 - a logging hook must not stop reporting
                        pass
                if retry:
                    self._backoff = min(self._max_backoff, max(self._min_backoff, self._backoff * 2))
                    return False
                continue
            with self._lock:
                self._sent += len(batch)
                for _ in batch:
                    self._buffer.popleft()
            self._backoff = 0.0
        return False
