// Grants in one-statement group commits (grant-writer.ts), on real
// PostgreSQL: a batch is one statement and no explicit transaction, its
// events chained by PostgreSQL wherever the head is when it gets the lock,
// so other writers and replicas appending in between cost nothing; when an
// app stopped holding, it stores nothing that way and takes the locked path.
// Every grant keeps exactly one event, in an intact chain.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomId } from "../../server/crypto/secrets.js";
import { GrantWriter } from "../../server/service/grant-writer.js";
import { type AppRecord, insertApp } from "../../server/storage/apps.js";
import { appendAudit, type AuditEvent, verifyAudit } from "../../server/storage/audit.js";
import { type Tx, withTransaction } from "../../server/storage/db.js";
import type { GrantRecord } from "../../server/storage/grants.js";
import { counting, freshDatabase, type TestDatabase } from "../helpers/database.js";

let t: TestDatabase;
const APP = "app_GRANTBATCHAAAAAAAAAAA";
const OTHER = "app_GRANTBATCHBBBBBBBBBBB";

function app(appId: string, name: string): AppRecord {
  const now = new Date();
  return {
    appId, name, secretHash: Buffer.alloc(32), scopeCeiling: ["read:*"], audiences: ["ehr-api"], maxTtlSeconds: 3600,
    maxDelegationDepth: 1, disabled: false, createTime: now, updateTime: now, ratePerSecond: 0, rateBurst: 0, approvalPolicy: [], maxTaskSeconds: null,
  };
}

beforeAll(async () => {
  t = await freshDatabase();
  await insertApp(t.db, app(APP, "grant-batch-a"));
  await insertApp(t.db, app(OTHER, "grant-batch-b"));
});
afterAll(async () => t?.drop());

function grant(appId: string): { grant: GrantRecord; event: AuditEvent } {
  const tokenId = randomId();
  const now = new Date();
  return {
    grant: {
      tokenId, appId, agentId: `agent-${tokenId}`, taskId: "task", orchestrationId: null, humanPrincipal: null, parentTokenId: null,
      rootTokenId: tokenId, depth: 0, scopes: ["read:x"], audiences: ["ehr-api"], keyThumbprint: null, keyId: "k1",
      issueTime: now, expireTime: new Date(now.getTime() + 60_000),
    },
    event: { kind: "token.issued", time: now, appId, requestId: null, actor: `app:${appId}`, data: { token_id: tokenId } },
  };
}

async function eventsOf(tokenIds: string[]): Promise<Map<string, number>> {
  const { rows } = await t.db.query<{ id: string; n: string }>(
    "SELECT payload::json->'data'->>'token_id' AS id, count(*) AS n FROM audit_events WHERE payload::json->'data'->>'token_id' = ANY($1) GROUP BY 1",
    [tokenIds],
  );
  return new Map(rows.map((r) => [r.id, Number(r.n)]));
}

async function stored(tokenIds: string[]): Promise<number> {
  const { rows } = await t.db.query<{ n: string }>("SELECT count(*) AS n FROM grants WHERE token_id = ANY($1)", [tokenIds]);
  return Number(rows[0]!.n);
}

const write = (w: GrantWriter, g: { grant: GrantRecord; event: AuditEvent }) => w.write(g.grant, g.event, null);

