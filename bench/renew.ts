// `npx tsx bench/renew.ts`: Renew's cost next to Issue's. Starts an embedded
// PostgreSQL (fsync on) and a broker in a child process; at each
// concurrency, every worker keeps its own renewal line (issue once, then
// renew the token it holds, again and again) while another run issues.
// Renew stores a grant, a revocation (taking the revocation cursor's lock)
// and two audit events in one transaction per call, where Issue's grants are
// written in batches. Prints renewals or issues per second and p50/p99
// latency: the median of BENCH_ROUNDS rounds of BENCH_SECONDS each.
//
//   BENCH_SECONDS=3 BENCH_ROUNDS=3 BENCH_CONCURRENCY=1,16 npx tsx bench/renew.ts

import type { IssueRequest, RenewResponse } from "../server/gen/baton/v1/broker.js";
import { agentMd } from "../test/helpers/agent-key.js";
import { machine, median, pct, startBench, unary } from "./harness.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? "1,16").split(",").map(Number);

const bench = await startBench();
const broker = await bench.broker({ BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" });
const { client } = broker;
const { md: app } = await bench.createApp(broker, ["read:records:*"], ["ehr-api"]);
const req: IssueRequest = {
  taskId: "bench-renew", orchestrationId: "", humanPrincipal: "", scopes: ["read:records:P-1"], audiences: ["ehr-api"],
  ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "",
};
const issue = async (): Promise<string> => ((await unary(client.issue.bind(client), req, app)) as { accessToken: string }).accessToken;

/** One round: `concurrency` workers for `seconds`; each worker's step gets its own state. */
async function round(concurrency: number, seconds: number, start: () => Promise<string>, step: (s: string) => Promise<string>) {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    let state = await start();
    while (performance.now() < end) {
      const t0 = performance.now();
      state = await step(state);
      latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / elapsed, p50: pct(latencies, 0.5), p99: pct(latencies, 0.99) };
}

const renewStep = async (token: string): Promise<string> =>
  ((await unary(client.renew.bind(client), { ttl: undefined, allowTtlClamp: false }, agentMd(token))) as RenewResponse).accessToken;

console.log(`machine: ${machine()}; ${ROUNDS} rounds of ${SECONDS}s, medians`);
console.log("method     concurrency     per_s   p50_ms   p99_ms");
for (const [name, start, step] of [
  ["Renew", issue, renewStep],
  ["Issue", async () => "", async () => issue()],
] as const) {
  await round(4, 1, start, step); // warm-up
  for (const c of CONCURRENCY) {
    const rs = [];
    for (let i = 0; i < ROUNDS; i++) rs.push(await round(c, SECONDS, start, step));
    console.log(
      `${name.padEnd(9)} ${String(c).padStart(12)} ${median(rs.map((r) => r.perSecond)).toFixed(0).padStart(9)} ${median(rs.map((r) => r.p50)).toFixed(2).padStart(8)} ${median(rs.map((r) => r.p99)).toFixed(2).padStart(8)}`,
    );
  }
}
await bench.stop();
