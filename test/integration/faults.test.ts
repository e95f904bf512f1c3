// The broker against a database that fails under it: connections killed
// mid-transaction, PostgreSQL restarted, PostgreSQL hung (SIGSTOP). The
// broker is `baton serve` in a child process, so a crash shows as its exit;
// PostgreSQL is a private embedded cluster that this file may kill, stop and
// freeze without touching the one other test files share.

import { type ServiceError, status, type Metadata } from "@grpc/grpc-js";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { RevocationTarget } from "../../server/gen/baton/v1/broker.js";
import { type EmbeddedDatabase, freePort, startEmbedded } from "../../server/storage/embedded.js";
import { exitWithin, serveReady, type ReadyBroker } from "../fixtures/serve.js";
import { basic, bearer, decodeError, issueRequest, OPERATOR_TOKEN } from "../helpers/broker.js";
import { openStream } from "../helpers/stream.js";

// The load here is about faults, not fairness: no per-app rate limit gets in the way.
const UNLIMITED = { BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" };

let dir: string;
let port: number;
let cluster: EmbeddedDatabase | null = null;
const url = (database: string): string => `postgres://baton:baton-embedded@127.0.0.1:${port}/${database}`;

async function startCluster(): Promise<void> {
  cluster = await startEmbedded({ dataDir: dir, port, persistent: true, unsafeFast: true });
}

beforeAll(async () => {
  // Under /tmp, which the dedicated postgres user can traverse.
  dir = mkdtempSync(join(tmpdir(), "baton-faults-"));
  port = await freePort();
  await startCluster();
});
afterAll(async () => {
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url("postgres") });
  c.on("error", () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

async function newDatabase(): Promise<string> {
  const name = `faults_${Math.random().toString(36).slice(2, 10)}`;
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  return name;
}

async function serve(database: string): Promise<ReadyBroker> {
  return serveReady({ DATABASE_URL: url(database), BATON_MASTER_KEY: MasterKey.generate(), BATON_OPERATOR_TOKEN: OPERATOR_TOKEN, ...UNLIMITED });
}

type Outcome = { ok: true; ms: number; value: unknown } | { ok: false; ms: number; code: number; reason: string; message: string };

/** A unary call with a long deadline: a database wait shows as a slow answer, not as DEADLINE_EXCEEDED. */
function attempt(b: ReadyBroker, method: "issue" | "revoke", req: unknown, md: Metadata, deadlineMs = 60_000): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve) => {
    const fn = b.client[method] as unknown as (r: unknown, m: Metadata, o: object, cb: (e: ServiceError | null, r: unknown) => void) => void;
    fn.call(b.client, req, md, { deadline: new Date(started + deadlineMs) }, (err, value) => {
      const ms = Date.now() - started;
      if (!err) return resolve({ ok: true, ms, value });
      let reason = "";
      try {
        reason = decodeError(err).reason;
      } catch {
        // a bare status, without ErrorInfo
      }
      resolve({ ok: false, ms, code: err.code, reason, message: err.details });
    });
  });
}

const issue = (b: ReadyBroker, app: Metadata, task: string): Promise<Outcome> => attempt(b, "issue", issueRequest({ taskId: task }), app);
const revoke = (b: ReadyBroker, app: Metadata, tokenId: string): Promise<Outcome> =>
  attempt(b, "revoke", { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: tokenId, appId: "", reason: "faults test" }, app);
const tokenId = (o: Outcome): string => ((o as { value: { claims: { tokenId: string } } }).value).claims.tokenId;

async function createApp(b: ReadyBroker): Promise<Metadata> {
  const res = await new Promise<{ app?: { appId: string }; clientSecret: string }>((resolve, reject) => {
    b.admin.createApp(
      { name: "faults", scopeCeiling: ["read:records:*"], audiences: ["ehr-api"], maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined },
      bearer(OPERATOR_TOKEN),
      { deadline: new Date(Date.now() + 30_000) },
      (e, r) => (e ? reject(e) : resolve(r)),
    );
  });
  return basic(res.app!.appId, res.clientSecret);
}

