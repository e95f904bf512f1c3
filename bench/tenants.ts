// Tenant-filtered revocation streams: what filtering costs on one broker.
// SUBSCRIBERS streams; revocations alternate between two apps with disjoint
// audiences at RATE per second for SECONDS. Run twice: every subscriber the
// operator (sees everything), then half a resource server for app A's
// audience and half one for B's (each sees half). Prints delivery latency
// (Revoke returned -> event received) p50/p99, deliveries, and any event a
// resource server received for the other tenant (must be 0).
//
//   BENCH_SUBSCRIBERS=1000 BENCH_RATE=50 BENCH_SECONDS=10 npx tsx bench/tenants.ts

import { credentials, Metadata } from "@grpc/grpc-js";
import { AdminServiceClient } from "../server/gen/baton/v1/admin.js";
import { BrokerServiceClient, RevocationTarget, type RevokeResponse, type StreamRevocationsResponse } from "../server/gen/baton/v1/broker.js";
import { type BenchApp, type BenchBroker, machine, pct, sleep, startBench, unary } from "./harness.js";

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const RATE = Number(process.env.BENCH_RATE ?? 50);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const PER_CONNECTION = 50;

const bench = await startBench();
try {
  const broker = await bench.broker();
  const apps = [await bench.createApp(broker, ["read:records:*"], ["a-api"]), await bench.createApp(broker, ["read:records:*"], ["b-api"])];
  const admin = new AdminServiceClient(broker.address, credentials.createInsecure());
  const rsMd: Metadata[] = [];
  for (const aud of ["a-api", "b-api"]) {
    const r: { resourceServer?: { resourceServerId: string }; clientSecret: string } = await unary(
      admin.createResourceServer.bind(admin),
      { name: `bench-rs-${aud}`, audiences: [aud] },
      bench.operatorMd,
    );
    const md = new Metadata();
    md.set("authorization", `Basic ${Buffer.from(`${r.resourceServer!.resourceServerId}:${r.clientSecret}`).toString("base64")}`);
    rsMd.push(md);
  }
  admin.close();

  console.log(`# Baton tenant-filtered streams: ${machine()}; broker, PostgreSQL and subscribers on one machine`);
  console.log(`# ${SUBSCRIBERS} subscribers; ${RATE} revocations/s for ${SECONDS}s, alternating two apps`);
  console.log(["subscribers".padEnd(26), "deliveries".padStart(10), "p50 ms".padStart(8), "p99 ms".padStart(8), "missing".padStart(8), "cross".padStart(6)].join(" "));
  await run(broker, apps, "operator (all)", () => ({ md: bench.operatorMd, tenant: null }));
  await run(broker, apps, "resource servers (half)", (i) => ({ md: rsMd[i % 2]!, tenant: i % 2 }));
} finally {
  await bench.stop();
}

async function run(
  broker: BenchBroker,
  apps: BenchApp[],
  label: string,
  who: (i: number) => { md: Metadata; tenant: number | null },
): Promise<void> {
  const channels: InstanceType<typeof BrokerServiceClient>[] = [];
  const subs: { tenant: number | null; got: Map<string, number>; cancel(): void }[] = [];
  let ready = 0;
  for (let i = 0; i < SUBSCRIBERS; i++) {
    if (i % PER_CONNECTION === 0) channels.push(new BrokerServiceClient(broker.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
    const { md, tenant } = who(i);
    const got = new Map<string, number>();
    const stream = channels.at(-1)!.streamRevocations({ cursor: "" }, md);
    stream.on("data", (e: StreamRevocationsResponse) => {
      if (e.revocation) got.set(e.revocation.cursor, performance.now());
      else if (e.snapshotComplete) ready++;
    });
    stream.on("error", () => {});
    subs.push({ tenant, got, cancel: () => stream.cancel() });
  }
  while (ready < SUBSCRIBERS) await sleep(50);
  for (const s of subs) s.got.clear(); // the snapshot is not measured

  const returned = new Map<string, { at: number; tenant: number }>();
  const total = RATE * SECONDS;
  const t0 = performance.now();
  const calls: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const wait = t0 + (i * 1000) / RATE - performance.now();
    if (wait > 0) await sleep(wait);
    const tenant = i % 2;
    calls.push(
      unary(broker.client.revoke.bind(broker.client), { target: RevocationTarget.REVOCATION_TARGET_TASK, id: `t-${label.length}-${i}`, appId: "", reason: "" }, apps[tenant]!.md).then(
        (r) => void returned.set((r as RevokeResponse).revocation!.cursor, { at: performance.now(), tenant }),
      ),
    );
  }
  await Promise.all(calls);
  await sleep(2000);
  const latencies: number[] = [];
  let missing = 0;
  let cross = 0;
  for (const s of subs) {
    for (const [cursor, r] of returned) {
      const t = s.got.get(cursor);
      const wanted = s.tenant === null || s.tenant === r.tenant;
      if (!wanted) {
        if (t !== undefined) cross++;
      } else if (t === undefined) missing++;
      else latencies.push(Math.max(0, t - r.at));
    }
  }
  latencies.sort((x, y) => x - y);
  console.log([
    label.padEnd(26),
    String(latencies.length).padStart(10),
    pct(latencies, 0.5).toFixed(2).padStart(8),
    pct(latencies, 0.99).toFixed(2).padStart(8),
    String(missing).padStart(8),
    String(cross).padStart(6),
  ].join(" "));
  for (const s of subs) s.cancel();
  for (const c of channels) c.close();
  await sleep(500);
}
