// What tracing costs on Issue: three brokers on one embedded PostgreSQL, one
// with tracing off (the default), one exporting every trace to a local
// OTLP/HTTP collector (an HTTP server in this process that counts what it is
// sent), and one exporting one trace in ten (BATON_TRACE_SAMPLE_RATIO=0.1).
// Rounds alternate between them, so a change in the machine's load hits all
// three; prints the median of ROUNDS rounds per concurrency.
//
//   npx tsx bench/tracing.ts
//   BENCH_SECONDS=3 BENCH_ROUNDS=3 BENCH_CONCURRENCY=1,16 npx tsx bench/tracing.ts

import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { IssueRequest } from "../server/gen/baton/v1/broker.js";
import { type BenchBroker, machine, median, pct, startBench, unary } from "./harness.js";
import type { Metadata } from "@grpc/grpc-js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? "1,16").split(",").map(Number);

// The collector: counts requests and spans, answers 200 at once.
let requests = 0;
let spans = 0;
const collector = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    requests += 1;
    spans += Buffer.concat(chunks).toString("utf8").split('"spanId":').length - 1;
    res.writeHead(200, { "content-type": "application/json" }).end("{}");
  });
});
await new Promise<void>((r) => collector.listen(0, "127.0.0.1", r));
const collectorUrl = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;

/** CPU seconds (user + system) a process has used, from /proc (Linux; 10 ms ticks). */
function cpuSeconds(pid: number): number {
  // Fields after the command name, which is in parentheses: utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface Round {
  readonly calls: number;
  /** The broker's CPU time per call: less swayed by other load on the machine than throughput. */
  readonly cpuMsPerCall: number;
  readonly perSecond: number;
  readonly p50ms: number;
  readonly p99ms: number;
}

async function round(b: BenchBroker, md: Metadata, concurrency: number, seconds: number): Promise<Round> {
  const req: IssueRequest = {
    taskId: "bench-task", orchestrationId: "", humanPrincipal: "user:bench", scopes: ["read:records:P-1042"],
    audiences: ["ehr-api"], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "",
  };
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await unary(b.client.issue.bind(b.client), req, md);
      latencies.push(performance.now() - t0);
    }
  };
  const cpu0 = cpuSeconds(b.pid);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - t0) / 1000;
  const cpuMsPerCall = ((cpuSeconds(b.pid) - cpu0) * 1000) / latencies.length;
  latencies.sort((a, b) => a - b);
  return { calls: latencies.length, cpuMsPerCall, perSecond: latencies.length / elapsed, p50ms: pct(latencies, 0.5), p99ms: pct(latencies, 0.99) };
}

const bench = await startBench();
try {
  const limits = { BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" };
  const off = await bench.broker(limits);
  const on = await bench.broker({ ...limits, BATON_OTLP_ENDPOINT: collectorUrl });
  const sampled = await bench.broker({ ...limits, BATON_OTLP_ENDPOINT: collectorUrl, BATON_TRACE_SAMPLE_RATIO: "0.1" });
  const modes = [
    { name: "off", broker: off, md: (await bench.createApp(off, ["read:records:*"], ["ehr-api"])).md },
    { name: "on", broker: on, md: (await bench.createApp(on, ["read:records:*"], ["ehr-api"])).md },
    { name: "on 0.1", broker: sampled, md: (await bench.createApp(sampled, ["read:records:*"], ["ehr-api"])).md },
  ];
  for (const m of modes) await round(m.broker, m.md, 16, 1); // warm-up: JIT, pool, plans
  console.log(`machine: ${machine()}; ${ROUNDS} rounds of ${SECONDS} s, alternating off / on / on with ratio 0.1`);
  console.log("tracing  concurrency  Issue/s  p50 ms  p99 ms  broker CPU ms/call");
  for (const c of CONCURRENCY) {
    const results = new Map<string, Round[]>(modes.map((m) => [m.name, []]));
    let tracedCalls = 0;
    const spansBefore = spans;
    for (let i = 0; i < ROUNDS; i++) {
      for (const m of modes) {
        const r = await round(m.broker, m.md, c, SECONDS);
        results.get(m.name)!.push(r);
        if (m.name === "on") tracedCalls += r.calls;
      }
    }
    for (const m of modes) {
      const rs = results.get(m.name)!;
      console.log(
        [
          m.name.padEnd(7),
          String(c).padStart(12),
          median(rs.map((r) => r.perSecond)).toFixed(0).padStart(8),
          median(rs.map((r) => r.p50ms)).toFixed(2).padStart(7),
          median(rs.map((r) => r.p99ms)).toFixed(2).padStart(7),
          median(rs.map((r) => r.cpuMsPerCall)).toFixed(3).padStart(19),
        ].join(" "),
      );
    }
    // Spans arrive in batches (every 5 s or 512 spans): a round's last ones may land in the next count.
    console.log(`         spans received so far for ${tracedCalls} calls to the fully traced broker at concurrency ${c}: ${spans - spansBefore} (both traced brokers)`);
  }
  await on.stop(); // flushes
  await sampled.stop();
  console.log(`collector: ${requests} export requests, ${spans} spans in all`);
} finally {
  await bench.stop();
  collector.close();
}
