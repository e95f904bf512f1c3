// A real SIGTERM or SIGINT sent to `baton serve` drains it, in both modes
// (DATABASE_URL, and embedded PostgreSQL in BATON_DATA_DIR): calls that are
// running finish, streams end with SHUTTING_DOWN and a cursor to resume
// from, and the process exits 0 within a bounded time.
//
// To have calls that are certainly running when the signal arrives, the test
// holds the audit chain's head row lock from its own connection: every Issue
// and Revoke then waits inside the broker until the test lets go, after the
// signal.

import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { RevocationTarget } from "../../server/gen/baton/v1/broker.js";
import { exitWithin, serveReady, type ReadyBroker } from "../fixtures/serve.js";
import { basic, bearer, decodeError, issueRequest, OPERATOR_TOKEN } from "../helpers/broker.js";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";
import { openStream, type TestStream } from "../helpers/stream.js";

// The load here is about faults, not fairness: no per-app rate limit gets in the way.
const UNLIMITED = { BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" };

const databases: TestDatabase[] = [];
const dirs: string[] = [];
async function database(): Promise<TestDatabase> {
  const d = await freshDatabase();
  databases.push(d);
  return d;
}
afterAll(async () => {
  for (const d of databases) await d.drop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Mode {
  readonly name: string;
  readonly signal: NodeJS.Signals;
  /** The environment for `baton serve`, and how the test reaches the broker's database once it runs. */
  setup(): Promise<{ env: Record<string, string>; adminUrl: () => string }>;
}

const DATABASE_URL_MODE = (signal: NodeJS.Signals): Mode => ({
  name: `DATABASE_URL, ${signal}`,
  signal,
  setup: async () => {
    const d = await database();
    return {
      env: { DATABASE_URL: d.url, BATON_MASTER_KEY: MasterKey.generate(), BATON_OPERATOR_TOKEN: OPERATOR_TOKEN },
      adminUrl: () => d.url,
    };
  },
});

const EMBEDDED_MODE = (signal: NodeJS.Signals): Mode => ({
  name: `embedded PostgreSQL, ${signal}`,
  signal,
  setup: async () => {
    // Under /tmp, which the dedicated postgres user can traverse.
    const dir = mkdtempSync(join(tmpdir(), "baton-signals-"));
    dirs.push(dir);
    return {
      env: { BATON_DATA_DIR: dir, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN },
      // postmaster.pid: pid, data directory, start time, port, ...
      adminUrl: () => {
        const port = readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[3];
        return `postgres://baton:baton-embedded@127.0.0.1:${port}/postgres`;
      },
    };
  },
});

type Outcome = { ok: true } | { ok: false; code: number; reason: string; message: string };

function outcome(p: Promise<unknown>): Promise<Outcome> {
  return p.then(
    () => ({ ok: true }) as const,
    (err: ServiceError) => {
      let reason = "";
      try {
        reason = decodeError(err).reason;
      } catch {
        // a bare status, without ErrorInfo
      }
      return { ok: false, code: err.code, reason, message: err.details };
    },
  );
}

function unary<Req>(b: ReadyBroker, method: "issue" | "revoke", req: Req, md: Metadata, deadlineMs = 60_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const fn = b.client[method] as unknown as (r: Req, m: Metadata, o: object, cb: (e: ServiceError | null, r: unknown) => void) => void;
    fn.call(b.client, req, md, { deadline: new Date(Date.now() + deadlineMs) }, (e, r) => (e ? reject(e) : resolve(r)));
  });
}

async function createApp(b: ReadyBroker): Promise<Metadata> {
  const res = await new Promise<{ app?: { appId: string }; clientSecret: string }>((resolve, reject) => {
    b.admin.createApp(
      { name: `signals-${Math.random().toString(36).slice(2, 8)}`, scopeCeiling: ["read:records:*"], audiences: ["ehr-api"], maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined },
      bearer(OPERATOR_TOKEN),
      { deadline: new Date(Date.now() + 30_000) },
      (e, r) => (e ? reject(e) : resolve(r)),
    );
  });
  return basic(res.app!.appId, res.clientSecret);
}

async function waitUntil(what: string, pred: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.each([DATABASE_URL_MODE("SIGTERM"), DATABASE_URL_MODE("SIGINT"), EMBEDDED_MODE("SIGTERM")])("$name", (mode) => {
  it("running calls finish, streams end with SHUTTING_DOWN and a cursor, exit code 0", async () => {
    const { env, adminUrl } = await mode.setup();
    const b = await serveReady(env);
    const lock = new pg.Client({ connectionString: adminUrl() });
    lock.on("error", () => {}); // the broker's embedded PostgreSQL stops under it
    try {
      const app = await createApp(b);
      const toRevoke = await Promise.all(
        [1, 2, 3, 4].map((i) => unary(b, "issue", issueRequest({ taskId: `revoke-me-${i}` }), app) as Promise<{ claims?: { tokenId: string } }>),
      );
      const streams: TestStream[] = [openStream(b.client, "", bearer(OPERATOR_TOKEN)), openStream(b.client, "", bearer(OPERATOR_TOKEN))];
      for (const s of streams) await s.waitFor((x) => x.events.some((e) => e.snapshotComplete), 30_000, "the snapshot");

      await lock.connect();
      await lock.query("BEGIN");
      await lock.query("SELECT * FROM audit_head WHERE id = 1 FOR UPDATE");
      const inFlight = [
        ...[1, 2, 3, 4, 5, 6].map((i) => outcome(unary(b, "issue", issueRequest({ taskId: `in-flight-${i}` }), app))),
        ...toRevoke.map((r) =>
          outcome(unary(b, "revoke", { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: r.claims!.tokenId, appId: "", reason: "test" }, app)),
        ),
      ];
      // Running: the broker's transactions wait on the row the test holds.
      // Asked from another connection: inside the lock's transaction
      // PostgreSQL would answer from one snapshot of pg_stat_activity.
      const watcher = new pg.Client({ connectionString: adminUrl() });
      watcher.on("error", () => {});
      await watcher.connect();
      try {
        await waitUntil("calls waiting on the lock", async () => {
          const { rows } = await watcher.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'baton' AND wait_event_type = 'Lock'",
          );
          return rows[0]!.n >= 2;
        });
      } finally {
        await watcher.end();
      }
      await new Promise((r) => setTimeout(r, 300)); // the rest of the calls reach the broker

      const signalled = Date.now();
      b.child.kill(mode.signal);
      // Streams end at once, without waiting for the running calls.
      for (const s of streams) await s.waitFor((x) => x.ended !== null, 10_000, "the stream to end");
      await new Promise((r) => setTimeout(r, 500));
      expect(b.exit(), "the broker exited before its running calls finished").toBeNull();
      await lock.query("ROLLBACK");

      const results = await Promise.all(inFlight);
      const code = await exitWithin(b, 30_000);
      const drainMs = Date.now() - signalled;
      console.log(`[signals] ${mode.name}: drained in ${drainMs} ms (500 ms of it holding the lock), exit ${code}`);

      expect(results.filter((r) => !r.ok)).toEqual([]);
      for (const s of streams) {
        expect(s.ended).toMatchObject({ code: status.UNAVAILABLE, reason: "SHUTTING_DOWN" });
        expect((s.ended as { metadata: Record<string, string> }).metadata.cursor).toMatch(/^[0-9]+$/);
      }
      expect(code).toBe(0);
      expect(drainMs).toBeLessThan(20_000);
      expect(b.stderr()).toBe("");
      expect(b.stdout()).toContain('"shutdown complete"');
    } finally {
      await lock.end().catch(() => {});
      b.close();
      if (b.exit() === null) b.child.kill("SIGKILL");
    }
  }, 180_000);
});

describe("under load", () => {
  it("SIGTERM with 32 callers issuing: the drain is bounded and no admitted call fails", async () => {
    const b = await serveReady({ DATABASE_URL: (await database()).url, BATON_MASTER_KEY: MasterKey.generate(), BATON_OPERATOR_TOKEN: OPERATOR_TOKEN, ...UNLIMITED });
    try {
      const app = await createApp(b);
      let signalled = 0;
      const tally = { ok: 0, shuttingDown: 0, refusedAfterSignal: 0, other: [] as Outcome[] };
      const worker = async (w: number): Promise<void> => {
        for (let i = 0; b.exit() === null; i++) {
          const r = await outcome(unary(b, "issue", issueRequest({ taskId: `load-${w}-${i}` }), app, 10_000));
          if (r.ok) tally.ok += 1;
          else if (r.reason === "SHUTTING_DOWN") tally.shuttingDown += 1;
          // Not admitted: sent once the broker had stopped taking connections (after its HTTP/2
          // GOAWAY the client reconnects, and nothing listens). A call the broker dropped would
          // say "Connection dropped" instead, and count as a failure.
          else if (signalled > 0 && r.code === status.UNAVAILABLE && r.reason === "" && /No connection established/.test(r.message)) {
            tally.refusedAfterSignal += 1;
          }
          else tally.other.push(r);
          if (!r.ok) return;
        }
      };
      const workers = Array.from({ length: 32 }, (_, w) => worker(w));
      await new Promise((r) => setTimeout(r, 2_000));
      const okBefore = tally.ok;
      signalled = Date.now();
      b.child.kill("SIGTERM");
      const code = await exitWithin(b, 30_000);
      const drainMs = Date.now() - signalled;
      await Promise.all(workers);
      console.log(
        `[signals] under load (32 callers, ${okBefore} issued in the 2 s before): drained in ${drainMs} ms; ` +
          `after the signal: ${tally.ok - okBefore} completed, ${tally.shuttingDown} SHUTTING_DOWN, ${tally.refusedAfterSignal} not connected; exit ${code}`,
      );
      expect(okBefore).toBeGreaterThan(0);
      expect(tally.other).toEqual([]);
      expect(code).toBe(0);
      expect(drainMs).toBeLessThan(20_000);
    } finally {
      b.close();
      if (b.exit() === null) b.child.kill("SIGKILL");
    }
  }, 120_000);
});
