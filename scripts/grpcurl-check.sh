#!/usr/bin/env bash
# The contract as a client with no .proto files sees it: grpcurl, through
# server reflection alone, describes the services and the messages that use
# google.protobuf types, calls Issue and Validate, and prints a refusal's
# google.rpc.ErrorInfo decoded. Needs a live broker and an app whose scope
# ceiling covers BATON_SCOPE but not write:records:*, as test/sdk/run-live.ts
# provides:
#
#   npx tsx test/sdk/run-live.ts bash scripts/grpcurl-check.sh
#
# Installs the pinned grpcurl into .tools/bin first (scripts/tools.sh).
# Credentials and tokens never reach grpcurl's command line or this output:
# the header comes from the environment (-expand-headers), request bodies
# from stdin, and printed answers have tokens redacted.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

for v in BATON_ADDR BATON_CLIENT_ID BATON_CLIENT_SECRET BATON_AUDIENCE BATON_SCOPE; do
	[ -n "${!v:-}" ] || die "$v is not set; run through test/sdk/run-live.ts"
done
ensure_grpcurl

BATON_BASIC=$(printf '%s:%s' "$BATON_CLIENT_ID" "$BATON_CLIENT_SECRET" | base64 -w0)
export BATON_BASIC

failed=0
out=""

redact() { sed -E 's/("(accessToken|token)": ")[^"]*"/\1<redacted>"/g'; }

# grpcurl_run ARGS...: runs grpcurl (plaintext, request body on stdin); sets
# `out` (stdout and stderr) and `rc`.
grpcurl_run() {
	rc=0
	out=$(.tools/bin/grpcurl -plaintext -max-time 10 "$@" 2>&1) || rc=$?
}

# expect NAME WANT_RC TEXT...: the last grpcurl_run exited WANT_RC ("0" or
# "fail") and its output holds every TEXT.
expect() {
	local name=$1 want=$2 text bad=""
	shift 2
	if [ "$want" = 0 ] && [ "$rc" -ne 0 ]; then bad="exit status $rc, want 0"; fi
	if [ "$want" = fail ] && [ "$rc" -eq 0 ]; then bad="exit status 0, want a failure"; fi
	for text in "$@"; do
		grep -qF -- "$text" <<<"$out" || bad="${bad:+$bad; }missing: $text"
	done
	if [ -n "$bad" ]; then
		echo "FAIL $name: $bad" >&2
		redact <<<"$out" | sed 's/^/    /' >&2
		failed=1
	else
		echo "ok   $name"
	fi
}

# expect_json NAME JQ_ARGS... FILTER: the last output is JSON for which the
# jq FILTER holds.
expect_json() {
	local name=$1
	shift
	if jq -e "$@" <<<"$out" >/dev/null 2>&1; then
		echo "ok   $name"
	else
		echo "FAIL $name: does not hold: ${*: -1}" >&2
		redact <<<"$out" | sed 's/^/    /' >&2
		failed=1
	fi
}

grpcurl_run "$BATON_ADDR" list
expect "list" 0 baton.v1.BrokerService baton.v1.AdminService

grpcurl_run "$BATON_ADDR" describe baton.v1.BrokerService
expect "describe baton.v1.BrokerService" 0 \
	"baton.v1.BrokerService is a service:" \
	"rpc Issue ( .baton.v1.IssueRequest ) returns ( .baton.v1.IssueResponse );" \
	"rpc Validate ( .baton.v1.ValidateRequest ) returns ( .baton.v1.ValidateResponse );"

grpcurl_run "$BATON_ADDR" describe baton.v1.IssueRequest
expect "describe baton.v1.IssueRequest (google.protobuf.Duration)" 0 \
	"baton.v1.IssueRequest is a message:" ".google.protobuf.Duration ttl = 6;"

grpcurl_run "$BATON_ADDR" describe google.rpc.ErrorInfo
expect "describe google.rpc.ErrorInfo" 0 "google.rpc.ErrorInfo is a message:" "string reason = 1;"

# Issue as the app, with a Duration in JSON form.
request=$(jq -nc --arg s "$BATON_SCOPE" --arg a "$BATON_AUDIENCE" \
	'{task_id: "grpcurl-check", scopes: [$s], audiences: [$a], ttl: "120s"}')
grpcurl_run -expand-headers -H 'authorization: Basic ${BATON_BASIC}' -d @ "$BATON_ADDR" baton.v1.BrokerService/Issue <<<"$request"
expect "Issue" 0 '"accessToken": "' '"taskId": "grpcurl-check"'
expect_json "Issue: the claims hold what was asked" \
	--arg s "$BATON_SCOPE" --arg a "$BATON_AUDIENCE" '.claims.scopes == [$s] and .claims.audiences == [$a]'
token=$(jq -r '.accessToken // empty' <<<"$out" 2>/dev/null || true)

if [ -n "$token" ]; then
	request=$(jq -nc --arg t "$token" --arg a "$BATON_AUDIENCE" --arg s "$BATON_SCOPE" \
		'{token: $t, audience: $a, required_scopes: [$s]}')
	grpcurl_run -expand-headers -H 'authorization: Basic ${BATON_BASIC}' -d @ "$BATON_ADDR" baton.v1.BrokerService/Validate <<<"$request"
	expect "Validate" 0 '"valid": true' '"status": "TOKEN_STATUS_VALID"' '"taskId": "grpcurl-check"'
else
	echo "FAIL Validate: Issue returned no token" >&2
	failed=1
fi

# A scope outside the app's ceiling: refused, and the ErrorInfo detail is
# printed decoded (grpcurl resolves google.rpc.ErrorInfo through reflection).
request=$(jq -nc --arg a "$BATON_AUDIENCE" '{task_id: "grpcurl-check", scopes: ["write:records:P-1"], audiences: [$a]}')
grpcurl_run -expand-headers -H 'authorization: Basic ${BATON_BASIC}' -d @ "$BATON_ADDR" baton.v1.BrokerService/Issue <<<"$request"
expect "Issue refused (scope not covered), ErrorInfo decoded" fail \
	"Code: PermissionDenied" \
	'"@type": "type.googleapis.com/google.rpc.ErrorInfo"' \
	'"reason": "SCOPE_NOT_COVERED"' \
	'"domain": "baton.dev"'

if [ "$failed" -ne 0 ]; then
	echo "grpcurl-check: FAILED" >&2
	exit 1
fi
echo "grpcurl-check: all passed"
