// StreamRevocations on one broker and real PostgreSQL (DESIGN §7): snapshot
// then live, replay after a cursor, commit order under concurrent writers,
// resume with no gap and no duplicate, cursor errors, the slow subscriber,
// checkpoints, key-set changes, cancellation and shutdown.

import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget } from "../../server/gen/baton/v1/broker.js";
import { withTransaction, type Db } from "../../server/storage/db.js";
import { cursorBounds, deleteExpiredRevocations, insertRevocation, REVOCATIONS_CHANNEL } from "../../server/storage/revocations.js";
import { basic, bearer, call, createApp, issueRequest, operatorMd, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { lastCursor, openStream } from "../helpers/stream.js";

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
});
afterAll(async () => b?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Revokes a task through the API; returns the cursor. */
async function revokeTask(id: string, broker = b): Promise<bigint> {
  const r = await call(broker.client.revoke, broker.client, { target: RevocationTarget.REVOCATION_TARGET_TASK, id, appId: "", reason: "" }, app.md);
  return BigInt(r.revocation!.cursor);
}

/** One revoking transaction that holds its cursor for `holdMs` before committing. */
async function slowRevocation(db: Db, id: string, holdMs: number, expiresAtMs = Date.now() + 600_000): Promise<bigint> {
  return withTransaction(db, async (tx) => {
    const r = await insertRevocation(tx, { target: "task", id, appId: app.appId, revokedAtMs: Date.now(), expiresAtMs, audiences: ["ehr-api"] }, null);
    await sleep(holdMs);
    return r.cursor;
  });
}

async function allCursorsAfter(db: Db, after: bigint): Promise<bigint[]> {
  const { rows } = await db.query<{ cursor: string }>("SELECT cursor FROM revocations WHERE cursor > $1 ORDER BY cursor", [after.toString()]);
  return rows.map((r) => BigInt(r.cursor));
}

const strictlyIncreasing = (xs: bigint[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]!);

describe("snapshot, replay, live", () => {
  it("no cursor: the live revocations, SnapshotComplete, then live events", async () => {
    const before = [await revokeTask("snap-1"), await revokeTask("snap-2")];
    const s = openStream(b.client, "", operatorMd());
    await s.waitFor((x) => x.events.some((e) => e.snapshotComplete), 5000, "snapshot");
    const marker = s.events.findIndex((e) => e.snapshotComplete);
    const snapshot = s.cursors.slice(0, marker);
    expect(snapshot).toEqual(expect.arrayContaining(before));
    expect(strictlyIncreasing(snapshot)).toBe(true);
    expect(BigInt(s.events[marker]!.snapshotComplete!.cursor)).toBe((await cursorBounds(b.broker.db)).latest);

    const live = await revokeTask("snap-live");
    await s.waitFor((x) => x.cursors.includes(live), 5000, "live event");
    const got = s.events.find((e) => e.revocation?.cursor === live.toString())!.revocation!;
    expect(got.target).toBe(RevocationTarget.REVOCATION_TARGET_TASK);
    expect(got.id).toBe("snap-live");
    expect(got.appId).toBe(app.appId);
    s.cancel();
  });

  it("a cursor: exactly the revocations after it, then live", async () => {
    const from = await revokeTask("replay-0");
    const next = [await revokeTask("replay-1"), await revokeTask("replay-2")];
    const s = openStream(b.client, from.toString(), basic(app.appId, app.secret));
    await s.waitFor((x) => x.cursors.length >= 2, 5000, "replay");
    expect(s.cursors.slice(0, 2)).toEqual(next);
    expect(s.events.some((e) => e.snapshotComplete)).toBe(false);
    const live = await revokeTask("replay-3");
    await s.waitFor((x) => x.cursors.includes(live), 5000, "live");
    expect(s.cursors).toEqual([...next, live]);
    s.cancel();
  });
});

describe("commit order", () => {
  it("concurrent writers committing at random moments: a live subscriber gets every revocation once, in cursor order", async () => {
    const start = (await cursorBounds(b.broker.db)).latest;
    const s = openStream(b.client, start.toString(), operatorMd());
    await sleep(100);
    const writers = Array.from({ length: 12 }, (_, w) =>
      (async () => {
        for (let i = 0; i < 15; i++) await slowRevocation(b.broker.db, `cw-${w}-${i}`, Math.random() * 15);
      })(),
    );
    await Promise.all(writers);
    const expected = await allCursorsAfter(b.broker.db, start);
    expect(expected).toHaveLength(180);
    await s.waitFor((x) => x.cursors.length >= expected.length, 10_000, "all 180");
    await sleep(200);
    expect(s.cursors).toEqual(expected);
    s.cancel();
  });

  it("resuming from the last cursor at random points loses nothing and repeats nothing", async () => {
    const start = (await cursorBounds(b.broker.db)).latest;
    const received: bigint[] = [];
    let cursor = start.toString();
    let done = false;
    const writers = (async () => {
      for (let i = 0; i < 120; i++) await slowRevocation(b.broker.db, `resume-${i}`, Math.random() * 5);
      done = true;
    })();
    while (!done) {
      const s = openStream(b.client, cursor, operatorMd());
      await sleep(20 + Math.random() * 80);
      s.cancel();
      await sleep(20);
      received.push(...s.cursors);
      const c = lastCursor(s);
      if (c !== "") cursor = c;
    }
    await writers;
    const tail = openStream(b.client, cursor, operatorMd());
    const expected = await allCursorsAfter(b.broker.db, start);
    await tail.waitFor((x) => received.length + x.cursors.length >= expected.length, 10_000, "the rest");
    tail.cancel();
    received.push(...tail.cursors);
    expect(received).toEqual(expected);
  });
});

describe("cursors the broker cannot resume from", () => {
  it("garbage or a cursor from the future: INVALID_ARGUMENT, CURSOR_INVALID", async () => {
    for (const bad of ["abc", "-1", "1.5", "99999999999999999999", ((await cursorBounds(b.broker.db)).latest + 1000n).toString()]) {
      const s = openStream(b.client, bad, operatorMd());
      await s.waitFor((x) => x.ended !== null, 5000, `end for ${bad}`);
      expect(s.ended, bad).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "CURSOR_INVALID" });
      expect(s.events).toEqual([]);
    }
  });

  it("a cursor older than retention: OUT_OF_RANGE, CURSOR_EXPIRED; a fresh snapshot then works", async () => {
    const old = await slowRevocation(b.broker.db, "long-gone", 0, Date.now() - 60_000);
    await revokeTask("after-long-gone");
    expect(await deleteExpiredRevocations(b.broker.db, Date.now())).toBeGreaterThanOrEqual(1);
    const s = openStream(b.client, (old - 1n).toString(), operatorMd());
    await s.waitFor((x) => x.ended !== null, 5000, "end");
    expect(s.ended).toMatchObject({ code: status.OUT_OF_RANGE, reason: "CURSOR_EXPIRED" });
    const fresh = openStream(b.client, "", operatorMd());
    await fresh.waitFor((x) => x.events.some((e) => e.snapshotComplete), 5000, "snapshot");
    expect(fresh.cursors).not.toContain(old);
    fresh.cancel();
  });
});

