// Revocations in one-statement group commits (revoke.ts,
// insertRevocationsChained), on real PostgreSQL: a batch is one statement
// and no explicit transaction, numbered and chained by PostgreSQL wherever
// the cursor and the audit head are, so other writers and replicas cost
// nothing; a task or
// app revocation worked out from an app that has since changed is stored as
// the app now is; locks are taken in
// the order every writer takes them (apps, cursor, head), so a writer
// holding an app row does not deadlock with it. Cursors stay gap-free and
// commit-ordered, one audit event each, the chain intact.

import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Revoker } from "../../server/service/revoke.js";
import { RevocationState } from "../../server/service/revocation-state.js";
import type { Principal } from "../../server/service/principals.js";
import { type AppRecord, getApp, insertApp } from "../../server/storage/apps.js";
import { appendAudit, verifyAudit } from "../../server/storage/audit.js";
import { type Db, withTransaction } from "../../server/storage/db.js";
import { insertRevocation } from "../../server/storage/revocations.js";
import { counting, freshDatabase, type TestDatabase } from "../helpers/database.js";

let t: TestDatabase;
const APP = "app_REVWRITERAAAAAAAAAAAAA";
const OPERATOR: Principal = { kind: "operator" };
const MARGIN = 30_000;
/** The app as the view holds it. */
let held: AppRecord;

beforeAll(async () => {
  t = await freshDatabase();
  const now = new Date();
  await insertApp(t.db, {
    appId: APP, name: "revocation-writer", secretHash: Buffer.alloc(32), scopeCeiling: ["read:*"], audiences: ["ehr-api"], maxTtlSeconds: 600,
    maxDelegationDepth: 1, disabled: false, createTime: now, updateTime: now, ratePerSecond: 0, rateBurst: 0, approvalPolicy: [], maxTaskSeconds: null,
  });
  held = (await getApp(t.db, APP))!;
});
afterAll(async () => t?.drop());

/** A revoker whose app view is `view` (the real one catches up on notifications; here the test decides what it holds). */
function revoker(db: Db, view: (id: string) => AppRecord | null = (id) => (id === APP ? held : null)): Revoker {
  return new Revoker(db, new RevocationState(db, Date.now), { app: view }, { revocationMarginMs: MARGIN, now: Date.now });
}

