// OpenTelemetry tracing of a real broker: an in-test HTTP server stands in
// for the OTLP/HTTP collector (the exporter sends JSON), the broker runs over
// loopback on a real PostgreSQL. Spans are read after the broker stops: its
// stop flushes them.

import { Metadata, status } from "@grpc/grpc-js";
import { trace } from "@opentelemetry/api";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { createServer, type Server } from "node:http";
import { gunzipSync } from "node:zlib";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createLogger } from "../../server/telemetry/logger.js";
import { VERSION } from "../../server/telemetry/metrics.js";
import { startTracing, tracingEnabled } from "../../server/telemetry/tracing.js";
import { agentMd, TestAgentKey } from "../helpers/agent-key.js";
import { basic, call, createApp, issueRequest, OPERATOR_TOKEN, operatorMd, refusal, startTestBroker, type TestApp } from "../helpers/broker.js";
import { openStream, type TestStream } from "../helpers/stream.js";

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: OtlpValue }[];
  status?: { code?: number; message?: string };
}
interface Export {
  resourceSpans: { resource: { attributes: { key: string; value: OtlpValue }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
}

// OTLP enums as the JSON encoding carries them.
const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;
const STATUS_UNSET = 0;
const STATUS_ERROR = 2;

/** An OTLP/HTTP collector on 127.0.0.1: keeps every request body it is sent. */
class Collector {
  readonly bodies: string[] = [];
  readonly paths: string[] = [];
  private server: Server | null = null;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        this.paths.push(`${req.method} ${req.url} ${req.headers["content-type"]}`);
        this.bodies.push((req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw).toString("utf8"));
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as { port: number }).port;
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server!.close(() => r()));
  }

  spans(): OtlpSpan[] {
    return this.bodies.flatMap((b) => (JSON.parse(b) as Export).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
  }
}

const attr = (s: { attributes: { key: string; value: OtlpValue }[] }, key: string): string | number | boolean | undefined => {
  const v = s.attributes.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.stringValue ?? v.boolValue ?? v.doubleValue;
};

/** A W3C traceparent: version, trace id, parent span id, flags (01: sampled). */
const traceparent = (traceId: string, spanId: string, sampled: boolean): Metadata => {
  const md = new Metadata();
  md.set("traceparent", `00-${traceId}-${spanId}-${sampled ? "01" : "00"}`);
  return md;
};

const withMd = (a: Metadata, b: Metadata): Metadata => {
  const out = a.clone();
  out.merge(b);
  return out;
};

