// Revocations in group commits, on real PostgreSQL over real gRPC:
// concurrent revocations share transactions yet keep distinct, gap-free,
// commit-ordered cursors and one audit event each; one caller's refusal
// never fails the others; a failed batch transaction fails every call in it
// and stores nothing.

import { Metadata } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { verifyAudit } from "../../server/storage/audit.js";
import { call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker({ BATON_APP_RATE_PER_SECOND: "100000", BATON_APP_BURST: "100000" });
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
});
afterAll(async () => b?.stop());

const TOKEN = RevocationTarget.REVOCATION_TARGET_TOKEN;

async function issueMany(n: number): Promise<{ tokenId: string; accessToken: string }[]> {
  const out = await Promise.all(
    Array.from({ length: n }, (_, i) => call(b.client.issue, b.client, issueRequest({ taskId: `batch-${i}` }), app.md)),
  );
  return out.map((r) => ({ tokenId: r.claims!.tokenId, accessToken: r.accessToken }));
}

const withRequestId = (md: Metadata, id: string): Metadata => {
  const m = md.clone();
  m.set("x-request-id", id);
  return m;
};

const revoke = (id: string, requestId: string, md = operatorMd()) =>
  call(b.client.revoke, b.client, { target: TOKEN, id, appId: "", reason: "batch test" }, withRequestId(md, requestId));

