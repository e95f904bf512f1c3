#!/usr/bin/env bash
# The TypeScript SDK as a user gets it: builds sdk/ts, packs it with
# `npm pack`, installs the tarball into a temporary project (dependencies
# from the npm registry, through the local cache when it has them), compiles
# sdk/ts/smoke/smoke.ts there with a strict tsconfig (library .d.ts checked
# too) and runs it with plain node against a live broker. Needs BATON_ADDR,
# BATON_CLIENT_ID, BATON_CLIENT_SECRET, BATON_AUDIENCE, BATON_SCOPE, BATON_OPERATOR_TOKEN,
# BATON_RS_ID and BATON_RS_SECRET
# (BATON_JWKS_URL optional), as test/sdk/run-live.ts sets them:
#
#   npx tsx test/sdk/run-live.ts bash scripts/sdk-ts-package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

[ -x node_modules/.bin/tsc ] || { echo "$(basename "$0"): typescript comes from node_modules: run npm ci first" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/baton-sdk-ts.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== pack sdk/ts (${SECONDS}s)" >&2
# The build prepack would run, here so that its errors show; then the pack alone.
rm -rf sdk/ts/dist
node_modules/.bin/tsc -p sdk/ts/tsconfig.build.json
(cd sdk/ts && npm pack --silent --ignore-scripts --pack-destination "$work" >/dev/null)
tarball=$(echo "$work"/*.tgz)
[ -f "$tarball" ] || { echo "npm pack made no tarball" >&2; exit 1; }
contents=$(tar -tzf "$tarball")
for f in package/dist/index.js package/dist/index.d.ts package/LICENSE package/README.md; do
	grep -qx "$f" <<<"$contents" || { echo "the tarball has no ${f#package/}" >&2; exit 1; }
done
if grep -E '^package/(src|test|smoke)/|\.test\.' <<<"$contents"; then
	echo "the tarball ships sources or tests (above)" >&2
	exit 1
fi

echo "== install the tarball into a temporary project (${SECONDS}s)" >&2
app=$work/app
mkdir "$app"
cp sdk/ts/smoke/smoke.ts sdk/ts/smoke/tsconfig.json "$app"/
cat >"$app/package.json" <<'JSON'
{ "name": "baton-sdk-smoke", "version": "0.0.0", "private": true, "type": "module" }
JSON
# @types/node at the root's version for the consumer's compile; the compiler
# itself is the root's.
types_version=$(node -p 'require("./node_modules/@types/node/package.json").version')
(cd "$app" && npm install --silent --prefer-offline --no-audit --no-fund "$tarball" "@types/node@$types_version")
# The tarball's copy, not a link back into this repository.
[ ! -L "$app/node_modules/@baton-dev/sdk" ] || { echo "@baton-dev/sdk is a link, not the tarball" >&2; exit 1; }

echo "== compile with a strict tsconfig (${SECONDS}s)" >&2
"$root/node_modules/.bin/tsc" -p "$app/tsconfig.json"

echo "== run with plain node (${SECONDS}s)" >&2
(cd "$app" && node dist/smoke.js)
echo "== passed in ${SECONDS}s" >&2
