// `npm run bench:load`: the compiled Go load generator (bench/loadgen)
// against a broker process on an embedded PostgreSQL (fsync on, as in
// production). Builds loadgen, starts the database and a broker with rate
// limits out of the way, registers an app, then runs loadgen for each RPC:
// in a closed loop at each concurrency (LOAD_CONCURRENCY), then in an open
// loop at each fixed rate (LOAD_RATES, none by default), LOAD_RUNS times
// each, and prints the median of each figure.
//
//   npm run bench:load
//   LOAD_RPCS=revoke LOAD_RUNS=3 LOAD_SECONDS=10 LOAD_CONCURRENCY=1,16,64 npm run bench:load
//   LOAD_RPCS=issue LOAD_CONCURRENCY= LOAD_RATES=500,1000,2000 npm run bench:load   (open loop only)
//   BENCH_NODE=.tools/node-24.22.3/bin/node npm run bench:load   (the broker under the Node the image pins)
//   LOAD_RPCS=issue+revoke LOAD_CONCURRENCY=32 npm run bench:load   (mixed: both at once, 32 callers each)
//   LOAD_REPLICAS=2 npm run bench:load   (two broker processes on the one database; the broker column sums them)
//   LOAD_WARMUP=5s npm run bench:load   (longer warm-up before each run; default 1s)
//   LOAD_FLOOR=1 LOAD_CONCURRENCY=64 npm run bench:load   (grpc-js's own cost: a server whose Issue and Validate do nothing)
//
// Besides latency, each row gives the CPU the broker and PostgreSQL used
// during the run (cores busy) and per call, from /proc, the part of it the
// broker's one JavaScript thread used, and loadgen's own CPU.

import { credentials } from "@grpc/grpc-js";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AdminServiceClient } from "../server/gen/baton/v1/admin.js";
import { type BenchBroker, machine, median, sleep, startBench, unary } from "./harness.js";

