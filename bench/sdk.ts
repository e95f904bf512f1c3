// `npm run bench`: what the TypeScript SDK costs on the caller's side, one
// thread: offline verification with TokenVerifier (ES256 signature, claims,
// lineage against the revocation set, scope coverage), signing a proof of
// possession with AgentKey, and verifying a key-bound token with its proof.
// The broker (an embedded PostgreSQL and a broker process) only issues the
// tokens and feeds the revocation stream; no broker call is timed. Broker
// throughput is `npm run bench:load` (the Go load generator), which a Node
// client would saturate before the broker does.
//
// Each row: calls per second and p50/p99 per call, the median of
// BENCH_ROUNDS rounds of BENCH_SECONDS each.
//
//   BENCH_SECONDS=3 BENCH_ROUNDS=3 npm run bench

import { AgentKey, BrokerClient, RevocationSubscriber, TokenVerifier } from "../sdk/ts/src/index.js";
import { machine, median, pct, startBench } from "./harness.js";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const METHOD = "/ehr.v1.Records/Get";
const SCOPE = "read:records:P-1042";

interface Round {
  readonly perSecond: number;
  readonly p50us: number;
  readonly p99us: number;
}

/**
 * Calls `fn` back to back for `seconds` of its own time: one thread, nothing
 * else in flight. `untimed` runs before each call, off the clock.
 */
async function round(fn: () => Promise<void>, seconds: number, untimed?: () => Promise<void>): Promise<Round> {
  const latencies: number[] = [];
  let spent = 0;
  while (spent < seconds * 1000) {
    await untimed?.();
    const t0 = performance.now();
    await fn();
    const took = performance.now() - t0;
    spent += took;
    latencies.push(took * 1000);
  }
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / (spent / 1000), p50us: pct(latencies, 0.5), p99us: pct(latencies, 0.99) };
}

async function scenario(name: string, fn: () => Promise<void>, untimed?: () => Promise<void>): Promise<void> {
  await round(fn, 0.5, untimed); // warm-up: JIT
  const rounds: Round[] = [];
  for (let i = 0; i < ROUNDS; i++) rounds.push(await round(fn, SECONDS, untimed));
  console.log(
    [
      name.padEnd(40),
      median(rounds.map((r) => r.perSecond)).toFixed(0).padStart(10),
      median(rounds.map((r) => r.p50us)).toFixed(1).padStart(9),
      median(rounds.map((r) => r.p99us)).toFixed(1).padStart(9),
      `  rounds/s: ${rounds.map((r) => r.perSecond.toFixed(0)).join(", ")}`,
    ].join(" "),
  );
}

const bench = await startBench();
try {
  const broker = await bench.broker();
  const app = await bench.createApp(broker, ["read:records:*"], ["ehr-api"]);
  const caller = { clientId: app.clientId, clientSecret: app.clientSecret };
  const client = new BrokerClient(broker.address);
  const subscriber = new RevocationSubscriber({ target: broker.address, caller });
  subscriber.start();
  await subscriber.ready();
  const verifier = new TokenVerifier({ audience: "ehr-api", issuer: "https://baton.local", keys: client, revocations: subscriber });
  await verifier.loadKeys();

  const plain = await client.issue(caller, { taskId: "bench-verify", scopes: [SCOPE], audiences: ["ehr-api"] });
  const key = await AgentKey.generate();
  const bound = await client.issue(caller, { taskId: "bench-bound", scopes: [SCOPE], audiences: ["ehr-api"], agentKey: key });

  console.log(`# Baton SDK benchmark (TypeScript, one thread): ${machine()}`);
  console.log(`# median of ${ROUNDS} rounds x ${SECONDS}s per row`);
  console.log(["what".padEnd(40), "per second".padStart(10), "p50 us".padStart(9), "p99 us".padStart(9)].join(" "));
  await scenario("TokenVerifier.verify", async () => {
    const r = await verifier.verify(plain.accessToken, { requiredScopes: [SCOPE] });
    if (!r.ok) throw new Error(`valid token refused: ${r.reason}`);
  });
  await scenario("AgentKey.createProof (ES256)", async () => {
    await key.createProof(METHOD, bound.accessToken);
  });
  // Proofs are used once (the verifier keeps a replay cache): a fresh one per
  // call, signed off the clock.
  let proof = "";
  await scenario(
    "TokenVerifier.verify, key-bound + proof",
    async () => {
      const r = await verifier.verify(bound.accessToken, { requiredScopes: [SCOPE], proof, htm: METHOD });
      if (!r.ok) throw new Error(`valid proof refused: ${r.reason}`);
    },
    async () => {
      proof = await key.createProof(METHOD, bound.accessToken);
    },
  );
  subscriber.close();
  verifier.close();
  client.close();
} finally {
  await bench.stop();
}