describe("freshness and keys", () => {
  it("an idle stream gets checkpoints at the latest cursor, observed recently", async () => {
    const latest = await revokeTask("checkpoint");
    const s = openStream(b.client, latest.toString(), operatorMd());
    await s.waitFor((x) => x.events.some((e) => e.checkpoint), 5000, "checkpoint");
    const cp = s.events.find((e) => e.checkpoint)!.checkpoint!;
    expect(BigInt(cp.cursor)).toBe(latest);
    expect(Date.now() - cp.observeTime!.getTime()).toBeLessThan(5000);
    s.cancel();
  });

  it("a key rotation reaches the stream as the new key set", async () => {
    const s = openStream(b.client, (await cursorBounds(b.broker.db)).latest.toString(), operatorMd());
    await sleep(100);
    const rotated = await call(b.admin.rotateSigningKey, b.admin, {}, operatorMd());
    await s.waitFor((x) => x.events.some((e) => e.keySetChanged), 5000, "key set");
    const jwks = JSON.parse(s.events.find((e) => e.keySetChanged)!.keySetChanged!.jwksJson) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toContain(rotated.next!.keyId);
    s.cancel();
  });
});

describe("who may subscribe", () => {
  it("no credentials: UNAUTHENTICATED; an agent token: PERMISSION_DENIED", async () => {
    const t = await call(b.client.issue, b.client, issueRequest({ taskId: "x", scopes: ["read:records:x"] }), app.md);
    const anon = openStream(b.client, "", new (await import("@grpc/grpc-js")).Metadata());
    const agent = openStream(b.client, "", bearer(t.accessToken));
    await anon.waitFor((x) => x.ended !== null);
    await agent.waitFor((x) => x.ended !== null);
    expect(anon.ended).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CREDENTIALS_MISSING" });
    expect(agent.ended).toMatchObject({ code: status.PERMISSION_DENIED });
    expect(anon.events).toEqual([]);
  });
});

