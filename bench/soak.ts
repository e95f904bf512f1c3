// `npm run bench:soak`: issues tokens at a steady rate against one broker
// (child process, embedded PostgreSQL with fsync on) for a number of
// minutes and prints the database size every minute, with retention on
// (short windows, so a short soak reaches the steady state) or off.
//
//   npm run bench:soak -- --minutes 10 --rate 200 --retention on
//   npm run bench:soak -- --minutes 3 --rate 200 --retention off
//
// With retention on: tokens live --ttl seconds (30), grants are kept
// --grant-retention seconds past expiry (30), audit events --audit-retention
// seconds (60, exported to a temporary directory), a pass every --interval
// seconds (10). Off: nothing is pruned, as before retention existed.

import { mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import type { IssueRequest } from "../server/gen/baton/v1/broker.js";
import { machine, pct, sleep, startBench, unary } from "./harness.js";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "3" },
    rate: { type: "string", default: "200" },
    retention: { type: "string", default: "on" },
    ttl: { type: "string", default: "30" },
    "grant-retention": { type: "string", default: "30" },
    "audit-retention": { type: "string", default: "60" },
    interval: { type: "string", default: "10" },
  },
});
const minutes = Number(args.minutes);
const rate = Number(args.rate);
const retention = args.retention === "on";
const ttl = Number(args.ttl);

const mb = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);

async function main(): Promise<void> {
  const bench = await startBench();
  const exportDir = mkdtempSync(join(tmpdir(), "baton-soak-audit-"));
  const env: Record<string, string> = retention
    ? {
        BATON_GRANT_RETENTION_SECONDS: args["grant-retention"],
        BATON_AUDIT_RETENTION_SECONDS: args["audit-retention"],
        BATON_AUDIT_EXPORT_DIR: exportDir,
        BATON_RETENTION_INTERVAL_SECONDS: args.interval,
      }
    : { BATON_GRANT_RETENTION_SECONDS: "31536000", BATON_AUDIT_RETENTION_SECONDS: "0" };
  const broker = await bench.broker(env);
  const app = await bench.createApp(broker, ["read:records:*"], ["ehr-api"]);
  const db = new pg.Pool({ connectionString: bench.pg.url("postgres"), max: 1 });
  const sample = async (): Promise<{ size: number; grants: number; audit: number }> => {
    const { rows } = await db.query<{ size: string; grants: string; audit: string }>(
      `SELECT pg_database_size(current_database()) AS size,
              (SELECT count(*) FROM grants) AS grants, (SELECT count(*) FROM audit_events) AS audit`,
    );
    return { size: Number(rows[0]!.size), grants: Number(rows[0]!.grants), audit: Number(rows[0]!.audit) };
  };

  console.log(`# soak: ${minutes} min at ${rate} issuances/s, ttl ${ttl}s, retention ${retention ? `on (grants +${args["grant-retention"]}s, audit ${args["audit-retention"]}s, every ${args.interval}s)` : "off"}; ${machine()}`);
  const start = await sample();
  console.log(`minute  db_MB  grants  audit_events  issued  errors  p50_ms  p99_ms`);
  console.log(`     0  ${mb(start.size).padStart(5)}  ${String(start.grants).padStart(6)}  ${String(start.audit).padStart(12)}`);

  // Open loop: calls start on schedule whatever the latency, so a slow
  // broker shows as latency and errors, not as a lower rate.
  const req = (i: number): IssueRequest => ({
    taskId: `soak-${i % 1000}`, orchestrationId: "", humanPrincipal: "user:soak", scopes: ["read:records:P-1"], audiences: ["ehr-api"],
    ttl: { seconds: ttl, nanos: 0 }, allowTtlClamp: false, agentPublicKeyJwk: "",
    approvalId: "",
  });
  let issued = 0;
  let errors = 0;
  let latencies: number[] = [];
  const inFlight = new Set<Promise<unknown>>();
  let n = 0;
  const t0 = performance.now();
  let nextReport = 1;
  const report = async (): Promise<void> => {
    const s = await sample();
    latencies.sort((a, b) => a - b);
    console.log(
      `${String(nextReport).padStart(6)}  ${mb(s.size).padStart(5)}  ${String(s.grants).padStart(6)}  ${String(s.audit).padStart(12)}  ` +
        `${String(issued).padStart(6)}  ${String(errors).padStart(6)}  ${pct(latencies, 0.5).toFixed(1).padStart(6)}  ${pct(latencies, 0.99).toFixed(1).padStart(6)}`,
    );
    latencies = [];
    nextReport += 1;
  };
  while (performance.now() - t0 < minutes * 60_000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    for (; n < due; ) {
      const s = performance.now();
      const p = unary(broker.client.issue.bind(broker.client), req(n++), app.md).then(
        () => {
          issued += 1;
          latencies.push(performance.now() - s);
        },
        () => {
          errors += 1;
        },
      );
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    if ((performance.now() - t0) / 60_000 >= nextReport && nextReport < minutes) await report();
    await sleep(20);
  }
  await Promise.all(inFlight);
  await report();
  const end = await sample();
  const files = readdirSync(exportDir);
  const exported = files.reduce((sum, f) => sum + statSync(join(exportDir, f)).size, 0);
  console.log(`# end: ${mb(end.size)} MB (${mb(end.size - start.size)} MB growth), ${issued} issued, ${errors} errors, ${end.grants} grants and ${end.audit} audit events stored`);
  if (retention) console.log(`# audit export: ${files.length} files, ${mb(exported)} MB`);
  await db.end();
  await bench.stop();
  rmSync(exportDir, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
