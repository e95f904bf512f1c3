// Migration 0009 backfills the query columns of events written before it,
// from their hashed payloads, and its trigger fills them for every event
// inserted after, through appendAudit or any other INSERT; the rules agree
// with auditIndexFacts (what the converter shows); the chain verifies
// afterwards, and the events are found by the new filters.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { queryAudit } from "../../server/service/audit-query.js";
import { appendAudit, type AuditEvent, canonicalJson, chainHash, verifyAudit } from "../../server/storage/audit.js";
import { auditIndexFacts } from "../../server/storage/audit-query.js";
import { createPool, type Db, withTransaction } from "../../server/storage/db.js";
import { loadMigrations, migrate } from "../../server/storage/migrate.js";
import { pgUrl } from "../helpers/database.js";

const name = `t_${randomBytes(6).toString("hex")}`;
let db: Db | undefined;

afterAll(async () => {
  await db?.end();
  const a = new pg.Client({ connectionString: pgUrl("postgres") });
  await a.connect();
  await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await a.end();
});

/** What appendAudit wrote before 0009: the chain columns only. */
async function appendBefore0009(tx: pg.PoolClient, events: AuditEvent[]): Promise<void> {
  const head = await tx.query<{ seq: string; hash: Buffer }>("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE");
  let seq = BigInt(head.rows[0]!.seq);
  let prev = head.rows[0]!.hash;
  for (const e of events) {
    seq += 1n;
    const payload = canonicalJson({ seq: seq.toString(), time: e.time.toISOString(), kind: e.kind, app_id: e.appId, request_id: e.requestId, actor: e.actor, data: e.data });
    const hash = chainHash(prev, payload);
    await tx.query(
      "INSERT INTO audit_events (seq, event_time, kind, app_id, request_id, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
      [seq.toString(), e.time, e.kind, e.appId, e.requestId, payload, prev, hash],
    );
    prev = hash;
  }
  await tx.query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", [seq.toString(), prev]);
}

const ev = (kind: string, data: Record<string, unknown>): AuditEvent => ({ kind, time: new Date(), appId: "app_1", requestId: "r", actor: "operator", data });

const OLD: AuditEvent[] = [
  ev("app.created", { name: "a", scope_ceiling: ["read:x:*"], audiences: ["api"] }),
  ev("token.issued", { token_id: "tok-1", agent_id: "spiffe://d/a/t/1", task_id: "task-1", human: "user:h", lineage: [], scopes: ["read:x:1"], expire_time: new Date(Date.now() + 60_000).toISOString() }),
  ev("issue.refused", { reason: "SCOPE_NOT_COVERED", details: { scopes: "write:x:1" } }),
  ev("revocation.created", { target: "token", id: "tok-1", reason: "r", cursor: "1" }),
  ev("revocation.created", { target: "chain", id: "tok-root", reason: null, cursor: "2" }),
  ev("revocation.created", { target: "agent", id: "spiffe://d/a/t/2", reason: null, cursor: "3" }),
  ev("revocation.created", { target: "task", id: "task-9", reason: null, cursor: "4" }),
  ev("revocation.created", { target: "app", id: "app_1", reason: null, cursor: "5" }),
  // Not a revocation: its `id` names nothing the filters know.
  ev("key.rotated", { target: "token", id: "not-a-token", human: 7 }),
  // Not strings: nothing.
  ev("revocation.created", { target: "token", id: 42, task_id: ["t"], agent_id: { a: 1 }, token_id: null }),
];

it("backfills old events with appendAudit's rules, keeps the chain intact, and new events follow", async () => {
  const admin = new pg.Client({ connectionString: pgUrl("postgres") });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  db = createPool(pgUrl(name), 2);
  const all = loadMigrations();
  await migrate(db, all.filter((m) => m.version < 9));
  await withTransaction(db, (tx) => appendBefore0009(tx as pg.PoolClient, OLD));
  const before = await db.query<{ hash: Buffer }>("SELECT hash FROM audit_events ORDER BY seq");

  await migrate(db, all);

  expect((await verifyAudit(db)).intact).toBe(true);
  const after = await db.query<{ hash: Buffer; kind: string; payload: string; task_id: string | null; agent_id: string | null; human_principal: string | null; token_id: string | null }>(
    "SELECT * FROM audit_events ORDER BY seq",
  );
  expect(after.rows.map((r) => r.hash.toString("hex"))).toEqual(before.rows.map((r) => r.hash.toString("hex")));
  const agree = async () => {
    const rows = await db!.query<{ kind: string; payload: string; task_id: string | null; agent_id: string | null; human_principal: string | null; token_id: string | null }>(
      "SELECT * FROM audit_events ORDER BY seq",
    );
    for (const r of rows.rows) {
      const f = auditIndexFacts(r.kind, (JSON.parse(r.payload) as { data: Record<string, unknown> }).data);
      expect({ task: r.task_id, agent: r.agent_id, human: r.human_principal, token: r.token_id }).toEqual({ task: f.taskId, agent: f.agentId, human: f.human, token: f.tokenId });
    }
    return rows.rows;
  };
  await agree();
  expect(after.rows.map((r) => r.token_id)).toEqual([null, "tok-1", null, "tok-1", "tok-root", null, null, null, null, null]);
  expect(after.rows.map((r) => r.task_id)).toEqual([null, "task-1", null, null, null, null, "task-9", null, null, null]);

  // Written after the migration, through appendAudit and through a plain
  // INSERT of the chain columns only: the trigger fills the query columns.
  await withTransaction(db, (tx) => appendAudit(tx, [ev("token.issued", { token_id: "tok-2", task_id: "task-1", human: "user:h" })]));
  await withTransaction(db, (tx) => appendBefore0009(tx as pg.PoolClient, [ev("revocation.created", { target: "agent", id: "spiffe://d/a/t/9", reason: null, cursor: "6" })]));
  expect((await agree()).slice(-2).map((r) => [r.token_id, r.task_id, r.agent_id, r.human_principal])).toEqual([
    ["tok-2", "task-1", null, "user:h"],
    [null, null, "spiffe://d/a/t/9", null],
  ]);
  expect((await verifyAudit(db)).intact).toBe(true);
  // A column set by hand is put back to what the payload says.
  await db.query("UPDATE audit_events SET task_id = 'forged', token_id = NULL WHERE seq = 2");
  await agree();
  const q = { appId: "", agentId: "", human: "", kinds: [], start: null, end: null, afterSeq: 0n, pageSize: 0, pageToken: "" };
  const byTask = await queryAudit(db, { ...q, taskId: "task-1", tokenId: "" });
  expect(byTask.events.map((e) => e.seq)).toEqual([2n, 11n]);
  const byToken = await queryAudit(db, { ...q, taskId: "", tokenId: "tok-1" });
  expect(byToken.events.map((e) => e.kind)).toEqual(["token.issued", "revocation.created"]);
});