describe("slow subscribers, cancellation, shutdown", () => {
  it("a subscriber that stops reading gets SUBSCRIBER_TOO_SLOW with its last cursor, and resuming loses nothing", async () => {
    const slow = await startTestBroker({ BATON_STREAM_BUFFER_EVENTS: "10" });
    try {
      const slowApp = await createApp(slow);
      const start = (await cursorBounds(slow.broker.db)).latest;
      const s = openStream(slow.client, start.toString(), operatorMd());
      await sleep(100);
      s.call.pause();
      // 20,000 revocations in one transaction: far more than the transport buffers.
      await withTransaction(slow.broker.db, async (tx) => {
        await tx.query(
          `WITH c AS (UPDATE revocation_cursor SET value = value + 20000 WHERE id = 1 RETURNING value)
           INSERT INTO revocations (cursor, target, target_id, app_id, revoke_time, expire_time, audiences)
           SELECT c.value - 20000 + g, 'task', 'bulk-' || g, $1, now(), now() + interval '10 minutes', '{ehr-api}' FROM c, generate_series(1, 20000) g`,
          [slowApp.appId],
        );
        await tx.query("SELECT pg_notify($1, '')", [REVOCATIONS_CHANNEL]);
      });
      await sleep(1500);
      s.call.resume();
      await s.waitFor((x) => x.ended !== null, 10_000, "too slow");
      expect(s.ended).toMatchObject({ code: status.RESOURCE_EXHAUSTED, reason: "SUBSCRIBER_TOO_SLOW" });
      // The status names the last cursor the broker sent. (grpc-js reports
      // the status before a paused call's buffered messages; they follow.)
      const sent = BigInt((s.ended as { metadata: Record<string, string> }).metadata.cursor!);
      await s.waitFor((x) => x.cursors.at(-1) === sent, 5000, "the buffered messages");
      expect(sent).toBeLessThan(start + 20_000n);
      const applied = s.cursors.at(-1)!;

      const rest = openStream(slow.client, applied.toString(), operatorMd());
      await rest.waitFor((x) => s.cursors.length + x.cursors.length >= 20_000, 15_000, "the rest");
      rest.cancel();
      expect([...s.cursors, ...rest.cursors]).toEqual(await allCursorsAfter(slow.broker.db, start));
    } finally {
      await slow.stop();
    }
  });

  it("cancelled streams stop the broker's work; shutdown ends streams with SHUTTING_DOWN and the cursor to resume from", async () => {
    const own = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
    const metric = async () => {
      const text = await (await fetch(`${own.httpUrl}/metrics`)).text();
      return Number(/^baton_revocation_streams (\d+)$/m.exec(text)?.[1]);
    };
    try {
      const streams = Array.from({ length: 5 }, () => openStream(own.client, "", operatorMd()));
      for (const s of streams) await s.waitFor((x) => x.events.some((e) => e.snapshotComplete));
      expect(await metric()).toBe(5);
      for (const s of streams.slice(0, 4)) s.cancel();
      const until = Date.now() + 5000;
      while ((await metric()) !== 1 && Date.now() < until) await sleep(20);
      expect(await metric()).toBe(1);

      const survivor = streams[4]!;
      await own.broker.stop();
      await survivor.waitFor((x) => x.ended !== null, 10_000, "shutdown");
      expect(survivor.ended).toMatchObject({ code: status.UNAVAILABLE, reason: "SHUTTING_DOWN" });
      expect((survivor.ended as { metadata: Record<string, string> }).metadata.cursor).toBe(lastCursor(survivor));
    } finally {
      await own.stop();
    }
  });
});
