#!/usr/bin/env bash
# Installs what the SDK tests need: the Python SDK (editable, with pytest)
# into .tools/venv at the versions in sdk/python/constraints.txt, and the Go
# SDK's modules. Idempotent; when nothing changed it takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

ensure_venv
# Reinstall only when the pins or the package definition change.
stamp="$VENV/.sdk-setup.sha256"
want=$(cat "$PY_CONSTRAINTS" sdk/python/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] ||
	! "$VENV/bin/python" -c 'import baton, grpc_tools, pytest' 2>/dev/null; then
	echo "installing sdk/python[test] into $VENV" >&2
	pip_install -e 'sdk/python[test]' grpcio-tools
	# The distribution was called baton-sdk before (a name PyPI gives to
	# another project): drop that stale editable install.
	if "$VENV/bin/python" -m pip show --quiet baton-sdk >/dev/null 2>&1; then
		"$VENV/bin/python" -m pip uninstall --quiet --yes baton-sdk
	fi
	echo "$want" >"$stamp"
fi

command -v go >/dev/null || die "go is needed for the Go SDK"
(cd sdk/go && go mod download)