let n = 0;
const revokeTask = (r: Revoker, taskId = `task-${n++}`) =>
  r.revoke(OPERATOR, { target: "task", id: taskId, appId: APP, reason: "test" }, { requestId: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}` });

async function cursor(): Promise<bigint> {
  const { rows } = await t.db.query<{ value: string }>("SELECT value FROM revocation_cursor WHERE id = 1");
  return BigInt(rows[0]!.value);
}

/** The revocation.created events after `after`, by cursor, and the cursors stored. */
async function eventsAfter(after: bigint): Promise<{ events: bigint[]; stored: bigint[] }> {
  const e = await t.db.query<{ c: string }>(
    "SELECT payload::json->'data'->>'cursor' AS c FROM audit_events WHERE kind = 'revocation.created' AND (payload::json->'data'->>'cursor')::bigint > $1 ORDER BY seq",
    [after.toString()],
  );
  const s = await t.db.query<{ cursor: string }>("SELECT cursor FROM revocations WHERE cursor > $1 ORDER BY cursor", [after.toString()]);
  return { events: e.rows.map((r) => BigInt(r.c)), stored: s.rows.map((r) => BigInt(r.cursor)) };
}

const range = (from: bigint, count: number): bigint[] => Array.from({ length: count }, (_, i) => from + 1n + BigInt(i));

describe("revocation batches", () => {
  it("concurrent revocations are one statement per batch, with no transaction, from the first", async () => {
    const c = counting(t.db);
    const r = revoker(c.db);
    const start = await cursor();
    const out = await Promise.all(Array.from({ length: 50 }, () => revokeTask(r)));
    // The first call starts a batch of one; the other 49 go in the next.
    expect(c.connects()).toBe(0);
    expect(c.statements()).toBeLessThanOrEqual(3);
    expect(out.map((s) => s.cursor).sort((a, b) => (a < b ? -1 : 1))).toEqual(range(start, 50));
    // One event each, in cursor order (the chain orders them as the commits did).
    const { events, stored } = await eventsAfter(start);
    expect(stored).toEqual(range(start, 50));
    expect(events).toEqual(range(start, 50));
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("another writer's audit events or another replica's revocations in between cost nothing: one statement, no transaction", async () => {
    const c = counting(t.db);
    const r = revoker(c.db);
    await revokeTask(r);
    for (const other of [
      // An audit event of another kind (a grant batch, an app change, a refusal) on any replica: the head moves.
      () => withTransaction(t.db, (tx) => appendAudit(tx, [{ kind: "test.other", time: new Date(), appId: null, requestId: null, actor: "operator", data: {} }])),
      // A revocation by another replica's locked path: the cursor moves too.
      () =>
        withTransaction(t.db, async (tx) => {
          const s = await insertRevocation(tx, { target: "agent", id: "agent-x", appId: APP, revokedAtMs: Date.now(), expiresAtMs: Date.now() + 60_000, audiences: ["ehr-api"] }, null);
          await appendAudit(tx, [{ kind: "revocation.created", time: new Date(), appId: APP, requestId: null, actor: "operator", data: { cursor: s.cursor.toString() } }]);
        }),
    ]) {
      await other();
      const start = await cursor();
      c.reset();
      const s = await revokeTask(r);
      expect(s.cursor).toBe(start + 1n);
      expect(c.connects()).toBe(0);
      expect(c.statements()).toBe(1);
      c.reset();
      await revokeTask(r);
      expect(c.statements()).toBe(1);
    }
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("a task revocation worked out from an app that has since changed is stored with the app's current audiences and lifetime", async () => {
    const stale = held;
    const r = revoker(t.db, (id) => (id === APP ? stale : null));
    await revokeTask(r);
    // Another replica widens the audiences and lifetime; this view has not caught up.
    const updateTime = new Date(stale.updateTime.getTime() + 1000);
    await t.db.query("UPDATE apps SET audiences = $2, max_ttl_seconds = 1200, update_time = $3 WHERE app_id = $1", [APP, ["ehr-api", "lab-api"], updateTime]);
    try {
      const before = Date.now();
      const s = await revokeTask(r, "task-after-widening");
      const { rows } = await t.db.query<{ audiences: string[]; expire_time: Date }>("SELECT audiences, expire_time FROM revocations WHERE cursor = $1", [
        s.cursor.toString(),
      ]);
      // Resource servers of the new audience get it on their stream, and it lives as long as the app's longest token now can.
      expect(rows[0]!.audiences).toEqual(["ehr-api", "lab-api"]);
      expect(s.audiences).toEqual(["ehr-api", "lab-api"]);
      expect(rows[0]!.expire_time.getTime()).toBeGreaterThanOrEqual(before + 1200_000 + MARGIN);
      const { rows: ev } = await t.db.query<{ a: string }>(
        "SELECT payload::json->'data'->>'audiences' AS a FROM audit_events WHERE kind = 'revocation.created' AND payload::json->'data'->>'cursor' = $1",
        [s.cursor.toString()],
      );
      expect(JSON.parse(ev[0]!.a)).toEqual(["ehr-api", "lab-api"]);
      expect((await verifyAudit(t.db)).intact).toBe(true);
    } finally {
      await t.db.query("UPDATE apps SET audiences = $2, max_ttl_seconds = 600, update_time = $3 WHERE app_id = $1", [APP, ["ehr-api"], stale.updateTime]);
    }
  });

  it("a writer holding the app row and then taking the cursor (UpdateApp's order) does not deadlock with a task revocation of that app", async () => {
    const r = revoker(t.db);
    await revokeTask(r);
    const holder = new pg.Client({ connectionString: t.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM apps WHERE app_id = $1 FOR UPDATE", [APP]);
      const pending = revokeTask(r);
      // The statement waits on the app row, holding neither the cursor nor the head.
      for (;;) {
        const { rows } = await t.db.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND (query LIKE '%revocation_cursor%' OR query LIKE '%baton_append_revocations%')");
        if (Number(rows[0]!.n) > 0) break;
        await new Promise((res) => setTimeout(res, 20));
      }
      // So the holder gets the cursor and the head at once (a deadlock would fail one of us after deadlock_timeout).
      const started = Date.now();
      await holder.query("SET LOCAL lock_timeout = '5s'");
      await holder.query("UPDATE revocation_cursor SET value = value WHERE id = 1");
      await holder.query("UPDATE audit_head SET seq = seq WHERE id = 1");
      expect(Date.now() - started).toBeLessThan(500);
      await holder.query("COMMIT");
      const s = await pending;
      expect(s.target).toBe("task");
    } finally {
      await holder.end();
    }
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("two writers on one database (two replicas), 100 revocations each at once: gap-free cursors, one event each, chain intact", async () => {
    const start = await cursor();
    const a = revoker(t.db);
    const b = revoker(t.db);
    for (let i = 0; i < 100; i += 20) {
      await Promise.all(Array.from({ length: 40 }, (_, j) => revokeTask(j % 2 === 0 ? a : b)));
    }
    const { events, stored } = await eventsAfter(start);
    expect(stored).toEqual(range(start, 200));
    expect(events).toEqual(range(start, 200));
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("property: whatever interleaves with them (another replica's revocations, other audit events, app changes), every revocation gets the next cursor, one event in cursor order, the app's audiences as of its commit, and the chain verifies", async () => {
    const step = fc.oneof(
      // A burst of task revocations through one of two writers (two replicas).
      fc.record({ kind: fc.constant("revoke" as const), writer: fc.integer({ min: 0, max: 1 }), n: fc.integer({ min: 1, max: 12 }) }),
      // Another writer's audit event (an app change, a refusal) on the locked path.
      fc.record({ kind: fc.constant("other" as const) }),
      // The app's audiences change on "another replica": the writers' view is not told.
      fc.record({ kind: fc.constant("app" as const), audiences: fc.constantFrom(["ehr-api"], ["ehr-api", "lab-api"], ["lab-api"]) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(step, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 6 }), async (rounds) => {
        const start = await cursor();
        const view = { ...held };
        const writers = [revoker(t.db, () => view), revoker(t.db, () => view)];
        let expected = 0;
        try {
          for (const round of rounds) {
            // The steps of a round run at once.
            await Promise.all(
              round.map(async (s) => {
                if (s.kind === "revoke") {
                  expected += s.n;
                  await Promise.all(Array.from({ length: s.n }, () => revokeTask(writers[s.writer]!)));
                } else if (s.kind === "other") {
                  await withTransaction(t.db, (tx) => appendAudit(tx, [{ kind: "test.other", time: new Date(), appId: null, requestId: null, actor: "operator", data: {} }]));
                } else {
                  await t.db.query("UPDATE apps SET audiences = $2, update_time = clock_timestamp() WHERE app_id = $1", [APP, s.audiences]);
                }
              }),
            );
          }
          const { events, stored } = await eventsAfter(start);
          expect(stored).toEqual(range(start, expected));
          expect(events).toEqual(range(start, expected));
          // Each revocation carries the audiences the app had when it committed: the newest change committed
          // before it. Checked against the app's final audiences for those committed after the last change.
          const app = (await getApp(t.db, APP))!;
          const { rows } = await t.db.query<{ audiences: string[] }>(
            "SELECT audiences FROM revocations WHERE cursor > $1 AND revoke_time >= $2 ORDER BY cursor",
            [start.toString(), app.updateTime],
          );
          for (const r of rows) expect(r.audiences).toEqual(app.audiences);
          expect((await verifyAudit(t.db)).intact).toBe(true);
        } finally {
          await t.db.query("UPDATE apps SET audiences = $2, update_time = $3 WHERE app_id = $1", [APP, held.audiences, held.updateTime]);
        }
      }),
      { numRuns: 15 },
    );
  });
});