// LOAD_FLOOR=1: drive bench/grpc-floor.ts (the contract with handlers that do
// nothing) instead of a broker: what gRPC itself costs per call here.
const FLOOR = process.env.LOAD_FLOOR === "1";
const RPCS = (process.env.LOAD_RPCS ?? (FLOOR ? "issue,validate" : "issue,delegate,validate,revoke,revoke-many")).split(",");
const list = (v: string): number[] => v.split(",").filter((s) => s.trim() !== "").map(Number);
const CONCURRENCY = list(process.env.LOAD_CONCURRENCY ?? "1,16,64");
// Open loop: calls per second, evenly spaced; latency from each call's scheduled time.
const RATES = list(process.env.LOAD_RATES ?? "");
// Open loop: the most calls outstanding (loadgen -max-inflight).
const MAX_INFLIGHT = Number(process.env.LOAD_MAX_INFLIGHT ?? 2000);
const RUNS = Number(process.env.LOAD_RUNS ?? 1);
const SECONDS = Number(process.env.LOAD_SECONDS ?? 10);
const BULK = Number(process.env.LOAD_BULK ?? 10);
const REPLICAS = Number(process.env.LOAD_REPLICAS ?? 1);
// LOAD_PROFILE=DIR writes a V8 CPU profile of the broker into DIR.
const PROFILE = process.env.LOAD_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.LOAD_PROFILE}`] : [];
// Calls before each run's measurement starts (loadgen -warmup): a fresh
// broker is still compiling its hot paths for the first seconds.
const WARMUP = process.env.LOAD_WARMUP ?? "1s";

interface Result {
  readonly per_second: number;
  readonly p50_ms: number;
  readonly p99_ms: number;
  readonly p999_ms: number;
  readonly calls: number;
  readonly errors: Record<string, number>;
  readonly targets_per_second?: number;
  readonly sent?: number;
  readonly late?: number;
  readonly dropped?: number;
  readonly cpu_seconds?: number;
  /** Added here: CPU seconds of the broker and of PostgreSQL per second of the run (1 = one core busy). */
  broker_cores?: number;
  /** The broker's JavaScript thread alone (its pid's own thread): the rest is libuv's pool, GC and compiler threads. */
  main_cores?: number;
  db_cores?: number;
  /** loadgen's CPU seconds (all of a mixed run's loadgens) per second of the run. */
  gen_cores?: number;
  /** This RPC's part of a mixed run's calls (its part of the CPU). */
  share?: number;
}

// CPU time from /proc (Linux), in seconds: of one process, and of every
// process named postgres (the bench's embedded server is the only one).
const TICK = 100; // USER_HZ
function cpuOf(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICK;
}
function processCpu(pid: number, thread?: number): number {
  try {
    return cpuOf(readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, "utf8"));
  } catch {
    return NaN;
  }
}
function postgresCpu(): number {
  let total = 0;
  for (const d of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, "utf8");
      if (stat.includes("(postgres)")) total += cpuOf(stat);
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

const HEADER = "rpc          conc    ops/s   p50 ms   p99 ms  p999 ms  broker  ms/op   main     db  ms/op    gen  errors";

const dir = mkdtempSync(join(tmpdir(), "baton-loadgen-"));
const bin = join(dir, "loadgen");
execFileSync("go", ["build", "-o", bin, "."], { cwd: resolve("bench/loadgen"), stdio: "inherit" });

const bench = FLOOR ? null : await startBench();
const floor = FLOOR ? await startFloor() : null;
try {
  // LOAD_REPLICAS=N: N broker processes on the one database, loadgen's workers spread over them.
  const brokers: Pick<BenchBroker, "address" | "pid">[] = floor ? [floor] : [];
  let app: { app?: { appId: string }; clientSecret: string } | undefined = floor ? { app: { appId: "app_floor" }, clientSecret: "floor" } : undefined;
  if (bench) {
    for (let i = 0; i < REPLICAS; i++) brokers.push(await bench.broker({ BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" }, PROFILE));
    const admin = new AdminServiceClient(brokers[0]!.address, credentials.createInsecure());
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
  }
  if (!app) throw new Error("no app");

  console.log(`machine: ${machine()}; ${RUNS} run(s) of ${SECONDS} s per row, medians; revoke-many: ${BULK} targets per call${FLOOR ? "; the floor server (bench/grpc-floor.ts), not a broker" : ""}${REPLICAS > 1 ? `; ${REPLICAS} broker replicas, workers spread over them` : ""}`);
  const base = ["-addr", brokers.map((b) => b.address).join(","), "-client-id", app.app!.appId, "-duration", `${SECONDS}s`, "-bulk", String(BULK), "-warmup", WARMUP, "-json"];
  // One row per RPC; "issue+revoke" runs one loadgen per RPC at once (a
  // mixed load), each at the row's concurrency or rate, and prints a line
  // for each, with the CPU of the whole run divided by all their calls.
  const rows = async (rpcs: string, args: string[]): Promise<{ rpc: string; runs: Result[]; m: (f: (r: Result) => number) => number; line: string }[]> => {
    const parts = rpcs.split("+");
    const runs: Result[][] = parts.map(() => []);
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      const brokerCpu = (): number => brokers.reduce((n, b) => n + processCpu(b.pid), 0);
      const mainCpu = (): number => brokers.reduce((n, b) => n + processCpu(b.pid, b.pid), 0);
      const [b0, m0, d0] = [brokerCpu(), mainCpu(), postgresCpu()];
      const out = await Promise.all(parts.map(async (rpc) => JSON.parse(await runLoadgen([...base, "-rpc", rpc, ...args], app.clientSecret)) as Result));
      const wall = (performance.now() - t0) / 1000;
      const [broker_cores, main_cores, db_cores] = [(brokerCpu() - b0) / wall, (mainCpu() - m0) / wall, (postgresCpu() - d0) / wall];
      const gen_cores = out.reduce((n, o) => n + (o.cpu_seconds ?? NaN), 0) / wall;
      const calls = out.reduce((n, o) => n + o.per_second, 0);
      out.forEach((res, i) => runs[i]!.push({ ...res, broker_cores, main_cores, db_cores, gen_cores, share: res.per_second / calls }));
    }
    return parts.map((rpc, i) => {
      const m = (f: (r: Result) => number) => median(runs[i]!.map(f));
      const errors = runs[i]!.reduce((n, r) => n + Object.values(r.errors ?? {}).reduce((a, b) => a + b, 0), 0);
      // CPU per call: cores busy over the run (warm-up included) over the measured rate.
      const perCall = (f: (r: Result) => number | undefined) => m((r) => (((f(r) ?? NaN) * (r.share ?? 1)) / r.per_second) * 1000).toFixed(2).padStart(6);
      const cores = (f: (r: Result) => number | undefined) => m((r) => f(r) ?? NaN).toFixed(2).padStart(6);
      const line = `${m((r) => r.per_second).toFixed(0).padStart(8)} ${m((r) => r.p50_ms).toFixed(2).padStart(8)} ${m((r) => r.p99_ms).toFixed(2).padStart(8)} ${m((r) => r.p999_ms).toFixed(2).padStart(8)}  ${cores((r) => r.broker_cores)} ${perCall((r) => r.broker_cores)} ${perCall((r) => r.main_cores)} ${cores((r) => r.db_cores)} ${perCall((r) => r.db_cores)} ${cores((r) => r.gen_cores)}  ${errors}`;
      return { rpc: parts.length > 1 ? `${rpc}(${rpcs})` : rpc, runs: runs[i]!, m, line };
    });
  };
  const extras = (rpc: string, runs: Result[], m: (f: (r: Result) => number) => number): string =>
    (rpc === "revoke-many" ? `  (${m((r) => r.targets_per_second ?? 0).toFixed(0)} revocations/s)` : "") +
    (RUNS > 1 ? `  runs ops/s: ${runs.map((r) => r.per_second.toFixed(0)).join(", ")}` : "");
  if (CONCURRENCY.length > 0) {
    console.log(`closed loop (broker/db: cores busy, and CPU ms per call; main: the broker's JavaScript thread's ms per call; gen: loadgen's cores busy)\n${HEADER}`);
    for (const rpcs of RPCS) {
      for (const c of CONCURRENCY) {
        for (const { rpc, runs, m, line } of await rows(rpcs, ["-concurrency", String(c)])) {
          console.log(`${rpc.padEnd(12)} ${String(c).padStart(4)} ${line}${extras(rpc, runs, m)}`);
        }
      }
    }
  }
  if (RATES.length > 0) {
    console.log(`open loop (latency from the scheduled send; at most ${MAX_INFLIGHT} in flight)\n${HEADER.replace("conc", "rate")}  late  dropped`);
    for (const rpcs of RPCS) {
      for (const rate of RATES) {
        // -concurrency: parent tokens for delegate, shared round robin.
        for (const { rpc, runs, m, line } of await rows(rpcs, ["-rate", String(rate), "-max-inflight", String(MAX_INFLIGHT), "-concurrency", "64"])) {
          console.log(`${rpc.padEnd(12)} ${String(rate).padStart(4)} ${line}  ${m((r) => r.late ?? 0).toFixed(0).padStart(4)}  ${m((r) => r.dropped ?? 0).toFixed(0).padStart(7)}${extras(rpc, runs, m)}`);
        }
      }
    }
  }
} finally {
  await bench?.stop();
  floor?.stop();
  rmSync(dir, { recursive: true, force: true });
}

/** bench/grpc-floor.ts in a child process, under the Node and loader a broker runs under. */
async function startFloor(): Promise<{ address: string; pid: number; stop(): void }> {
  const child = spawn(process.env.BENCH_NODE || process.execPath, ["--import", "tsx", "bench/grpc-floor.ts"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolvePort, reject) => {
    child.stdout.once("data", (d: Buffer) => resolvePort(d.toString().trim()));
    child.once("exit", (code) => reject(new Error(`grpc-floor exited ${code}`)));
  });
  return { address: `127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill("SIGTERM") };
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
