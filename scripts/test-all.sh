#!/usr/bin/env bash
# Every check, in the order CI runs them (`npm test`):
# buf format/lint/breaking -> generate and fail on diff -> typecheck ->
# unit -> integration -> e2e -> SDK tests (TypeScript, Python, Go) against a
# live broker -> the TypeScript and Python packages built and installed.
# Stops at the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
stage() { printf '\n== %s\n' "$*"; }
vitest() {
	local name=$1
	shift
	npx vitest run "$@" --reporter=default --reporter=json --outputFile.json="$results/$name.json"
}

stage "buf format, lint, breaking"
npx buf format --diff --exit-code
npx buf lint
# Against the previous commit (CI runs on a clean clone of main, where main is
# HEAD itself); skipped only when there is none or it had no contract.
if git cat-file -e HEAD~1:proto/baton/v1/broker.proto 2>/dev/null; then
	npx buf breaking proto --against '.git#ref=HEAD~1,subdir=proto'
fi

stage "generated code is fresh"
npm run --silent generate:check

stage "typecheck"
npx tsc -p .

stage "unit"
vitest unit test/unit
stage "integration"
vitest integration test/integration
stage "e2e"
vitest e2e test/e2e

stage "SDKs against a live broker"
vitest sdk-ts sdk/ts
bash scripts/sdk-setup.sh
npx tsx test/sdk/run-live.ts

stage "grpcurl through server reflection"
npx tsx test/sdk/run-live.ts bash scripts/grpcurl-check.sh

stage "the compiled broker under the Node release the Dockerfile pins"
bash scripts/image-node-check.sh

stage "SDK packages: built, installed and run as a user would"
npx tsx test/sdk/run-live.ts bash scripts/sdk-ts-package.sh
npx tsx test/sdk/run-live.ts bash scripts/sdk-python-package.sh

# One closing line for the TypeScript suites (pytest and go test print their own).
node -e '
  const fs = require("fs"), dir = process.argv[1];
  let passed = 0, failed = 0, skipped = 0;
  for (const f of fs.readdirSync(dir)) {
    const r = JSON.parse(fs.readFileSync(`${dir}/${f}`, "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`\nvitest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed > 0 ? 1 : 0);
' "$results"