/** Retries an Issue until one succeeds; returns how long that took. */
async function servesAgain(b: ReadyBroker, app: Metadata, limitMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    const o = await attempt(b, "issue", issueRequest({ taskId: "probe" }), app, 10_000);
    if (o.ok) return Date.now() - started;
    if (Date.now() - started > limitMs) throw new Error(`the broker did not serve again within ${limitMs} ms: ${JSON.stringify(o)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function listening(database: string): Promise<boolean> {
  return admin(async (c) => {
    const { rows } = await c.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'baton-listen' AND datname = $1",
      [database],
    );
    return rows[0]!.n === 1;
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

describe("connections dropped under load", () => {
  it("survives pg_terminate_backend and a PostgreSQL restart mid-transaction, answers UNAVAILABLE meanwhile, and serves again", async () => {
    const database = await newDatabase();
    const b = await serve(database);
    let stop = false;
    const failures: Outcome[] = [];
    let ok = 0;
    try {
      const app = await createApp(b);
      // Eight callers, each issuing a token and revoking it, as fast as they can.
      const workers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const o = await issue(b, app, `load-${w}-${i}`);
          const r = o.ok ? await revoke(b, app, tokenId(o)) : o;
          if (r.ok) ok += 1;
          else {
            failures.push(r);
            await new Promise((res) => setTimeout(res, 20));
          }
        }
      });
      // The load is running: some pairs are done.
      const loaded = Date.now() + 30_000;
      while (ok < 10 && Date.now() < loaded) await new Promise((r) => setTimeout(r, 50));
      expect(ok).toBeGreaterThanOrEqual(10);

      // 1. Every backend killed, three times over, while transactions run.
      for (let i = 0; i < 3; i++) {
        await admin((c) => c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"));
        await new Promise((r) => setTimeout(r, 200));
      }
      const afterTerminate = await servesAgain(b, app, 20_000);
      expect(b.exit(), "the broker exited").toBeNull();

      // 2. PostgreSQL stopped (fast shutdown: sessions are terminated) and started again.
      await cluster!.stop();
      cluster = null;
      await new Promise((r) => setTimeout(r, 1_000));
      expect(b.exit(), "the broker exited").toBeNull();
      await startCluster();
      const afterRestart = await servesAgain(b, app, 30_000);
      stop = true;
      await Promise.all(workers);

      // The LISTEN connection came back too.
      const deadline = Date.now() + 20_000;
      while (!(await listening(database))) {
        if (Date.now() > deadline) throw new Error("the LISTEN connection did not come back");
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(
        `[faults] ${ok} issue+revoke pairs; serves again ${afterTerminate} ms after pg_terminate_backend, ` +
          `${afterRestart} ms after PostgreSQL was back; ${failures.length} calls failed meanwhile`,
      );
      expect(b.exit(), "the broker exited").toBeNull();
      expect(failures.length).toBeGreaterThan(0);
      // Every failure said "unavailable, retry": never INTERNAL, never a bare status.
      expect(failures.filter((f) => !(f.ok === false && f.code === status.UNAVAILABLE && f.reason === "UNAVAILABLE"))).toEqual([]);
      expect(b.stderr()).toBe("");

      b.child.kill("SIGTERM");
      expect(await exitWithin(b, 30_000)).toBe(0);
    } finally {
      stop = true;
      b.close();
      if (b.exit() === null) b.child.kill("SIGKILL");
      if (!cluster) await startCluster();
    }
  }, 180_000);
});

/** The postmaster and every process it started (its backends and helpers). */
function postgresPids(): number[] {
  const postmaster = Number(readFileSync(join(dir, "pg", "postmaster.pid"), "utf8").split("\n")[0]);
  const children = readdirSync("/proc")
    .filter((d) => /^[0-9]+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === postmaster;
      } catch {
        return false;
      }
    })
    .map(Number);
  return [postmaster, ...children];
}

describe("PostgreSQL hung (SIGSTOP)", () => {
  it("Issue, Revoke and new streams answer UNAVAILABLE within the timeouts, /readyz 503 fast; SIGCONT and it serves again", async () => {
    const database = await newDatabase();
    const b = await serve(database);
    let frozen: number[] = [];
    try {
      const app = await createApp(b);
      const issued = await Promise.all(Array.from({ length: 12 }, (_, i) => issue(b, app, `to-revoke-${i}`)));
      expect(issued.every((o) => o.ok)).toBe(true);
      const ready = async (): Promise<{ status: number; ms: number }> => {
        const started = Date.now();
        const res = await fetch(`http://127.0.0.1:${b.httpPort}/readyz`, { signal: AbortSignal.timeout(30_000) });
        return { status: res.status, ms: Date.now() - started };
      };
      expect((await ready()).status).toBe(200);

      frozen = postgresPids();
      for (const pid of frozen) process.kill(pid, "SIGSTOP");

      const rounds: { issue: number[]; revoke: number[]; stream: number; readyz: { status: number; ms: number } }[] = [];
      // Round 1 finds the pool's open connections (their statements hang);
      // round 2 finds them discarded, so it must open new ones (which hang).
      for (const round of [0, 1]) {
        const streamStarted = Date.now();
        const stream = openStream(b.client, "", bearer(OPERATOR_TOKEN));
        const calls = await Promise.all([
          ...Array.from({ length: 6 }, (_, i) => issue(b, app, `frozen-${round}-${i}`)),
          ...issued.slice(round * 6, round * 6 + 6).map((o) => revoke(b, app, tokenId(o))),
        ]);
        await stream.waitFor((s) => s.ended !== null, 30_000, "the stream to end");
        const streamMs = Date.now() - streamStarted;
        const readyz = await ready();
        for (const c of calls) expect(c).toMatchObject({ ok: false, code: status.UNAVAILABLE, reason: "UNAVAILABLE" });
        expect(stream.ended).toMatchObject({ code: status.UNAVAILABLE, reason: "UNAVAILABLE" });
        expect(readyz.status).toBe(503);
        // Generous bounds (the deadline is 60 s): the defaults allow 2 s to get a connection plus 5.5 s for a statement.
        for (const c of calls) expect(c.ms).toBeLessThan(20_000);
        expect(readyz.ms).toBeLessThan(10_000);
        rounds.push({ issue: calls.slice(0, 6).map((c) => c.ms), revoke: calls.slice(6).map((c) => c.ms), stream: streamMs, readyz });
      }
      for (const pid of frozen) process.kill(pid, "SIGCONT");
      frozen = [];
      const back = await servesAgain(b, app, 30_000);
      expect((await ready()).status).toBe(200);
      for (const [i, r] of rounds.entries()) {
        console.log(
          `[faults] SIGSTOP round ${i + 1}: time to UNAVAILABLE, median of 6: Issue ${median(r.issue)} ms, Revoke ${median(r.revoke)} ms; ` +
            `new stream ended after ${r.stream} ms; /readyz ${r.readyz.status} in ${r.readyz.ms} ms`,
        );
      }
      console.log(`[faults] after SIGCONT: serves again in ${back} ms`);
      expect(b.exit(), "the broker exited").toBeNull();
      b.child.kill("SIGTERM");
      expect(await exitWithin(b, 30_000)).toBe(0);
    } finally {
      for (const pid of frozen) process.kill(pid, "SIGCONT");
      b.close();
      if (b.exit() === null) b.child.kill("SIGKILL");
    }
  }, 180_000);
});
