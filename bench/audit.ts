// The audit query over a large trail (issue 8): EVENTS events appended
// through the real appendAudit (in transactions of BATCH, as the group
// commits write them), then ListAuditEvents called through a broker process
// over gRPC, one call at a time: a page (PAGE events) per filter, first and
// deep (a deep page is `after_seq` near the end of the trail, the same query
// a page token resumes). Prints the median and p90 of REPS calls per query.
// Then the cost of the trigger that fills the query columns on insert
// (appending TRIGGER_EVENTS events with it and with it disabled, alternating,
// ROUNDS times each), and, on a second database, the time migration 0009
// takes to backfill the query columns of EVENTS events written before it.
//
//   npm run bench:audit        (BENCH_EVENTS, BENCH_REPS, BENCH_PAGE to change)

import { credentials } from "@grpc/grpc-js";
import pg from "pg";
import { AdminServiceClient, type ListAuditEventsRequest } from "../server/gen/baton/v1/admin.js";
import { appendAudit, type AuditEvent, canonicalJson, chainHash, verifyAudit } from "../server/storage/audit.js";
import { createPool, DEFAULT_TIMEOUTS, withTransaction } from "../server/storage/db.js";
import { loadMigrations, migrate } from "../server/storage/migrate.js";
import { machine, median, pct, startBench, unary } from "./harness.js";

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const REPS = Number(process.env.BENCH_REPS ?? 30);
const PAGE = Number(process.env.BENCH_PAGE ?? 100);
const BATCH = 1000;
const TRIGGER_EVENTS = Number(process.env.BENCH_TRIGGER_EVENTS ?? 20_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const APPS = 50;
const HUMANS = 500;
const TASKS = 5000;
const T0 = Date.parse("2026-11-01T00:00:00Z");
const STEP_MS = 6000; // 100k events over about a week

const appId = (i: number) => `app_bench${String(i % APPS).padStart(17, "0")}`;

/** The i-th synthetic event: a realistic mix of kinds, apps, tasks, humans and agents. */
function event(i: number): AuditEvent {
  const task = i % TASKS;
  const app = appId(task);
  const human = `user:h${task % HUMANS}`;
  const time = new Date(T0 + i * STEP_MS);
  const agent = `spiffe://baton.local/app/${app}/task/t${task}/agent/a${i}`;
  const base = { task_id: `t${task}`, orchestration_id: null, human, scopes: ["read:records:P-1"], audiences: ["ehr-api"] };
  const r = i % 10;
  if (r < 6) {
    return { kind: "token.issued", time, appId: app, requestId: `req-${i}`, actor: `app:${app}`,
      data: { ...base, token_id: `tok${i}`, agent_id: agent, lineage: [], expire_time: new Date(time.getTime() + 300_000).toISOString(), ttl_seconds: 300, key_bound: false, ttl_clamped: false } };
  }
  if (r < 8) {
    return { kind: "token.delegated", time, appId: app, requestId: `req-${i}`, actor: `agent:${agent}`,
      data: { ...base, token_id: `tok${i}`, agent_id: `${agent}-child`, lineage: [{ token_id: `tok${i - 1}`, agent_id: agent }], expire_time: new Date(time.getTime() + 300_000).toISOString(), ttl_seconds: 300 } };
  }
  if (r < 9) return { kind: "issue.refused", time, appId: app, requestId: `req-${i}`, actor: `app:${app}`, data: { ...base, reason: "SCOPE_NOT_COVERED", details: { scopes: "write:x:1" } } };
  return { kind: "revocation.created", time, appId: app, requestId: `req-${i}`, actor: `app:${app}`, data: { target: "token", id: `tok${i - 3}`, token_id: `tok${i - 3}`, audiences: ["ehr-api"], reason: null, cursor: String(i) } };
}

const bench = await startBench();
try {
  const broker = await bench.broker();
  // The broker has migrated the database; write straight through appendAudit.
  const db = createPool(bench.pg.url("postgres"), 2, { ...DEFAULT_TIMEOUTS, statementMs: 15 * 60_000 });
  let t = Date.now();
  for (let i = 0; i < EVENTS; i += BATCH) {
    const events = Array.from({ length: Math.min(BATCH, EVENTS - i) }, (_, j) => event(i + j));
    await withTransaction(db, (tx) => appendAudit(tx, events));
  }
  const insertS = (Date.now() - t) / 1000;
  await db.query("ANALYZE audit_events");
  t = Date.now();
  const intact = await verifyAudit(db);
  const verifyS = (Date.now() - t) / 1000;
  await db.end();

  console.log(`# ListAuditEvents over ${EVENTS.toLocaleString("en")} events: ${machine()}`);
  console.log(`appended through appendAudit in ${BATCH}-event transactions: ${insertS.toFixed(1)} s (${Math.round(EVENTS / insertS).toLocaleString("en")} events/s); verifyAudit ${verifyS.toFixed(1)} s, intact ${intact.intact}`);
  console.log(`page size ${PAGE}, ${REPS} calls each, one at a time, through gRPC`);

  const admin = new AdminServiceClient(broker.address, credentials.createInsecure());
  const none: ListAuditEventsRequest = {
    appId: "", taskId: "", agentId: "", humanPrincipal: "", kinds: [], startTime: undefined, endTime: undefined, afterSeq: 0, tokenId: "", pageSize: PAGE, pageToken: "",
  };
  const deep = Math.floor(EVENTS * 0.9);
  const dayStart = new Date(T0 + Math.floor(EVENTS / 2) * STEP_MS);
  const queries: [string, Partial<ListAuditEventsRequest>][] = [
    ["no filter, first page", {}],
    ["no filter, deep page", { afterSeq: deep }],
    ["app, first page", { appId: appId(7) }],
    ["app, deep page", { appId: appId(7), afterSeq: deep }],
    ["app + task", { appId: appId(1234), taskId: "t1234" }],
    ["agent", { agentId: `spiffe://baton.local/app/${appId(4321)}/task/t4321/agent/a54321` }],
    ["human, first page", { humanPrincipal: "user:h42" }],
    ["human, deep page", { humanPrincipal: "user:h42", afterSeq: deep }],
    ["token", { tokenId: "tok50000" }],
    ["kind, first page", { kinds: ["issue.refused"] }],
    ["kind, deep page", { kinds: ["issue.refused"], afterSeq: deep }],
    ["kind + 1 h window", { kinds: ["token.issued"], startTime: dayStart, endTime: new Date(dayStart.getTime() + 3_600_000) }],
    ["kind + 1 day window, deep page", { kinds: ["token.issued"], startTime: dayStart, endTime: new Date(dayStart.getTime() + 86_400_000), afterSeq: Math.floor(EVENTS / 2) + 10_000 }],
    ["2 kinds + human + 1 day window", { kinds: ["token.issued", "issue.refused"], humanPrincipal: "user:h42", startTime: dayStart, endTime: new Date(dayStart.getTime() + 86_400_000) }],
  ];
  console.log("| query | events in page | p50 ms | p90 ms |");
  console.log("|---|---:|---:|---:|");
  for (const [name, over] of queries) {
    const req = { ...none, ...over };
    const ms: number[] = [];
    let count = 0;
    for (let i = 0; i < REPS; i++) {
      const t0 = process.hrtime.bigint();
      const r: { events: unknown[] } = await unary(admin.listAuditEvents.bind(admin), req, bench.operatorMd);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      count = r.events.length;
    }
    ms.sort((a, b) => a - b);
    console.log(`| ${name} | ${count} | ${median(ms).toFixed(2)} | ${pct(ms, 0.9).toFixed(2)} |`);
  }
  admin.close();

  // The trigger's cost: the same appends with it and without it.
  const tdb = createPool(bench.pg.url("postgres"), 2, { ...DEFAULT_TIMEOUTS, statementMs: 15 * 60_000 });
  const rate = { on: [] as number[], off: [] as number[] };
  let next = EVENTS;
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ["on", "off"] as const) {
      await tdb.query(`ALTER TABLE audit_events ${mode === "on" ? "ENABLE" : "DISABLE"} TRIGGER audit_events_query_columns`);
      const t1 = Date.now();
      for (let i = 0; i < TRIGGER_EVENTS; i += BATCH) {
        const events = Array.from({ length: BATCH }, (_, j) => event(next + i + j));
        await withTransaction(tdb, (tx) => appendAudit(tx, events));
      }
      next += TRIGGER_EVENTS;
      rate[mode].push(TRIGGER_EVENTS / ((Date.now() - t1) / 1000));
    }
  }
  await tdb.query("ALTER TABLE audit_events ENABLE TRIGGER audit_events_query_columns");
  await tdb.end();
  const fmt = (xs: number[]) => `median ${Math.round(median(xs)).toLocaleString("en")} events/s (${xs.map((x) => Math.round(x)).join(", ")})`;
  console.log(`appending ${TRIGGER_EVENTS.toLocaleString("en")} events in ${BATCH}-event transactions, ${ROUNDS} rounds: query-column trigger on: ${fmt(rate.on)}; off: ${fmt(rate.off)}`);

  // Upgrading a trail written before migration 0009: its backfill.
  const setup = new pg.Client({ connectionString: bench.pg.url("postgres") });
  await setup.connect();
  await setup.query("CREATE DATABASE backfill");
  await setup.end();
  // As the broker migrates: without the request statement timeout.
  const old = createPool(bench.pg.url("backfill"), 2, { ...DEFAULT_TIMEOUTS, statementMs: 15 * 60_000 });
  const all = loadMigrations();
  await migrate(old, all.filter((m) => m.version < 9));
  let prev: Buffer = Buffer.alloc(32);
  for (let i = 0; i < EVENTS; i += BATCH) {
    const rows: unknown[][] = [];
    for (let j = i; j < Math.min(i + BATCH, EVENTS); j++) {
      const e = event(j);
      const seq = String(j + 1);
      const payload = canonicalJson({ seq, time: e.time.toISOString(), kind: e.kind, app_id: e.appId, request_id: e.requestId, actor: e.actor, data: e.data });
      const hash = chainHash(prev, payload);
      rows.push([seq, e.time, e.kind, e.appId, e.requestId, payload, prev, hash]);
      prev = hash;
    }
    const col = (k: number) => rows.map((r) => r[k]);
    await old.query(
      `INSERT INTO audit_events (seq, event_time, kind, app_id, request_id, payload, prev_hash, hash)
       SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[])`,
      [col(0), col(1), col(2), col(3), col(4), col(5), col(6), col(7)],
    );
  }
  await old.query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", [String(EVENTS), prev]);
  t = Date.now();
  await migrate(old, all);
  const backfillS = (Date.now() - t) / 1000;
  const after = await verifyAudit(old);
  console.log(`migration 0009 on ${EVENTS.toLocaleString("en")} earlier events (backfill + indexes): ${backfillS.toFixed(1)} s; verifyAudit after: intact ${after.intact}, ${after.eventCount} events`);
  await old.end();
} finally {
  await bench.stop();
}
