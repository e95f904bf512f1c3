// `npm run bench:noisy`: does one app's stream of refused requests slow
// another app's issuance? App B issues at closed-loop concurrency while app A
// is idle, then while A sends Issue requests that are refused (a scope
// outside its ceiling) as fast as it can, then (NOISY_LIMIT > 0) the same
// with A's own rate limit set to NOISY_LIMIT per second through UpdateApp:
// once with A ignoring the RetryInfo of RATE_LIMITED (it retries at once),
// once with A waiting the delay it names, as a well-behaved client does.
// Prints B's issuance rate per mode, the median of NOISY_ROUNDS rounds of
// NOISY_SECONDS each (modes interleaved, so drift hits them alike), and what
// A's requests got back.
//
//   NOISY_SECONDS=5 NOISY_ROUNDS=3 NOISY_B_CONCURRENCY=4 NOISY_A_CONCURRENCY=8 NOISY_LIMIT=50 npm run bench:noisy
//
// The broker runs with a per-app default far above what this machine can
// issue (BATON_APP_RATE_PER_SECOND=1000000), so B is never throttled and A
// only when NOISY_LIMIT sets its override. A's client runs in a child
// process (this file, NOISY_ROLE=a): in B's process its answers would take
// B's event loop, and count as the broker's doing.

import { credentials, Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { AdminServiceClient } from "../server/gen/baton/v1/admin.js";
import { BrokerServiceClient } from "../server/gen/baton/v1/broker.js";
import { RetryInfo } from "../server/gen/google/rpc/error_details.js";
import { Status } from "../server/gen/google/rpc/status.js";
import type { IssueRequest } from "../server/gen/baton/v1/broker.js";
import { machine, median, startBench, unary } from "./harness.js";

const SECONDS = Number(process.env.NOISY_SECONDS ?? 5);
const ROUNDS = Number(process.env.NOISY_ROUNDS ?? 3);
const B_CONCURRENCY = Number(process.env.NOISY_B_CONCURRENCY ?? 4);
const A_CONCURRENCY = Number(process.env.NOISY_A_CONCURRENCY ?? 8);
const LIMIT = Number(process.env.NOISY_LIMIT ?? 0);

const request = (scope: string, i: number): IssueRequest => ({
  taskId: `noisy-${i}`,
  orchestrationId: "",
  humanPrincipal: "",
  scopes: [scope],
  audiences: ["ehr-api"],
  ttl: undefined,
  allowTtlClamp: false,
  agentPublicKeyJwk: "",
  approvalId: "",
});

/** Calls `fn` from `concurrency` workers until `stop()`; counts outcomes by gRPC code. */
function loop(concurrency: number, fn: (i: number) => Promise<unknown>): { stop: () => Promise<Map<string, number>> } {
  const codes = new Map<string, number>();
  let running = true;
  let n = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      let code: string;
      try {
        await fn(n++);
        code = "OK";
      } catch (err) {
        code = status[(err as ServiceError).code] ?? "?";
      }
      codes.set(code, (codes.get(code) ?? 0) + 1);
    }
  };
  const done = Promise.all(Array.from({ length: concurrency }, worker));
  return {
    stop: async () => {
      running = false;
      await done;
      return codes;
    },
  };
}

/** Refused Issue calls (PERMISSION_DENIED / SCOPE_NOT_COVERED: audited, nothing issued); `polite`: waits RetryInfo's delay when rate limited. */
function refusedCalls(client: InstanceType<typeof BrokerServiceClient>, md: Metadata, polite: boolean): (i: number) => Promise<unknown> {
  const refused = (i: number) => unary(client.issue.bind(client), request("write:billing:*", i), md);
  if (!polite) return refused;
  return (i) =>
    refused(i).catch(async (err: ServiceError) => {
      const bin = err.metadata?.get("grpc-status-details-bin")[0];
      const any = bin instanceof Buffer ? Status.decode(bin).details.find((d) => d.typeUrl.endsWith("google.rpc.RetryInfo")) : undefined;
      const d = any ? RetryInfo.decode(any.value).retryDelay : undefined;
      if (d) await new Promise((r) => setTimeout(r, d.seconds * 1000 + d.nanos / 1e6));
      throw err;
    });
}

type ToA = { readonly start: boolean; readonly polite: boolean } | { readonly stop: true };