describe("grant batches", () => {
  it("a batch of 50 concurrent grants is one statement per batch, with no transaction, from the first", async () => {
    const c = counting(t.db);
    const w = new GrantWriter(c.db);
    const gs = Array.from({ length: 50 }, () => grant(APP));
    expect(await Promise.all(gs.map((g) => write(w, g)))).toEqual(gs.map(() => true));
    // The first two submits start a batch of one each (two in flight); the other 48 go in the next.
    expect(c.connects()).toBe(0);
    expect(c.statements()).toBeLessThanOrEqual(3);
    const ids = gs.map((g) => g.grant.tokenId);
    expect(await stored(ids)).toBe(50);
    const events = await eventsOf(ids);
    expect(ids.every((id) => events.get(id) === 1)).toBe(true);
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("another writer appending between batches costs nothing: one statement per batch, no transaction", async () => {
    const c = counting(t.db);
    const w = new GrantWriter(c.db);
    await write(w, grant(APP));
    // Another writer (a revocation, a refusal, another replica) appends.
    await withTransaction(t.db, (tx) => appendAudit(tx, [{ kind: "test.other", time: new Date(), appId: null, requestId: null, actor: "operator", data: {} }]));
    c.reset();
    const gs = Array.from({ length: 20 }, () => grant(APP));
    expect(await Promise.all(gs.map((g) => write(w, g)))).toEqual(gs.map(() => true));
    // Batches of one, one and 18.
    expect(c.connects()).toBe(0);
    expect(c.statements()).toBeLessThanOrEqual(3);
    const ids = gs.map((g) => g.grant.tokenId);
    expect(await stored(ids)).toBe(20);
    const events = await eventsOf(ids);
    expect(ids.every((id) => events.get(id) === 1)).toBe(true);
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("a batch waiting on the head lock while another writer appends is chained after that writer's event: one statement", async () => {
    const c = counting(t.db);
    const w = new GrantWriter(c.db);
    await write(w, grant(APP));
    // Another writer holds the head and appends; the batch's statement waits on the row.
    const holder = new pg.Client({ connectionString: t.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await appendAudit(holder as unknown as Tx, [{ kind: "test.other", time: new Date(), appId: null, requestId: null, actor: "operator", data: {} }]);
      c.reset();
      const g = grant(APP);
      const pending = write(w, g);
      for (;;) {
        const { rows } = await t.db.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%grants%'");
        if (Number(rows[0]!.n) > 0) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await holder.query("COMMIT");
      expect(await pending).toBe(true);
      // Chained where the head was once the holder committed.
      expect(c.connects()).toBe(0);
      expect(c.statements()).toBe(1);
      expect((await eventsOf([g.grant.tokenId])).get(g.grant.tokenId)).toBe(1);
    } finally {
      await holder.end();
    }
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("two writers on one database (two replicas), 150 grants each at once: every grant once with one event, chain intact", async () => {
    const a = new GrantWriter(t.db);
    const b = new GrantWriter(t.db);
    const ga = Array.from({ length: 150 }, () => grant(APP));
    const gb = Array.from({ length: 150 }, () => grant(OTHER));
    // Rounds, so each writer's guesses keep being overtaken by the other's batches.
    for (let i = 0; i < 150; i += 30) {
      const ok = await Promise.all([...ga.slice(i, i + 30).map((g) => write(a, g)), ...gb.slice(i, i + 30).map((g) => write(b, g))]);
      expect(ok.every(Boolean)).toBe(true);
    }
    const ids = [...ga, ...gb].map((g) => g.grant.tokenId);
    expect(await stored(ids)).toBe(300);
    const events = await eventsOf(ids);
    expect(ids.every((id) => events.get(id) === 1)).toBe(true);
    expect((await verifyAudit(t.db)).intact).toBe(true);
  });

  it("a batch holding a disabled app's grant stores the others with their events and neither the grant nor an event of that app", async () => {
    const w = new GrantWriter(t.db);
    await t.db.query("UPDATE apps SET disabled = true WHERE app_id = $1", [OTHER]);
    try {
      const live = Array.from({ length: 10 }, () => grant(APP));
      const dead = Array.from({ length: 5 }, () => grant(OTHER));
      const all = [...live, ...dead];
      const ok = await Promise.all(all.map((g) => write(w, g)));
      expect(ok).toEqual([...live.map(() => true), ...dead.map(() => false)]);
      expect(await stored(live.map((g) => g.grant.tokenId))).toBe(10);
      expect(await stored(dead.map((g) => g.grant.tokenId))).toBe(0);
      const events = await eventsOf(all.map((g) => g.grant.tokenId));
      expect(live.every((g) => events.get(g.grant.tokenId) === 1)).toBe(true);
      expect(dead.some((g) => events.has(g.grant.tokenId))).toBe(false);
      expect((await verifyAudit(t.db)).intact).toBe(true);
    } finally {
      await t.db.query("UPDATE apps SET disabled = false WHERE app_id = $1", [OTHER]);
    }
  });

  it("a grant checked against an app version that has since changed is not stored, by either path", async () => {
    const w = new GrantWriter(t.db);
    const stale = new Date(Date.now() - 3_600_000);
    const g = grant(APP);
    expect(await w.write(g.grant, g.event, stale)).toBe(false);
    expect(await stored([g.grant.tokenId])).toBe(0);
    expect((await eventsOf([g.grant.tokenId])).size).toBe(0);
  });
});
