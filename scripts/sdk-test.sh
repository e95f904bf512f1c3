#!/usr/bin/env bash
# Runs the Python and Go SDK tests (after scripts/sdk-setup.sh). The live
# tests need a broker and BATON_ADDR, BATON_CLIENT_ID, BATON_CLIENT_SECRET,
# BATON_AUDIENCE and BATON_SCOPE; without them they fail. Runs both suites
# and fails if either does.
set -uo pipefail
cd "$(dirname "$0")/.."

failed=()
echo "== sdk/python" >&2
.tools/venv/bin/python -m pytest -q sdk/python/tests || failed+=(python)
echo "== sdk/go" >&2
# -count=1: never a cached pass, the broker is outside go test's view.
(cd sdk/go && go test -count=1 ./...) || failed+=(go)

if [ ${#failed[@]} -gt 0 ]; then
	echo "SDK tests failed: ${failed[*]}" >&2
	exit 1
fi
