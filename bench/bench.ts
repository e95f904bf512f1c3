// `npm run bench`: starts an embedded PostgreSQL (fsync on, as in
// production) and a broker in a child process, then drives Issue, Validate
// and Delegate (plain, and key-bound with a proof per call) through the
// generated client over loopback at several concurrencies. Prints throughput and p50/p99 latency: the median of
// BENCH_ROUNDS rounds of BENCH_SECONDS each.
//
//   BENCH_SECONDS=3 BENCH_ROUNDS=3 BENCH_CONCURRENCY=1,16,64 npm run bench
//   BENCH_METHODS=Issue,Validate npm run bench     (only these rows)

import { Metadata } from "@grpc/grpc-js";
import { AgentKey } from "../sdk/ts/src/index.js";
import { type DelegateRequest, type IssueRequest } from "../server/gen/baton/v1/broker.js";
import { machine, median, pct, startBench, unary } from "./harness.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? "1,16,64").split(",").map(Number);
const METHODS = process.env.BENCH_METHODS?.split(",") ?? null;

type Call = () => Promise<unknown>;

interface Round {
  readonly perSecond: number;
  readonly p50ms: number;
  readonly p99ms: number;
  readonly errors: number;
}


async function round(fn: Call, concurrency: number, seconds: number): Promise<Round> {
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        await fn();
        latencies.push(performance.now() - t0);
      } catch {
        errors += 1;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / elapsed, p50ms: pct(latencies, 0.5), p99ms: pct(latencies, 0.99), errors };
}

async function scenario(name: string, fn: Call): Promise<void> {
  if (METHODS && !METHODS.includes(name)) return;
  await round(fn, 16, 1); // warm-up: JIT, connection pool, plans
  for (const c of CONCURRENCY) {
    const rounds: Round[] = [];
    for (let i = 0; i < ROUNDS; i++) rounds.push(await round(fn, c, SECONDS));
    const row = [
      name.padEnd(9),
      String(c).padStart(11),
      median(rounds.map((r) => r.perSecond)).toFixed(0).padStart(10),
      median(rounds.map((r) => r.p50ms)).toFixed(2).padStart(9),
      median(rounds.map((r) => r.p99ms)).toFixed(2).padStart(9),
      String(rounds.reduce((s, r) => s + r.errors, 0)).padStart(7),
    ];
    console.log(row.join(" "));
  }
}

const bench = await startBench();
try {
  // BENCH_PROFILE=DIR writes a V8 CPU profile of the broker into DIR.
  const profile = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  // One app drives every row: its rate limit must not be what is measured.
  const broker = await bench.broker({ BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" }, profile);
  const client = broker.client;
  const { md: app } = await bench.createApp(broker, ["read:records:*"], ["ehr-api"]);
  const req: IssueRequest = {
    taskId: "bench-task", orchestrationId: "", humanPrincipal: "user:bench", scopes: ["read:records:P-1042"],
    audiences: ["ehr-api"], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "",
    approvalId: "",
  };
  const token = (await unary(client.issue.bind(client), req, app) as { accessToken: string }).accessToken;
  // Delegation from a plain token, and from a key-bound one (a fresh proof
  // of possession per call, signed here on the same machine).
  const asAgent = new Metadata();
  asAgent.set("authorization", `Bearer ${token}`);
  const dreq: DelegateRequest = { scopes: ["read:records:P-1042"], audiences: [], ttl: { seconds: 60, nanos: 0 }, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" };
  const key = await AgentKey.generate();
  const bound = (await unary(client.issue.bind(client), { ...req, agentPublicKeyJwk: key.publicJwk }, app) as { accessToken: string }).accessToken;
  const delegateWithProof = async () => {
    const md = new Metadata();
    md.set("authorization", `Bearer ${bound}`);
    md.set("baton-proof", await key.createProof("/baton.v1.BrokerService/Delegate", bound));
    return unary(client.delegate.bind(client), dreq, md);
  };

  console.log(`# Baton benchmark: ${machine()}, broker and client on one machine`);
  console.log(`# median of ${ROUNDS} rounds x ${SECONDS}s per row; PostgreSQL ${"embedded, fsync on"}`);
  console.log(["method".padEnd(9), "concurrency".padStart(11), "per second".padStart(10), "p50 ms".padStart(9), "p99 ms".padStart(9), "errors".padStart(7)].join(" "));
  await scenario("Issue", () => unary(client.issue.bind(client), req, app));
  await scenario("Validate", () => unary(client.validate.bind(client), { token, audience: "ehr-api", requiredScopes: [] }, app));
  await scenario("Delegate", () => unary(client.delegate.bind(client), dreq, asAgent));
  await scenario("Deleg+PoP", delegateWithProof);
} finally {
  await bench.stop();
}