/** App A's process: starts and stops its loop when told; reports its counts. */
function runA(): void {
  const client = new BrokerServiceClient(process.env.NOISY_ADDR!, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", process.env.NOISY_A_AUTH!);
  let running: ReturnType<typeof loop> | null = null;
  process.on("message", (m: ToA) => {
    if ("start" in m) running = loop(A_CONCURRENCY, refusedCalls(client, md, m.polite));
    else
      void running!.stop().then((codes) => {
        running = null;
        process.send!([...codes]);
      });
  });
  process.on("disconnect", () => process.exit(0));
}

interface Round {
  readonly bPerSecond: number;
  readonly bErrors: number;
  readonly a: Map<string, number>;
}

if (process.env.NOISY_ROLE === "a") runA();
else await main();

async function main(): Promise<void> {
  const bench = await startBench();
  try {
    const broker = await bench.broker({ BATON_APP_RATE_PER_SECOND: "1000000", BATON_APP_BURST: "1000000" });
    const a = await bench.createApp(broker, ["read:records:*"], ["ehr-api"]);
    const b = await bench.createApp(broker, ["read:records:*"], ["ehr-api"]);
    const client = broker.client;
    const issueB = (i: number) => unary(client.issue.bind(client), request("read:records:P-1", i), b.md);
    const childA = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, NOISY_ROLE: "a", NOISY_ADDR: broker.address, NOISY_A_AUTH: String(a.md.get("authorization")[0]) },
    });
    const noiseA = (polite: boolean) => {
      childA.send({ start: true, polite } satisfies ToA);
      return {
        stop: () =>
          new Promise<Map<string, number>>((resolve) => {
            childA.once("message", (codes) => resolve(new Map(codes as [string, number][])));
            childA.send({ stop: true } satisfies ToA);
          }),
      };
    };

    const setLimit = async (perSecond: number): Promise<void> => {
      const admin = new AdminServiceClient(broker.address, credentials.createInsecure());
      try {
        // Fields added with per-app limits; the burst equals one second's worth.
        const req = { appId: a.clientId, updateScopeCeiling: false, scopeCeiling: [], updateAudiences: false, audiences: [], rateLimitPerSecond: perSecond, rateLimitBurst: perSecond };
        await unary(admin.updateApp.bind(admin), req as never, bench.operatorMd);
      } finally {
        admin.close();
      }
    };

    const round = async (noisy: boolean, polite: boolean): Promise<Round> => {
      const noise = noisy ? noiseA(polite) : null;
      if (noise) await new Promise((r) => setTimeout(r, 300)); // A at full speed before B is measured
      const t0 = performance.now();
      const issuing = loop(B_CONCURRENCY, issueB);
      await new Promise((r) => setTimeout(r, SECONDS * 1000));
      const bCodes = await issuing.stop();
      const elapsed = (performance.now() - t0) / 1000;
      const aCodes = noise ? await noise.stop() : new Map<string, number>();
      const errors = [...bCodes].filter(([c]) => c !== "OK").reduce((s, [, v]) => s + v, 0);
      return { bPerSecond: (bCodes.get("OK") ?? 0) / elapsed, bErrors: errors, a: aCodes };
    };

    // Warm-up: JIT, connection pool, plans.
    await round(true, false);
    await round(false, false);

    const modes: { name: string; noisy: boolean; limit: number; polite: boolean }[] = [
      { name: "A idle", noisy: false, limit: 0, polite: false },
      { name: "A noisy", noisy: true, limit: 0, polite: false },
      ...(LIMIT > 0
        ? [
            { name: `A noisy, limit ${LIMIT}/s, no wait`, noisy: true, limit: LIMIT, polite: false },
            { name: `A noisy, limit ${LIMIT}/s, waits`, noisy: true, limit: LIMIT, polite: true },
          ]
        : []),
    ];
    const results = new Map<string, Round[]>(modes.map((m) => [m.name, []]));
    for (let i = 0; i < ROUNDS; i++) {
      for (const m of modes) {
        if (LIMIT > 0) await setLimit(m.limit);
        results.get(m.name)!.push(await round(m.noisy, m.polite));
      }
    }

    console.log(`machine: ${machine()}; ${ROUNDS} rounds of ${SECONDS} s; B concurrency ${B_CONCURRENCY}, A concurrency ${A_CONCURRENCY}`);
    console.log(["mode".padEnd(32), "B issued/s".padStart(10), "B errors".padStart(8), "  A's answers per second (median)"].join(" "));
    for (const m of modes) {
      const rs = results.get(m.name)!;
      const codes = [...new Set(rs.flatMap((r) => [...r.a.keys()]))].sort();
      const perCode = codes.map((c) => `${c} ${median(rs.map((r) => (r.a.get(c) ?? 0) / SECONDS)).toFixed(0)}`).join(", ");
      console.log(
        [
          m.name.padEnd(32),
          median(rs.map((r) => r.bPerSecond)).toFixed(0).padStart(10),
          String(rs.reduce((s, r) => s + r.bErrors, 0)).padStart(8),
          `  ${perCode || "-"}`,
        ].join(" "),
      );
    }
    console.log(`B issued/s per round: ${modes.map((m) => `${m.name}: ${results.get(m.name)!.map((r) => r.bPerSecond.toFixed(0)).join(" ")}`).join("; ")}`);
    childA.disconnect();
  } finally {
    await bench.stop();
  }
}
