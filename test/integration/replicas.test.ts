// Replicas on one database: a revocation made through any reaches every
// other's Validate and streams (LISTEN/NOTIFY wakes them; the catch-up poll
// covers a lost notification or a killed LISTEN connection). Tokens issued by
// one validate on the other. And chaos: subscribers cut at random, a replica
// killed and restarted, and every subscriber still ends with exactly the
// database's live revocations.

import { afterAll, beforeAll, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { call, createApp, issueRequest, operatorMd, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { openStream, type TestStream } from "../helpers/stream.js";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";

const MASTER = MasterKey.generate();
let database: TestDatabase;
let a: TestBroker;
let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  database = await freshDatabase();
  a = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  b = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  app = await createApp(a, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await database?.drop();
});

const req = issueRequest({ taskId: "t" });
const statusAt = async (broker: TestBroker, token: string) =>
  (await call(broker.client.validate, broker.client, { token, audience: "ehr-api", requiredScopes: [] }, app.md)).status;

async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < withinMs) {
    if (await check()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not true within ${withinMs} ms`);
}

it("both replicas publish the same key set and validate each other's tokens", async () => {
  const ka = (await call(a.client.getKeySet, a.client, {})).jwksJson;
  const kb = (await call(b.client.getKeySet, b.client, {})).jwksJson;
  expect(JSON.parse(ka)).toEqual(JSON.parse(kb));
  const t = await call(a.client.issue, a.client, req, app.md);
  expect(await statusAt(b, t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
});

it("a revocation through one replica reaches the other's Validate", async () => {
  const t = await call(a.client.issue, a.client, req, app.md);
  const u = await call(b.client.issue, b.client, req, app.md);
  await call(a.client.revoke, a.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: t.claims!.tokenId, appId: "", reason: "" }, app.md);
  await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: u.claims!.tokenId, appId: "", reason: "" }, app.md);
  expect(await statusAt(a, t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  expect(await statusAt(b, u.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  // NOTIFY wakes the other replica; allow a generous bound on a loaded machine.
  await eventually(async () => (await statusAt(b, t.accessToken)) === TokenStatus.TOKEN_STATUS_REVOKED, 5000);
  await eventually(async () => (await statusAt(a, u.accessToken)) === TokenStatus.TOKEN_STATUS_REVOKED, 5000);
});

it("an app disabled through one replica cannot issue through the other", async () => {
  const other = await createApp(a, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
  await call(b.client.issue, b.client, req, other.md); // b has the app cached now
  await call(a.admin.disableApp, a.admin, { appId: other.appId, reason: "" }, operatorMd());
  // b's cache may still say enabled; the commit-time check refuses anyway.
  const err = await call(b.client.issue, b.client, req, other.md).then(() => null, (e: unknown) => e);
  expect(err).not.toBeNull();
});

const revokeTaskAt = async (broker: TestBroker, id: string) =>
  BigInt((await call(broker.client.revoke, broker.client, { target: RevocationTarget.REVOCATION_TARGET_TASK, id, appId: "", reason: "" }, app.md)).revocation!.cursor);

it("a revocation through A reaches B's stream and B's Validate", async () => {
  const t = await call(b.client.issue, b.client, { ...req, taskId: "to-stream" }, app.md);
  const s = openStream(b.client, "", operatorMd());
  await s.waitFor((x) => x.events.some((e) => e.snapshotComplete));
  const cursor = await revokeTaskAt(a, "to-stream");
  await s.waitFor((x) => x.cursors.includes(cursor), 5000, "the revocation on B's stream");
  expect(await statusAt(b, t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  s.cancel();
});

it("with every LISTEN connection killed, nothing is lost and the listeners come back", async () => {
  const s = openStream(b.client, "", operatorMd());
  await s.waitFor((x) => x.events.some((e) => e.snapshotComplete));
  const t = await call(a.client.issue, a.client, { ...req, taskId: "after-kill" }, app.md);
  const killed = await a.broker.db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'baton-listen'");
  expect(killed.rowCount).toBe(2);
  const cursor = await revokeTaskAt(a, "after-kill");
  await s.waitFor((x) => x.cursors.includes(cursor), 5000, "the revocation despite the dead LISTEN");
  await eventually(async () => (await statusAt(b, t.accessToken)) === TokenStatus.TOKEN_STATUS_REVOKED, 5000);
  await eventually(async () => {
    const r = await a.broker.db.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'baton-listen'");
    return (r.rows[0] as { n: number }).n === 2;
  }, 10_000);
  s.cancel();
});

it("a key rotation through A reaches B's key set and B's streams", async () => {
  const s = openStream(b.client, "", operatorMd());
  await s.waitFor((x) => x.events.some((e) => e.snapshotComplete));
  const rotated = await call(a.admin.rotateSigningKey, a.admin, {}, operatorMd());
  const next = rotated.next!.keyId;
  await s.waitFor((x) => x.events.some((e) => e.keySetChanged?.jwksJson.includes(next)), 5000, "KeySetChanged on B");
  expect(JSON.parse((await call(b.client.getKeySet, b.client, {})).jwksJson).keys.map((k: { kid: string }) => k.kid)).toContain(next);
  s.cancel();
});

/**
 * A subscriber that keeps a set of revocation cursors: snapshot first, then
 * resume from its own last applied cursor on any end, on whichever replica
 * is up. Events from a stream it has left are ignored. Written against the
 * raw stream on purpose (not the SDK's RevocationSubscriber, tested in
 * sdk/ts): this test is about the broker's contract, and it throws on any
 * duplicate or out-of-order cursor, which a set-keeping SDK would absorb.
 */
class Resumer {
  readonly applied = new Set<bigint>();
  cursor = "";
  current: TestStream | null = null;
  private snapshot: bigint[] | null = null;
  reconnects = 0;
  private stopped = false;

  constructor(private readonly pick: () => TestBroker | null) {}

  connect(): void {
    if (this.stopped) return;
    const broker = this.pick();
    if (!broker) {
      setTimeout(() => this.connect(), 50);
      return;
    }
    this.reconnects++;
    const s = openStream(broker.client, this.cursor, operatorMd());
    this.current = s;
    this.snapshot = this.cursor === "" ? [] : null;
    s.call.on("data", (e: import("../../server/gen/baton/v1/broker.js").StreamRevocationsResponse) => {
      if (this.current !== s) return;
      if (e.revocation) {
        const c = BigInt(e.revocation.cursor);
        if (this.snapshot) this.snapshot.push(c);
        else {
          if (this.cursor !== "" && c <= BigInt(this.cursor)) throw new Error(`duplicate or out of order: ${c} after ${this.cursor}`);
          this.applied.add(c);
          this.cursor = c.toString();
        }
      } else if (e.snapshotComplete) {
        this.applied.clear();
        for (const c of this.snapshot ?? []) this.applied.add(c);
        this.snapshot = null;
        this.cursor = e.snapshotComplete.cursor;
      } else if (e.checkpoint && this.snapshot === null) {
        this.cursor = e.checkpoint.cursor;
      }
    });
    const again = () => {
      if (this.current !== s) return;
      this.current = null;
      setTimeout(() => this.connect(), 10 + Math.random() * 40);
    };
    s.call.on("error", (err: { code?: number }) => {
      if (this.current === s && (s.ended as { reason?: string } | null)?.reason === "CURSOR_EXPIRED") this.cursor = "";
      void err;
      again();
    });
    s.call.on("end", again);
  }

  cut(): void {
    this.current?.cancel();
  }

  stop(): void {
    this.stopped = true;
    this.current?.cancel();
    this.current = null;
  }
}

it("chaos: random cuts and a replica killed and restarted; every subscriber ends with the database's live revocations", async () => {
  let bUp: TestBroker | null = b;
  const replicas = () => [a, bUp].filter((x): x is TestBroker => x !== null);
  const subscribers = Array.from({ length: 6 }, () => new Resumer(() => {
    const up = replicas();
    return up[Math.floor(Math.random() * up.length)] ?? null;
  }));
  for (const s of subscribers) s.connect();

  let flowing = true;
  const writers = [0, 1].map((w) =>
    (async () => {
      for (let i = 0; flowing; i++) {
        const via = replicas()[(i + w) % replicas().length]!;
        await revokeTaskAt(via, `chaos-${w}-${i}`).catch(() => {}); // a replica going down mid-call
        await new Promise((r) => setTimeout(r, Math.random() * 20));
      }
    })(),
  );
  const cutter = (async () => {
    while (flowing) {
      subscribers[Math.floor(Math.random() * subscribers.length)]!.cut();
      await new Promise((r) => setTimeout(r, 30 + Math.random() * 120));
    }
  })();

  await new Promise((r) => setTimeout(r, 1500));
  const down = bUp!;
  bUp = null;
  await down.stop(); // its streams end with SHUTTING_DOWN; subscribers move to A
  await new Promise((r) => setTimeout(r, 1000));
  b = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  bUp = b;
  await new Promise((r) => setTimeout(r, 1500));
  flowing = false;
  await Promise.all([...writers, cutter]);

  const { rows } = await a.broker.db.query<{ cursor: string }>("SELECT cursor FROM revocations WHERE expire_time >= now() ORDER BY cursor");
  const live = rows.map((r) => BigInt(r.cursor));
  expect(live.length).toBeGreaterThan(50);
  const deadline = Date.now() + 15_000;
  for (const s of subscribers) {
    while ((s.applied.size !== live.length || s.current === null) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }
  for (const s of subscribers) {
    s.stop();
    expect([...s.applied].sort((x, y) => (x < y ? -1 : 1))).toEqual(live);
    expect(s.reconnects).toBeGreaterThan(2);
  }
});
