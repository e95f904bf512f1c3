#!/usr/bin/env bash
# The cost of an access reporter's report() on the verification path, in
# each SDK: ns per call, a decision buffered and one dropped (buffer full).
# Nothing is sent (the broker address is dead). Needs scripts/sdk-setup.sh.
#
#   bash bench/access-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsx bench/access-report.ts
.tools/venv/bin/python sdk/python/bench/access_report.py
# Go: the median of 7 benchmark runs of each.
out=$(cd sdk/go && go test -run '^$' -bench 'BenchmarkReport(Buffered|Dropped)$' -count 7 ./baton/)
median() { grep "^$1-" <<<"$out" | awk '{ print $3 }' | sort -n | sed -n 4p; }
echo "Go Reporter.Report(): buffered $(median BenchmarkReportBuffered) ns/call, dropped (buffer full) $(median BenchmarkReportDropped) ns/call (median of 7 runs)"
