#!/usr/bin/env bash
# Fails when the committed generated code is not what the protos and the
# pinned plugins produce: regenerates, then lists what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

scripts/generate.sh
changes=$(git status --porcelain --untracked-files=all -- "${GENERATED_DIRS[@]}")
if [ -n "$changes" ]; then
	echo "generated code is out of date; run 'npm run generate' and commit:" >&2
	echo "$changes" >&2
	exit 1
fi
echo "generated code is up to date"
