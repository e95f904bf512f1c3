// Validate with app credentials when the app has not been used for a while
// (the old 2 s app cache cold): APPS apps each validate one token of their
// own, one call at a time, more than 2 s after any earlier use. Prints the
// median and p99 latency of those calls per round, and the median of ROUNDS.
//
//   npx tsx bench/app-view.ts

import { IssueRequest, TokenStatus } from "../server/gen/baton/v1/broker.js";
import { machine, median, pct, sleep, startBench, unary } from "./harness.js";

const APPS = Number(process.env.BENCH_APPS ?? 30);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const bench = await startBench();
try {
  const broker = await bench.broker();
  const c = broker.client;
  const apps = [];
  for (let i = 0; i < APPS; i++) apps.push(await bench.createApp(broker, ["read:records:*"], ["ehr-api"]));
  const tokens: string[] = [];
  for (const app of apps) {
    const r: { accessToken: string } = await unary(c.issue.bind(c), IssueRequest.fromPartial({ taskId: "t", scopes: ["read:records:P-1"], audiences: ["ehr-api"] }), app.md);
    tokens.push(r.accessToken);
  }
  console.log(`# Validate with app credentials, app unused for 2.5 s: ${machine()}; ${APPS} apps, one call at a time`);
  const medians: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    await sleep(2_500);
    const ms: number[] = [];
    for (let i = 0; i < APPS; i++) {
      const t0 = process.hrtime.bigint();
      const r: { status: TokenStatus } = await unary(c.validate.bind(c), { token: tokens[i]!, audience: "ehr-api", requiredScopes: [] }, apps[i]!.md);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (r.status !== TokenStatus.TOKEN_STATUS_VALID) throw new Error(`unexpected status ${r.status}`);
    }
    ms.sort((a, b) => a - b);
    medians.push(median(ms));
    console.log(`round ${round + 1}: p50 ${median(ms).toFixed(2)} ms, p99 ${pct(ms, 0.99).toFixed(2)} ms`);
  }
  console.log(`median of ${ROUNDS} rounds: p50 ${median(medians).toFixed(2)} ms`);
} finally {
  await bench.stop();
}
