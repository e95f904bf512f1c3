"""What AccessReporter.report() costs on the verification path, printed as medians.

    .tools/venv/bin/python sdk/python/bench/access_report.py

Nanoseconds per call (median of rounds of the mean per call): a decision
buffered, and one dropped because the buffer is full. The broker address is
dead, so nothing is ever sent; the figure is what a request pays.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import per_call_us  # noqa: E402  (beside this script)

import baton  # noqa: E402

N = 100_000
TOKEN_ID = "tok_6f1d9c0e2b7a4c3d"
AGENT_ID = "spiffe://baton.local/app/app_Nd1pJgiWaarTB3IuL1LXj0/task/visit-77/agent/a1b2c3"


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    # Room for every call of every round: each is buffered.
    roomy = baton.AccessReporter(dead, "rs_bench", "secret", audience="ehr-api", buffer_size=N * 8, flush_interval=3600)
    report = roomy.report

    def one() -> None:
        report(TOKEN_ID, AGENT_ID, True, scope="read:records:P-1042", resource="GET /records/P-1042", outcome="200")

    buffered = per_call_us(one, N)
    full = baton.AccessReporter(dead, "rs_bench", "secret", audience="ehr-api", buffer_size=1, flush_interval=3600)
    report = full.report
    dropped = per_call_us(one, N)
    print(
        f"Python AccessReporter.report(): buffered {buffered * 1000:.0f} ns/call, "
        f"dropped (buffer full) {dropped * 1000:.0f} ns/call (median of 7 rounds of {N})"
    )
    roomy.close(timeout=0.01)
    full.close(timeout=0.01)


if __name__ == "__main__":
    main()
