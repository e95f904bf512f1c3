// Prometheus metrics with prom-client, one registry per broker (tests run
// several brokers in one process). Labels are bounded sets (method, gRPC
// code, token status, token kind, revocation target); never a scope, app,
// customer, agent or token id.

import { existsSync, readFileSync } from "node:fs";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

// The package's version: package.json sits two levels up from the sources
// (server/telemetry) and three from the build (dist/server/telemetry).
const PACKAGE_JSON = ["../../package.json", "../../../package.json"].map((p) => new URL(p, import.meta.url)).find((u) => existsSync(u));
export const VERSION = PACKAGE_JSON ? (JSON.parse(readFileSync(PACKAGE_JSON, "utf8")) as { version: string }).version : "unknown";

/** A counter with one label, in `registry`. */
function countedBy<L extends string>(registry: Registry, name: string, help: string, label: L): Counter<L> {
  return new Counter({ name, help, labelNames: [label], registers: [registry] });
}

export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: "baton_grpc_requests_total",
    help: "Finished gRPC calls by method and status code.",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: "baton_grpc_request_duration_seconds",
    help: "gRPC call duration in the broker, by method (streams: until they end).",
    labelNames: ["method"] as const,
    buckets: BUCKETS,
    registers: [this.registry],
  });
  private readonly validations = countedBy(this.registry, "baton_validations_total", "Validate verdicts by token status.", "status");
  private readonly issued = countedBy(
    this.registry,
    "baton_tokens_issued_total",
    "Tokens minted, by kind: issue (an app's Issue), delegate (an agent's Delegate) or renew (an agent's Renew).",
    "kind",
  );
  private readonly revocations = countedBy(
    this.registry,
    "baton_revocations_total",
    "Revocations recorded through Revoke and RevokeMany, by target (token, agent, task, chain, app).",
    "target",
  );

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "" });
    new Gauge({
      name: "baton_build_info",
      help: "Always 1; the labels say which Baton version runs on which Node.js.",
      labelNames: ["version", "node"] as const,
      registers: [this.registry],
    }).set({ version: VERSION, node: process.version }, 1);
  }

  /** One finished RPC. */
  observeRpc(method: string, code: string, seconds: number): void {
    this.requests.inc({ method, code });
    this.latency.observe({ method }, seconds);
  }

  observeValidation(status: string): void {
    this.validations.inc({ status });
  }

  tokenIssued(kind: "issue" | "delegate" | "renew"): void {
    this.issued.inc({ kind });
  }

  revoked(target: string): void {
    this.revocations.inc({ target });
  }

  /** A value read when scraped. */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({ name, help, registers: [this.registry], collect() { this.set(read()); } });
  }

  /** A counter kept elsewhere (only ever growing), read when scraped. */
  counter(name: string, help: string, read: () => number): void {
    let seen = 0;
    new Counter({
      name,
      help,
      registers: [this.registry],
      collect() {
        const now = read();
        if (now > seen) this.inc(now - seen);
        seen = now;
      },
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