/** Holds the cursor row's lock until released, so revocations queue behind it. */
async function holdCursorLock(): Promise<{ release(): Promise<void>; waitForWaiter(): Promise<void> }> {
  const c = new pg.Client({ connectionString: b.database.url });
  await c.connect();
  await c.query("BEGIN");
  await c.query("SELECT value FROM revocation_cursor WHERE id = 1 FOR UPDATE");
  return {
    async waitForWaiter() {
      for (;;) {
        const { rows } = await b.database.db.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND (query LIKE '%revocation_cursor%' OR query LIKE '%baton_append_revocations%')",
        );
        if (Number(rows[0]!.n) > 0) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async release() {
      await c.query("ROLLBACK");
      await c.end();
    },
  };
}

describe("group-committed revocations", () => {
  it("200 concurrent revocations: distinct, gap-free, commit-ordered cursors, far fewer transactions, one audit event each", async () => {
    const tokens = await issueMany(200);
    const before = await b.database.db.query<{ value: string }>("SELECT value FROM revocation_cursor WHERE id = 1");
    const start = BigInt(before.rows[0]!.value);

    const results = await Promise.all(tokens.map((t, i) => revoke(t.tokenId, `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`)));

    // Distinct and gap-free: exactly the next 200 cursors.
    const cursors = results.map((r) => BigInt(r.revocation!.cursor)).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    expect(cursors).toEqual(Array.from({ length: 200 }, (_, i) => start + 1n + BigInt(i)));
    // Each call got its own target back.
    expect(results.map((r) => r.revocation!.id)).toEqual(tokens.map((t) => t.tokenId));

    // Fewer transactions than revocations: every row carries the id of the
    // transaction that inserted it. Generous bound: the point is grouping.
    const { rows: xacts } = await b.database.db.query<{ xid: string; lo: string; hi: string; n: string }>(
      `SELECT xmin::text AS xid, min(cursor) AS lo, max(cursor) AS hi, count(*) AS n
       FROM revocations WHERE cursor > $1 GROUP BY xmin::text ORDER BY min(cursor)`,
      [start.toString()],
    );
    expect(xacts.length).toBeLessThanOrEqual(50);
    // Each transaction holds a consecutive run of cursors.
    for (const x of xacts) expect(BigInt(x.hi) - BigInt(x.lo) + 1n).toBe(BigInt(x.n));

    // Commit order: the audit chain (ordered by its head lock, taken after
    // the cursor in the same transaction) lists them in cursor order, one
    // event per revocation, each under its own request id.
    const { rows: events } = await b.database.db.query<{ request_id: string; payload: string }>(
      "SELECT request_id, payload FROM audit_events WHERE kind = 'revocation.created' ORDER BY seq",
    );
    const ours = events
      .map((e) => ({ requestId: e.request_id, cursor: BigInt((JSON.parse(e.payload) as { data: { cursor: string } }).data.cursor) }))
      .filter((e) => e.cursor > start);
    expect(ours.map((e) => e.cursor)).toEqual(cursors);
    expect(new Set(ours.map((e) => e.requestId)).size).toBe(200);
    const byCursor = new Map(results.map((r, i) => [BigInt(r.revocation!.cursor), `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`]));
    for (const e of ours) expect(e.requestId).toBe(byCursor.get(e.cursor));
    expect((await verifyAudit(b.database.db)).intact).toBe(true);

    // Effective when acknowledged.
    const v = await call(b.client.validate, b.client, { token: tokens[199]!.accessToken, audience: "ehr-api", requiredScopes: [] }, app.md);
    expect(v.status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("revocations queued behind a held cursor lock go in one transaction", async () => {
    const tokens = await issueMany(60);
    const lock = await holdCursorLock();
    let calls: Promise<unknown>[];
    try {
      const first = revoke(tokens[0]!.tokenId, "10000000-0000-4000-8000-000000000000");
      await lock.waitForWaiter();
      // The first batch waits on the lock; these queue behind it.
      calls = [first, ...tokens.slice(1).map((t, i) => revoke(t.tokenId, `10000000-0000-4000-8000-${String(i + 1).padStart(12, "0")}`))];
      // Let every call get through authentication and target lookup into the queue.
      await new Promise((r) => setTimeout(r, 3000));
    } finally {
      await lock.release();
    }
    const results = (await Promise.all(calls!)) as { revocation?: { cursor: string } }[];
    const cursors = results.map((r) => r.revocation!.cursor);
    const { rows } = await b.database.db.query<{ n: string }>(
      "SELECT count(DISTINCT xmin::text) AS n FROM revocations WHERE cursor = ANY($1::bigint[])",
      [cursors],
    );
    // The locked first batch, then (nearly) all the rest together; one
    // transaction each would be 60.
    expect(Number(rows[0]!.n)).toBeLessThanOrEqual(10);
  });

  it("a refused revocation in a batch fails only its own caller", async () => {
    const tokens = await issueMany(30);
    const other = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const calls = tokens.map((t, i) =>
      i % 3 === 0
        ? refusal(revoke(`tok_does_not_exist_${i}`, `20000000-0000-4000-8000-${String(i).padStart(12, "0")}`))
        : i % 3 === 1
          ? refusal(revoke(t.tokenId, `20000000-0000-4000-8000-${String(i).padStart(12, "0")}`, other.md)) // not its token
          : revoke(t.tokenId, `20000000-0000-4000-8000-${String(i).padStart(12, "0")}`),
    );
    const out = await Promise.all(calls);
    out.forEach((o, i) => {
      if (i % 3 === 2) expect((o as { revocation?: { id: string } }).revocation!.id).toBe(tokens[i]!.tokenId);
      else expect((o as { reason: string }).reason).toBe("NOT_FOUND");
    });
    const { rows } = await b.database.db.query<{ target_id: string }>("SELECT target_id FROM revocations WHERE target_id = ANY($1)", [
      tokens.map((t) => t.tokenId),
    ]);
    expect(new Set(rows.map((r) => r.target_id))).toEqual(new Set(tokens.filter((_, i) => i % 3 === 2).map((t) => t.tokenId)));
  });

  it("a batch whose transaction fails fails every call in it (UNAVAILABLE), storing nothing", async () => {
    const tokens = await issueMany(20);
    const poison = tokens[19]!.tokenId;
    // A database fault while the batch is written: the connection "fails"
    // when the poisoned row is inserted.
    await b.database.db.query(
      `CREATE FUNCTION fail_poisoned() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         IF NEW.target_id = '${poison}' THEN RAISE EXCEPTION 'injected fault' USING ERRCODE = '08006'; END IF;
         RETURN NEW;
       END $$`,
    );
    await b.database.db.query("CREATE TRIGGER fail_poisoned BEFORE INSERT ON revocations FOR EACH ROW EXECUTE FUNCTION fail_poisoned()");
    const cursorBefore = (await b.database.db.query<{ value: string }>("SELECT value FROM revocation_cursor WHERE id = 1")).rows[0]!.value;
    try {
      const lock = await holdCursorLock();
      const survivor = revoke(tokens[0]!.tokenId, "30000000-0000-4000-8000-000000000000");
      let batch: Promise<Awaited<ReturnType<typeof refusal>>>[];
      try {
        await lock.waitForWaiter();
        // These queue behind the locked first batch and go together.
        batch = tokens.slice(1).map((t, i) => refusal(revoke(t.tokenId, `30000000-0000-4000-8000-${String(i + 1).padStart(12, "0")}`)));
        await new Promise((r) => setTimeout(r, 3000));
      } finally {
        await lock.release();
      }
      expect((await survivor).revocation!.id).toBe(tokens[0]!.tokenId);
      const refused = await Promise.all(batch!);
      for (const r of refused) expect([r.code, r.reason]).toEqual([14, "UNAVAILABLE"]);
    } finally {
      await b.database.db.query("DROP TRIGGER fail_poisoned ON revocations; DROP FUNCTION fail_poisoned()");
    }
    const { rows } = await b.database.db.query<{ target_id: string }>("SELECT target_id FROM revocations WHERE target_id = ANY($1)", [
      tokens.map((t) => t.tokenId),
    ]);
    expect(rows.map((r) => r.target_id)).toEqual([tokens[0]!.tokenId]);
    // Only the survivor's cursor was taken; the failed batch's rolled back.
    const after = (await b.database.db.query<{ value: string }>("SELECT value FROM revocation_cursor WHERE id = 1")).rows[0]!.value;
    expect(BigInt(after)).toBe(BigInt(cursorBefore) + 1n);
    // The broker still serves revocations afterwards.
    expect((await revoke(tokens[5]!.tokenId, "30000000-0000-4000-8000-999999999999")).revocation!.id).toBe(tokens[5]!.tokenId);
    expect((await verifyAudit(b.database.db)).intact).toBe(true);
  });
});
