// What AccessReporter.report() costs on the verification path, in ns per
// call (median of rounds of mean per call): a decision buffered, and one
// dropped because the buffer is full. The broker address is dead, so no
// send ever succeeds and nothing leaves the process; the figure is the
// synchronous cost a request pays.
//
//   npx tsx bench/access-report.ts

import { createServer } from "node:net";
import { AccessReporter } from "../sdk/ts/src/index.js";

const ROUNDS = 7;
const N = 100_000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const s = createServer();
await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
const dead = `127.0.0.1:${(s.address() as { port: number }).port}`;
await new Promise<void>((r) => s.close(() => r()));

const decision = {
  tokenId: "tok_6f1d9c0e2b7a4c3d",
  agentId: "spiffe://baton.local/app/app_Nd1pJgiWaarTB3IuL1LXj0/task/visit-77/agent/a1b2c3",
  allowed: true,
  scope: "read:records:P-1042",
  resource: "GET /records/P-1042",
  outcome: "200",
};
const credentials = { clientId: "rs_bench", clientSecret: "secret" };

function perCallNs(reporter: AccessReporter): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) reporter.report(decision);
  return Number(process.hrtime.bigint() - t0) / N;
}

const buffered: number[] = [];
const dropped: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  // Room for every call: each is buffered.
  const roomy = new AccessReporter({ broker: dead, credentials, audience: "ehr-api", bufferSize: N, flushIntervalMs: 3_600_000 });
  buffered.push(perCallNs(roomy));
  // Already full: each call is dropped and counted.
  dropped.push(perCallNs(roomy));
  await roomy.close(1);
}
console.log(`TS AccessReporter.report(): buffered ${median(buffered).toFixed(0)} ns/call, dropped (buffer full) ${median(dropped).toFixed(0)} ns/call (median of ${ROUNDS} rounds of ${N})`);
