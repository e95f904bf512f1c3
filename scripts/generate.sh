#!/usr/bin/env bash
# Regenerates all code from the protos: TypeScript (server/gen,
# sdk/ts/src/gen), Python (sdk/python/src/baton/v1) and Go (sdk/go/batonv1),
# and the descriptors server reflection serves (server/gen/descriptors.binpb).
# Installs the pinned plugins first when missing; see buf.gen.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

[ -x node_modules/.bin/buf ] && [ -x node_modules/.bin/protoc-gen-ts_proto ] ||
	die "buf and ts-proto come from node_modules: run npm ci first"
ensure_python_codegen
ensure_go_codegen

# Start from empty directories so a removed proto leaves no stale file.
rm -rf "${GENERATED_DIRS[@]}"
node_modules/.bin/buf generate
# The descriptors server reflection serves (server/transport/grpc-server.ts):
# every file with its imports and comments.
node_modules/.bin/buf build --as-file-descriptor-set -o server/gen/descriptors.binpb
