// What a PostgreSQL span is named after: a statement's operation and main
// table, read from its text (telemetry/tracing.ts). Never a value.

import { describe, expect, it } from "vitest";
import { statementSummary } from "../../server/telemetry/tracing.js";

describe("statementSummary", () => {
  it.each([
    ["SELECT * FROM grants WHERE token_id = $1", "SELECT", "grants"],
    ["  select seq, hash from audit_head where id = 1", "SELECT", "audit_head"],
    ["INSERT INTO audit_events (seq, payload) VALUES ($1, $2)", "INSERT", "audit_events"],
    ["UPDATE signing_keys SET state = 'retired' WHERE key_id = $1", "UPDATE", "signing_keys"],
    ["DELETE FROM used_proofs WHERE expire_time < $1", "DELETE", "used_proofs"],
    ["LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE", "LOCK", "signing_keys"],
    ["SELECT app_id FROM apps WHERE app_id = $1 FOR UPDATE", "SELECT", "apps"],
    // A subquery's FROM is not the statement's table.
    ["SELECT (SELECT max(cursor) FROM revocations) AS a FROM revocation_cursor", "SELECT", "revocation_cursor"],
    // A WITH statement is named by its main statement.
    ["WITH live AS (SELECT app_id FROM apps FOR SHARE) INSERT INTO grants (token_id) SELECT t FROM unnest($1::text[]) AS x(t)", "INSERT", "grants"],
    ["WITH d AS (DELETE FROM revocations WHERE expire_time < $1 RETURNING cursor) UPDATE revocation_cursor SET pruned_through = 1", "UPDATE", "revocation_cursor"],
    ["SELECT pg_notify($1, $2)", "SELECT", null],
    ["BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN", null],
    ["COMMIT", "COMMIT", null],
    ["", "QUERY", null],
  ])("%s", (sql, operation, table) => {
    expect(statementSummary(sql)).toEqual({ operation, table });
  });

  it("never carries a literal of the statement", () => {
    const s = statementSummary("SELECT * FROM grants WHERE token_id = 'tok_secret_value'");
    expect(JSON.stringify(s)).not.toContain("secret");
  });
});
