// `npm run bench:load`: the compiled Go load generator (bench/loadgen)
// against a broker process on an embedded PostgreSQL (fsync on, as in
// production). Builds loadgen, starts the database and a broker with rate
// limits out of the way, registers an app, then runs loadgen for each RPC at
// each concurrency, LOAD_RUNS times, and prints the median of each figure.
//
//   npm run bench:load
//   LOAD_RPCS=revoke LOAD_RUNS=3 LOAD_SECONDS=10 LOAD_CONCURRENCY=1,16,64 npm run bench:load

import { credentials } from "@grpc/grpc-js";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AdminServiceClient } from "../server/gen/baton/v1/admin.js";
import { machine, median, sleep, startBench, unary } from "./harness.js";

const RPCS = (process.env.LOAD_RPCS ?? "issue,delegate,validate,revoke,revoke-many").split(",");
const CONCURRENCY = (process.env.LOAD_CONCURRENCY ?? "1,16,64").split(",").map(Number);
const RUNS = Number(process.env.LOAD_RUNS ?? 1);
const SECONDS = Number(process.env.LOAD_SECONDS ?? 10);
const BULK = Number(process.env.LOAD_BULK ?? 10);

interface Result {
  readonly per_second: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly p999_ms: number;
  readonly calls: number;
  readonly errors: Record<string, number>;
  readonly targets_per_second?: number;
}

const dir = mkdtempSync(join(tmpdir(), "baton-loadgen-"));
const bin = join(dir, "loadgen");
execFileSync("go", ["build", "-o", bin, "."], { cwd: resolve("bench/loadgen"), stdio: "inherit" });

const bench = await startBench();
try {
  const broker = await bench.broker({ BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" });
  const admin = new AdminServiceClient(broker.address, credentials.createInsecure());
  let app: { app?: { appId: string }; clientSecret: string } | undefined;
  // The broker may still be migrating the database: retry.
  for (let i = 0; !app; i++) {
    try {
      app = await unary(admin.createApp.bind(admin), { name: `load-${Date.now()}`, scopeCeiling: ["read:records:*"], audiences: ["ehr-api"], maxTtl: undefined, maxDelegationDepth: 1, approvalPolicy: [], maxTaskLifetime: undefined }, bench.operatorMd);
    } catch (err) {
      if (i > 50) throw err;
      await sleep(200);
    }
  }
  admin.close();

  console.log(`machine: ${machine()}; ${RUNS} run(s) of ${SECONDS} s per row, medians; revoke-many: ${BULK} targets per call`);
  console.log("rpc          conc    ops/s   p50 ms   p99 ms  p999 ms  errors");
  for (const rpc of RPCS) {
    for (const c of CONCURRENCY) {
      const runs: Result[] = [];
      for (let r = 0; r < RUNS; r++) {
        const out = await runLoadgen(["-addr", broker.address, "-client-id", app.app!.appId, "-rpc", rpc, "-concurrency", String(c), "-duration", `${SECONDS}s`, "-bulk", String(BULK), "-json"], app.clientSecret);
        runs.push(JSON.parse(out) as Result);
      }
      const m = (f: (r: Result) => number) => median(runs.map(f));
      const errors = runs.reduce((n, r) => n + Object.values(r.errors ?? {}).reduce((a, b) => a + b, 0), 0);
      const each = RUNS > 1 ? `  runs ops/s: ${runs.map((r) => r.per_second.toFixed(0)).join(", ")}` : "";
      const targets = rpc === "revoke-many" ? `  (${m((r) => r.targets_per_second ?? 0).toFixed(0)} revocations/s)` : "";
      console.log(
        `${rpc.padEnd(12)} ${String(c).padStart(4)} ${m((r) => r.per_second).toFixed(0).padStart(8)} ${m((r) => r.p50_ms).toFixed(2).padStart(8)} ${m((r) => r.p99_ms).toFixed(2).padStart(8)} ${m((r) => r.p999_ms).toFixed(2).padStart(8)}  ${errors}${targets}${each}`,
      );
    }
  }
} finally {
  await bench.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** Runs loadgen; the secret goes by environment, not argv (visible in ps). */
function runLoadgen(args: string[], secret: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, args, { env: { ...process.env, BATON_CLIENT_SECRET: secret }, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("close", (code) => (code === 0 ? resolvePromise(out.trim()) : reject(new Error(`loadgen exited ${code}`))));
  });
}
