// What telemetry costs per RPC: one access-log line through a request's child
// logger (pino, synchronous writes to stdout), one observeRpc, and one
// /metrics render. Figures go to stderr; send stdout to /dev/null (or a file)
// as a log shipper would read it.
//
//   npx tsx bench/telemetry.ts > /dev/null

import { createLogger } from "../server/telemetry/logger.js";
import { Metrics } from "../server/telemetry/metrics.js";

const ROUNDS = 5;
const LINES = 50_000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function perOp(n: number, fn: (i: number) => void): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  return Number(process.hrtime.bigint() - t0) / 1e3 / n;
}

const logger = createLogger("info");
const metrics = new Metrics();
const fields = { method: "BrokerService/Issue", code: "OK", duration_ms: 1.234, peer: "127.0.0.1:50000", principal: "app", app_id: "app_Nd1pJgiWaarTB3IuL1LXj0" };

const logUs: number[] = [];
const metricUs: number[] = [];
const renderMs: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  logUs.push(perOp(LINES, (i) => logger.child({ request_id: `9a9b2ee8-af28-4ba4-9fd2-${i}` }).info("rpc", fields)));
  metricUs.push(perOp(LINES, (i) => metrics.observeRpc(["Issue", "Validate", "Delegate"][i % 3]!, "OK", 0.001)));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 20; i++) await metrics.render();
  renderMs.push(Number(process.hrtime.bigint() - t0) / 1e6 / 20);
}
process.stderr.write(
  `access-log line (child logger + info, sync stdout): median ${median(logUs).toFixed(2)} us/line over ${ROUNDS} rounds of ${LINES}\n` +
    `observeRpc (counter + histogram): median ${median(metricUs).toFixed(2)} us/call\n` +
    `/metrics render (default metrics + baton families): median ${median(renderMs).toFixed(2)} ms/scrape\n`,
);
