"""AccessReporter without a broker: report() never waits on the network, the
buffer holds its bound, drops and failed sends are counted, flush and close
give up at their deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

import baton


def wait_for(what: str, cond) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 10
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def dead_address() -> str:
    """An address where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def hanging_broker() -> Iterator[tuple[str, list[socket.socket]]]:
    """A listener that accepts connections and never answers: a send to it hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}", accepted
    finally:
        listener.close()
        for c in accepted:
            c.close()


def test_report_does_not_wait_on_the_network(hanging_broker: tuple[str, list[socket.socket]]) -> None:
    address, accepted = hanging_broker
    reporter = baton.AccessReporter(
        address, "rs_x", "secret", audience="ehr-api", batch_size=10, buffer_size=100, flush_interval=3600, timeout=60
    )
    try:
        for _ in range(10):
            assert reporter.report("t", "a", True)
        # The full batch is being sent, to a broker that never answers.
        wait_for("the send to start", lambda: accepted)
        # Reports keep returning while that send hangs, up to the bound.
        kept = [reporter.report("t", "a", True) for _ in range(100)]
        assert kept == [True] * 90 + [False] * 10
        stats = reporter.stats
        assert (stats.pending, stats.dropped, stats.sent, stats.failed_batches) == (100, 10, 0, 0)
    finally:
        reporter.close(timeout=0.05)


def test_unreachable_broker_keeps_the_bound_and_counts(dead_address: str) -> None:
    errors: list[baton.BatonError] = []
    reporter = baton.AccessReporter(
        dead_address, "rs_x", "secret", audience="ehr-api", batch_size=50, buffer_size=100,
        flush_interval=0.01, min_backoff=0.01, max_backoff=0.05, timeout=1, on_error=errors.append,
    )
    kept = sum(reporter.report("t", "a", True) for _ in range(150))
    assert kept == 100
    wait_for("retries", lambda: reporter.stats.failed_batches >= 2)
    stats = reporter.stats
    assert (stats.pending, stats.dropped, stats.sent, stats.rejected) == (100, 50, 0, 0)
    assert errors[0].reason == "UNAVAILABLE" or errors[0].code.name == "UNAVAILABLE"
    assert reporter.flush(timeout=0.2) is False
    assert reporter.close(timeout=0.05) is False
    assert reporter.report("t", "a", True) is False
    assert reporter.stats.dropped == 51


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError):
        baton.AccessReporter("127.0.0.1:1", "rs_x", "s", audience="")
    with pytest.raises(ValueError):
        baton.AccessReporter("127.0.0.1:1", "rs_x", "s", audience="a", batch_size=501)
    with pytest.raises(TypeError):
        baton.AccessReporter("127.0.0.1:1", audience="a")
    reporter = baton.AccessReporter("127.0.0.1:1", "rs_x", "s", audience="a")
    try:
        with pytest.raises(TypeError):
            reporter.report("t", "a", "yes")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            reporter.report(["t"], "a", True)  # type: ignore[arg-type]
    finally:
        reporter.close(timeout=0.01)
