// What the benchmarks share: an embedded PostgreSQL (fsync on, as in
// production), broker child processes on it, percentiles and a promise
// wrapper for generated unary calls.

import { credentials, Metadata } from "@grpc/grpc-js";
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { MasterKey } from "../server/crypto/master-key.js";
import { AdminServiceClient } from "../server/gen/baton/v1/admin.js";
import { BrokerServiceClient } from "../server/gen/baton/v1/broker.js";
import { type EmbeddedDatabase, freePort, startEmbedded } from "../server/storage/embedded.js";

export const OPERATOR = `bop_${"b".repeat(40)}`;

export const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function unary<Req, Res>(fn: (req: Req, md: Metadata, cb: (err: Error | null, res: Res) => void) => unknown, req: Req, md: Metadata): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, md, (err, res) => (err ? reject(err) : resolve(res))));
}

const brokerNode = (): string => (process.env.BENCH_NODE ? execFileSync(process.env.BENCH_NODE, ["-v"], { encoding: "utf8" }).trim() : process.version);
export const machine = (): string =>
  `${cpus().length} cores (${cpus()[0]?.model ?? "?"}), node ${process.version}, broker under node ${brokerNode()}${process.env.BENCH_COMPILED === "1" ? ", compiled build" : ", TypeScript through tsx"}`;

export interface Bench {
  readonly pg: EmbeddedDatabase;
  readonly operatorMd: Metadata;
  /** Starts a broker process; resolves once it answers. */
  broker(extraEnv?: Record<string, string>, nodeArgs?: string[]): Promise<BenchBroker>;
  createApp(b: BenchBroker, scopeCeiling: string[], audiences: string[]): Promise<BenchApp>;
  stop(): Promise<void>;
}

export interface BenchApp {
  readonly clientId: string;
  readonly clientSecret: string;
  /** Basic credentials for generated-client calls. */
  readonly md: Metadata;
}

export interface BenchBroker {
  readonly address: string;
  /** The broker process (for its CPU time in /proc). */
  readonly pid: number;
  readonly client: InstanceType<typeof BrokerServiceClient>;
  stop(): Promise<void>;
}

export async function startBench(): Promise<Bench> {
  const dir = mkdtempSync(join(tmpdir(), "baton-bench-"));
  const pg = await startEmbedded({ dataDir: dir, persistent: false });
  const masterKey = MasterKey.generate();
  const operatorMd = new Metadata();
  operatorMd.set("authorization", `Bearer ${OPERATOR}`);
  const brokers: BenchBroker[] = [];
  return {
    pg,
    operatorMd,
    async broker(extraEnv = {}, nodeArgs = []) {
      const port = await freePort();
      // BENCH_NODE: run the broker under another Node (the release the image pins, say).
      // BENCH_COMPILED=1: run the compiled build (`npm run build` first), as the container does.
      const entry = process.env.BENCH_COMPILED === "1" ? "dist/server/cli.js" : "bin/baton.mjs";
      const child = spawn(process.env.BENCH_NODE || process.execPath, [...nodeArgs, entry, "serve"], {
        env: {
          ...process.env,
          DATABASE_URL: pg.url("postgres"),
          BATON_MASTER_KEY: masterKey,
          BATON_OPERATOR_TOKEN: OPERATOR,
          BATON_GRPC_LISTEN: `127.0.0.1:${port}`,
          BATON_HTTP_LISTEN: "",
          BATON_LOG_LEVEL: "warn",
          BATON_DATABASE_POOL_SIZE: "10",
          ...extraEnv,
        },
        stdio: ["ignore", "inherit", "inherit"],
      });
      const address = `127.0.0.1:${port}`;
      const client = new BrokerServiceClient(address, credentials.createInsecure());
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 60_000, (e) => (e ? reject(e) : resolve())));
      const b: BenchBroker = {
        address,
        pid: child.pid!,
        client,
        async stop() {
          client.close();
          if (child.exitCode === null && child.signalCode === null) {
            child.kill("SIGTERM");
            await new Promise((r) => child.once("exit", r));
          }
        },
      };
      brokers.push(b);
      return b;
    },
    async createApp(b, scopeCeiling, audiences) {
      const admin = new AdminServiceClient(b.address, credentials.createInsecure());
      try {
        // The first broker may still be migrating the database: retry.
        for (let i = 0; ; i++) {
          try {
            const r: { app?: { appId: string }; clientSecret: string } = await unary(admin.createApp.bind(admin), { name: `bench-${i}-${Date.now()}`, scopeCeiling, audiences, maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined }, operatorMd);
            const md = new Metadata();
            md.set("authorization", `Basic ${Buffer.from(`${r.app!.appId}:${r.clientSecret}`).toString("base64")}`);
            return { clientId: r.app!.appId, clientSecret: r.clientSecret, md };
          } catch (err) {
            if (i > 50) throw err;
            await sleep(200);
          }
        }
      } finally {
        admin.close();
      }
    },
    async stop() {
      await Promise.all(brokers.map((b) => b.stop()));
      await pg.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