describe("tracing on (BATON_OTLP_ENDPOINT)", () => {
  const collector = new Collector();
  const callerTrace = randomBytes(16).toString("hex");
  const callerSpan = randomBytes(8).toString("hex");
  const unsampledTrace = randomBytes(16).toString("hex");
  const sampledTrace = randomBytes(16).toString("hex");
  let app: TestApp;
  let accessToken = "";
  let delegatedToken = "";
  let proof = "";
  let badSecretReason = "";
  let spans: OtlpSpan[] = [];
  let providerWhileRunning: unknown;
  const lines: string[] = [];
  let stream: TestStream;
  const malformed: string[] = [];

  beforeAll(async () => {
    await collector.start();
    const b = await startTestBroker({ BATON_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}` }, undefined, createLogger("info", (l) => lines.push(l)));
    try {
      providerWhileRunning = trace.getTracerProvider();
      app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxDelegationDepth: 2 });
      const key = await TestAgentKey.generate();
      // Issue, continuing the caller's (sampled) trace.
      const issued = await call(b.client.issue, b.client, issueRequest({ agentPublicKeyJwk: key.jwkJson }), withMd(app.md, traceparent(callerTrace, callerSpan, true)));
      accessToken = issued.accessToken;
      // Delegate: a bearer token and a proof in the metadata.
      proof = await key.proof(accessToken);
      const delegated = await call(
        b.client.delegate,
        b.client,
        { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" },
        agentMd(accessToken, proof),
      );
      delegatedToken = delegated.accessToken;
      // A failing call: a wrong client secret.
      const e = await refusal(call(b.client.issue, b.client, issueRequest(), basic(app.appId, `${app.secret}x`)));
      expect(e.code).toBe(status.UNAUTHENTICATED);
      badSecretReason = e.reason;
      // A caller that did not sample its trace: the broker records nothing of it.
      await call(b.client.getKeySet, b.client, {}, traceparent(unsampledTrace, randomBytes(8).toString("hex"), false));
      await call(b.client.getKeySet, b.client, {}, traceparent(sampledTrace, randomBytes(8).toString("hex"), true));
      // Malformed traceparents: ignored, the call is served and starts its own trace.
      for (const bad of ["00-zz-yy-01", `00-${"0".repeat(32)}-${"1".repeat(16)}-01`, `00-${"a".repeat(32)}-${"b".repeat(16)}-01-${"x".repeat(4000)}`]) {
        const md = new Metadata();
        md.set("traceparent", bad);
        md.set("x-request-id", `bad-traceparent-${malformed.length}`);
        await call(b.client.getKeySet, b.client, {}, md);
        malformed.push(bad);
      }
      // A revocation stream, open until the broker stops: it ends with SHUTTING_DOWN.
      stream = openStream(b.client, "", operatorMd());
      await stream.waitFor((s) => s.events.length > 0, 10_000, "the snapshot");
    } finally {
      await b.stop();
    }
    spans = collector.spans();
  });
  afterAll(() => collector.stop());

  const serverSpans = (name: string) => spans.filter((s) => s.kind === SERVER && s.name === name);
  /** `s` and its ancestors, nearest first. */
  const ancestry = (s: OtlpSpan): OtlpSpan[] => {
    const chain = [s];
    for (let p = s; p.parentSpanId; ) {
      const parent = spans.find((x) => x.spanId === p.parentSpanId && x.traceId === p.traceId);
      if (!parent) break;
      chain.push(parent);
      p = parent;
    }
    return chain;
  };

  it("posts JSON to the collector's /v1/traces, as service baton with its version", () => {
    expect(collector.paths.length).toBeGreaterThan(0);
    for (const p of collector.paths) expect(p).toBe("POST /v1/traces application/json");
    const resource = (JSON.parse(collector.bodies[0]!) as Export).resourceSpans[0]!.resource;
    expect(attr(resource, "service.name")).toBe("baton");
    expect(attr(resource, "service.version")).toBe(VERSION);
  });

  it("registers a NodeTracerProvider while the broker runs, and unregisters it on stop", () => {
    expect((providerWhileRunning as { getDelegate(): unknown }).getDelegate()).toBeInstanceOf(NodeTracerProvider);
    expect(tracingEnabled()).toBe(false);
    expect((trace.getTracerProvider() as unknown as { getDelegate(): unknown }).getDelegate()).not.toBeInstanceOf(NodeTracerProvider);
  });

  it("one SERVER span per call, named by the full method, continuing the caller's traceparent", () => {
    const issues = serverSpans("baton.v1.BrokerService/Issue");
    expect(issues).toHaveLength(2);
    const ok = issues.find((s) => s.traceId === callerTrace)!;
    expect(ok, "the Issue span joins the caller's trace").toBeDefined();
    expect(ok.parentSpanId).toBe(callerSpan);
    expect(attr(ok, "rpc.system")).toBe("grpc");
    expect(attr(ok, "rpc.service")).toBe("baton.v1.BrokerService");
    expect(attr(ok, "rpc.method")).toBe("Issue");
    expect(attr(ok, "rpc.grpc.status_code")).toBe(0);
    expect(attr(ok, "baton.app_id")).toBe(app.appId);
    expect(attr(ok, "error.type")).toBeUndefined();
    expect(ok.status?.code ?? STATUS_UNSET).toBe(STATUS_UNSET);
    expect(attr(ok, "baton.request_id")).toMatch(/^[0-9a-f-]{36}$/);

    const del = serverSpans("baton.v1.BrokerService/Delegate");
    expect(del).toHaveLength(1);
    expect(attr(del[0]!, "rpc.grpc.status_code")).toBe(0);
    expect(attr(del[0]!, "baton.agent_id")).toBeTruthy();
    expect(serverSpans("baton.v1.AdminService/CreateApp")).toHaveLength(1);
  });

  it("the access log line of a traced call carries its trace id", () => {
    const rpc = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === "rpc" && l.method === "BrokerService/Issue");
    expect(rpc).toHaveLength(2);
    expect(rpc.map((l) => l.trace_id)).toContain(callerTrace);
  });

  it("a revocation stream is one SERVER span for its whole life; ended by the shutdown, a server-side ERROR", () => {
    expect(stream.ended).toMatchObject({ code: status.UNAVAILABLE, reason: "SHUTTING_DOWN" });
    const [s, ...more] = serverSpans("baton.v1.BrokerService/StreamRevocations");
    expect(more).toEqual([]);
    expect(attr(s!, "rpc.method")).toBe("StreamRevocations");
    expect(attr(s!, "rpc.grpc.status_code")).toBe(status.UNAVAILABLE);
    expect(attr(s!, "baton.error.reason")).toBe("SHUTTING_DOWN");
    expect(attr(s!, "baton.principal")).toBe("operator");
    expect(s!.status).toMatchObject({ code: STATUS_ERROR, message: "SHUTTING_DOWN" });
    const open = spans.find((x) => x.name === "RevocationStreams.open" && x.traceId === s!.traceId);
    expect(open?.parentSpanId).toBe(s!.spanId);
    expect(spans.some((x) => x.kind === CLIENT && x.traceId === s!.traceId), "its snapshot read").toBe(true);
  });

  it("a refused call: its status code, its ErrorInfo reason, and an unset span status (a caller's error, not the server's)", () => {
    const failed = serverSpans("baton.v1.BrokerService/Issue").find((s) => s.traceId !== callerTrace)!;
    expect(failed.parentSpanId ?? "").toBe(""); // no traceparent: a root span
    expect(attr(failed, "rpc.grpc.status_code")).toBe(status.UNAUTHENTICATED);
    expect(attr(failed, "error.type")).toBe("UNAUTHENTICATED");
    expect(attr(failed, "baton.error.reason")).toBe(badSecretReason);
    expect(badSecretReason).not.toBe("");
    expect(failed.status?.code ?? STATUS_UNSET).toBe(STATUS_UNSET);
  });

  it("the use case and its PostgreSQL statements are children of the call's SERVER span, in its trace", () => {
    const server = serverSpans("baton.v1.BrokerService/Issue").find((s) => s.traceId === callerTrace)!;
    const inTrace = spans.filter((s) => s.traceId === callerTrace && s !== server);
    const useCase = inTrace.find((s) => s.name === "Issuer.issue")!;
    expect(useCase.kind).toBe(INTERNAL);
    expect(useCase.parentSpanId).toBe(server.spanId);
    expect(inTrace.find((s) => s.name === "Authentication.authenticate")?.parentSpanId).toBe(server.spanId);

    const db = inTrace.filter((s) => s.kind === CLIENT);
    expect(db.length).toBeGreaterThan(0);
    for (const s of db) {
      expect(attr(s, "db.system.name")).toBe("postgresql");
      expect(attr(s, "db.operation.name")).toMatch(/^[A-Z]+$/);
      expect(ancestry(s), `${s.name} descends from the SERVER span`).toContain(server);
    }
    // The grant is written: its INSERT, under the Issue call (through the group commit).
    const insert = db.find((s) => s.name === "INSERT grants");
    expect(insert, `statements seen: ${db.map((s) => s.name).join(", ")}`).toBeDefined();
    expect(attr(insert!, "db.collection.name")).toBe("grants");
    expect(ancestry(insert!)).toContain(useCase);
  });

  it("a transaction is a span whose statements (BEGIN … COMMIT) are its children", () => {
    const createApp = serverSpans("baton.v1.AdminService/CreateApp")[0]!;
    const tx = spans.find((s) => s.name === "transaction" && s.traceId === createApp.traceId);
    expect(tx, "CreateApp writes the app and its audit event in a transaction").toBeDefined();
    const children = spans.filter((s) => s.parentSpanId === tx!.spanId).map((s) => s.name);
    expect(children[0]).toBe("BEGIN");
    expect(children).toContain("COMMIT");
  });

  it("the statements' spans carry no SQL parameters: only the operation and table", () => {
    const db = spans.filter((x) => x.kind === CLIENT);
    expect(db.length).toBeGreaterThan(5);
    for (const s of db) {
      expect(s.name).toMatch(/^[A-Z]+( [a-z_.]+)?$/);
      expect(attr(s, "db.query.text")).toBeUndefined();
    }
  });

  it("nothing from a caller that did not sample its trace", () => {
    expect(spans.filter((s) => s.traceId === unsampledTrace)).toEqual([]);
    // The same call in a sampled trace is recorded.
    expect(serverSpans("baton.v1.BrokerService/GetKeySet").filter((s) => s.parentSpanId).map((s) => s.traceId)).toEqual([sampledTrace]);
  });

  it("a malformed traceparent is ignored: the call is served, as the root of a new trace", () => {
    expect(malformed).toHaveLength(3);
    for (let i = 0; i < malformed.length; i++) {
      const s = serverSpans("baton.v1.BrokerService/GetKeySet").find((x) => attr(x, "baton.request_id") === `bad-traceparent-${i}`);
      expect(s, malformed[i]).toBeDefined();
      expect(s!.parentSpanId ?? "").toBe("");
      expect(s!.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(s!.traceId).not.toBe("0".repeat(32));
      expect(s!.traceId).not.toBe("a".repeat(32));
    }
  });

  it("no token, secret, proof or Authorization value anywhere in what was exported", () => {
    const all = collector.bodies.join("\n");
    // What was exported holds the calls that carried them.
    for (const m of ["Issue", "Delegate"]) expect(serverSpans(`baton.v1.BrokerService/${m}`).length).toBeGreaterThan(0);
    expect(accessToken.length).toBeGreaterThan(100);
    expect(delegatedToken.length).toBeGreaterThan(100);
    for (const secret of [accessToken, delegatedToken, proof, app.secret, `${app.secret}x`, OPERATOR_TOKEN]) {
      expect(all).not.toContain(secret);
      // Nor the signature part of a JWT alone.
      expect(all).not.toContain(secret.split(".").at(-1)!);
    }
    expect(all).not.toContain(Buffer.from(`${app.appId}:${app.secret}`).toString("base64"));
    expect(all).not.toMatch(/bearer|basic |authorization|baton-proof|eyJ/i);
  });
});

describe("tracing off, and the standard variables", () => {
  const provider = (): unknown => (trace.getTracerProvider() as unknown as { getDelegate(): unknown }).getDelegate();

  it("by default: no provider registered, no span recorded", async () => {
    const b = await startTestBroker({});
    try {
      expect(tracingEnabled()).toBe(false);
      expect(provider()).not.toBeInstanceOf(NodeTracerProvider);
      const app = await createApp(b);
      await call(b.client.issue, b.client, issueRequest(), withMd(app.md, traceparent(randomBytes(16).toString("hex"), randomBytes(8).toString("hex"), true)));
      expect(provider()).not.toBeInstanceOf(NodeTracerProvider);
    } finally {
      await b.stop();
    }
  });

  it("OTEL_SDK_DISABLED=true wins over a standard OTLP endpoint: nothing is sent", async () => {
    const collector = new Collector();
    await collector.start();
    const b = await startTestBroker({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collector.port}`, OTEL_SDK_DISABLED: "true" });
    try {
      expect(tracingEnabled()).toBe(false);
      const app = await createApp(b);
      await call(b.client.issue, b.client, issueRequest(), app.md);
    } finally {
      await b.stop();
    }
    expect(collector.bodies).toEqual([]);
    await collector.stop();
  });

  it("the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT alone switches it on", async () => {
    const collector = new Collector();
    await collector.start();
    const b = await startTestBroker({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${collector.port}/custom/traces` });
    try {
      expect(tracingEnabled()).toBe(true);
      await call(b.client.getKeySet, b.client, {});
    } finally {
      await b.stop();
    }
    expect(collector.paths[0]).toBe("POST /custom/traces application/json");
    expect(collector.spans().map((s) => s.name)).toContain("baton.v1.BrokerService/GetKeySet");
    await collector.stop();
  });
});

describe("stopping", () => {
  it("waits a bounded time for a collector that never answers, then unregisters", async () => {
    let requests = 0;
    const hanging = createServer(() => {
      requests += 1; // and never answer
    });
    await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", r));
    const port = (hanging.address() as { port: number }).port;
    try {
      const stop = startTracing({ url: `http://127.0.0.1:${port}/v1/traces`, sampleRatio: 1 });
      trace.getTracer("test").startSpan("queued").end();
      const started = Date.now();
      await stop(200);
      // The exporter itself would wait 5 s for an answer; the bound is 200 ms.
      expect(Date.now() - started).toBeLessThan(4_000);
      expect(tracingEnabled()).toBe(false);
      await vi.waitFor(() => expect(requests).toBe(1), { timeout: 10_000 });
    } finally {
      hanging.closeAllConnections();
      await new Promise((r) => hanging.close(r));
    }
  });
});
