"""Figures for issue 10 (SDK side), printed as medians: revoking N tokens with
one BrokerClient.revoke_many call against N revoke calls, against a live
broker (as the operator, so an app's rate limit does not enter into it).

    npx tsx test/sdk/run-live.ts .tools/venv/bin/python sdk/python/bench/revoke_many.py [--n 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import baton


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    addr, operator = os.environ["BATON_ADDR"], os.environ["BATON_OPERATOR_TOKEN"]
    audience, scope = os.environ["BATON_AUDIENCE"], os.environ["BATON_SCOPE"]
    with baton.AdminClient(addr, operator) as admin:
        # Its own app with a rate limit high enough for the issues below.
        made = admin.create_app(
            f"bench-{time.time_ns()}", [scope], [audience], rate_limit_per_second=1_000_000,
            rate_limit_burst=1_000_000,
        )
    many, single = [], []
    with (
        baton.BrokerClient(addr, client_id=made.app.app_id, client_secret=made.client_secret, timeout=60) as app,
        baton.BrokerClient(addr, bearer_token=operator, timeout=60) as op,
    ):
        def issue_ids() -> list[str]:
            return [
                app.issue(f"bench-{i}-{time.time_ns()}", [scope], [audience]).claims.token_id
                for i in range(args.n)
            ]

        for _ in range(args.rounds):
            ids = issue_ids()
            start = time.perf_counter()
            op.revoke_many([("token", i) for i in ids], reason="bench")
            many.append(time.perf_counter() - start)

            ids = issue_ids()
            start = time.perf_counter()
            for i in ids:
                op.revoke("token", i, reason="bench")
            single.append(time.perf_counter() - start)
    print(f"revoke {args.n} tokens, median of {args.rounds} rounds:")
    print(f"  one revoke_many call: {statistics.median(many) * 1e3:8.1f} ms")
    print(f"  {args.n} revoke calls:   {statistics.median(single) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
