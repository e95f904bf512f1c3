// `npm run bench:stream`: revocation propagation across replicas. Two broker
// processes share an embedded PostgreSQL (fsync on). SUBSCRIBERS streams
// subscribe to replica B; revocations are made through replica A at each
// RATES value for SECONDS. For every (revocation, subscriber) pair it records
// the time from A's Revoke call returning to the subscriber receiving the
// event, and prints p50/p99. Subscribers, brokers and PostgreSQL share this
// machine's cores, so the figures include their contention.
//
// Then, with the SDK: the residual exposure after release — from an agent's
// release() through replica A returning to a TokenVerifier fed by replica B
// rejecting that token (BENCH_RELEASES samples) — and offline verifications
// per second on one core (one thread, for BENCH_VERIFY_SECONDS).
//
//   BENCH_SUBSCRIBERS=1000 BENCH_RATES=10,50 BENCH_SECONDS=10 npm run bench:stream

import { credentials } from "@grpc/grpc-js";
import { BrokerServiceClient, RevocationTarget, type RevokeResponse, type StreamRevocationsResponse } from "../server/gen/baton/v1/broker.js";
import { BrokerClient, RevocationSubscriber, TokenVerifier } from "../sdk/ts/src/index.js";
import { machine, pct, sleep, startBench, unary } from "./harness.js";

const SUBSCRIBERS = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
const RATES = (process.env.BENCH_RATES ?? "10,50").split(",").map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
/** Streams per HTTP/2 connection. */
const PER_CONNECTION = 50;
const RELEASES = Number(process.env.BENCH_RELEASES ?? 200);
const VERIFY_SECONDS = Number(process.env.BENCH_VERIFY_SECONDS ?? 3);

const bench = await startBench();
const channels: InstanceType<typeof BrokerServiceClient>[] = [];
const streams: { cancel(): void }[] = [];
try {
  const a = await bench.broker();
  const b = await bench.broker();
  const app = await bench.createApp(a, ["read:records:*"], ["ehr-api"]);

  // cursor -> when A's Revoke returned; per subscriber: cursor -> when received.
  const returned = new Map<string, number>();
  const received: Map<string, number>[] = [];
  let ready = 0;
  for (let i = 0; i < SUBSCRIBERS; i++) {
    if (i % PER_CONNECTION === 0) {
      channels.push(new BrokerServiceClient(b.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
    }
    const got = new Map<string, number>();
    received.push(got);
    const stream = channels.at(-1)!.streamRevocations({ cursor: "" }, bench.operatorMd);
    streams.push(stream);
    stream.on("data", (e: StreamRevocationsResponse) => {
      if (e.revocation) got.set(e.revocation.cursor, performance.now());
      else if (e.snapshotComplete) ready++;
    });
    stream.on("error", () => {});
  }
  while (ready < SUBSCRIBERS) await sleep(50);

  console.log(`# Baton revocation propagation: ${machine()}; brokers, PostgreSQL and subscribers on one machine`);
  console.log(`# ${SUBSCRIBERS} subscribers on replica B; revocations through replica A; ${SECONDS}s per rate`);
  console.log(["rate/s".padStart(6), "revocations".padStart(11), "deliveries".padStart(10), "p50 ms".padStart(8), "p99 ms".padStart(8), "max ms".padStart(8), "missing".padStart(8)].join(" "));

  for (const rate of RATES) {
    returned.clear();
    for (const g of received) g.clear();
    const total = rate * SECONDS;
    const t0 = performance.now();
    const calls: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      calls.push(
        unary(a.client.revoke.bind(a.client), { target: RevocationTarget.REVOCATION_TARGET_TASK, id: `prop-${rate}-${i}`, appId: "", reason: "" }, app.md).then(
          (r) => {
            returned.set((r as RevokeResponse).revocation!.cursor, performance.now());
          },
        ),
      );
    }
    await Promise.all(calls);
    await sleep(2000); // let the last events arrive
    const latencies: number[] = [];
    let missing = 0;
    for (const [cursor, at] of returned) {
      for (const g of received) {
        const t = g.get(cursor);
        if (t === undefined) missing++;
        // An event can arrive before A's response does: that is 0 ms of exposure.
        else latencies.push(Math.max(0, t - at));
      }
    }
    latencies.sort((x, y) => x - y);
    console.log([
      String(rate).padStart(6),
      String(returned.size).padStart(11),
      String(latencies.length).padStart(10),
      pct(latencies, 0.5).toFixed(2).padStart(8),
      pct(latencies, 0.99).toFixed(2).padStart(8),
      (latencies.at(-1) ?? NaN).toFixed(2).padStart(8),
      String(missing).padStart(8),
    ].join(" "));
  }
  // The 1,000 subscribers leave, so the exposure below is one verifier's.
  for (const st of streams) st.cancel();
  for (const c of channels) c.close();
  channels.length = 0;
  await sleep(1000);

  // Residual exposure after release, through the SDK.
  const brokerA = new BrokerClient(a.address);
  const brokerB = new BrokerClient(b.address);
  const caller = { clientId: app.clientId, clientSecret: app.clientSecret };
  const subscriber = new RevocationSubscriber({ target: b.address, caller });
  subscriber.start();
  await subscriber.ready();
  const verifier = new TokenVerifier({ audience: "ehr-api", issuer: "https://baton.local", keys: brokerB, revocations: subscriber, maxStalenessMs: 15_000 });
  await verifier.loadKeys();
  const exposure: number[] = [];
  let notRejected = 0;
  for (let i = 0; i < RELEASES; i++) {
    const issued = await brokerA.issue(caller, { taskId: `release-${i}`, scopes: ["read:records:P-1"], audiences: ["ehr-api"] });
    const before = await verifier.verify(issued.accessToken);
    if (!before.ok) throw new Error(`fresh token refused: ${before.reason}`);
    await brokerA.release(issued.credential);
    const released = performance.now();
    for (;;) {
      const r = await verifier.verify(issued.accessToken);
      if (!r.ok && r.reason === "REVOKED") {
        exposure.push(performance.now() - released);
        break;
      }
      if (performance.now() - released > 5000) {
        notRejected++;
        break;
      }
      await new Promise((r) => setImmediate(r)); // let the stream's events in
    }
  }
  exposure.sort((x, y) => x - y);
  console.log(`\n# residual exposure: release() through replica A returning -> TokenVerifier (stream from replica B) rejects the token`);
  console.log(`releases ${RELEASES}  p50 ${pct(exposure, 0.5).toFixed(2)} ms  p99 ${pct(exposure, 0.99).toFixed(2)} ms  max ${(exposure.at(-1) ?? NaN).toFixed(2)} ms  not rejected within 5 s: ${notRejected}`);

  // Offline verification throughput on one core.
  const valid = await brokerA.issue(caller, { taskId: "verify-rate", scopes: ["read:records:P-1"], audiences: ["ehr-api"] });
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < VERIFY_SECONDS * 1000) {
    const r = await verifier.verify(valid.accessToken, { requiredScopes: ["read:records:P-1"] });
    if (!r.ok) throw new Error(`valid token refused: ${r.reason}`);
    n++;
  }
  console.log(`\n# offline verification (TokenVerifier.verify, ES256, lineage + scope checks), one thread`);
  console.log(`verifications/s per core: ${(n / ((performance.now() - t0) / 1000)).toFixed(0)}`);
  subscriber.close();
  verifier.close();
  brokerA.close();
  brokerB.close();
} finally {
  for (const c of channels) c.close();
  await bench.stop();
}

