// OpenTelemetry tracing, off unless an OTLP endpoint is configured
// (config.ts). On: one NodeTracerProvider, registered for the process (the
// OpenTelemetry API's context manager and propagator are process-wide, so
// one broker per process may trace), batching spans to an OTLP/HTTP
// collector as JSON. Off: nothing is registered, and every hook below is a
// null check that runs the wrapped work as it is.
//
// The spans: a SERVER span per gRPC call (transport/grpc-server.ts), a span
// per use case (traceMethods, applied in main.ts), and CLIENT spans for the
// PostgreSQL statements and transactions a traced call makes (storage/db.ts).
// What they carry is chosen here, never passed through: method names, status
// codes, error reasons, request, app, agent and resource server ids, and a
// statement's operation and table. Never a token, secret, proof, header value,
// statement parameter or error message (a driver's message may quote a value).

import {
  context,
  propagation,
  type Attributes,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import {
  ATTR_DB_COLLECTION_NAME,
  ATTR_DB_OPERATION_NAME,
  ATTR_DB_QUERY_SUMMARY,
  ATTR_DB_RESPONSE_STATUS_CODE,
  ATTR_DB_SYSTEM_NAME,
  ATTR_ERROR_TYPE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from "@opentelemetry/semantic-conventions";
import { BatchSpanProcessor, NodeTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler } from "@opentelemetry/sdk-trace-node";
import { VERSION } from "./metrics.js";

export interface TracingConfig {
  /** Where spans are POSTed: the collector's OTLP/HTTP traces URL (…/v1/traces). */
  readonly url: string;
  /** Share of new traces recorded (0 to 1); a caller's sampled flag decides for its own traces. */
  readonly sampleRatio: number;
}

/** How long an export may take before it is abandoned. */
const EXPORT_TIMEOUT_MS = 5_000;

let tracer: Tracer | null = null;

/** True while a provider started here is registered. */
export function tracingEnabled(): boolean {
  return tracer !== null;
}

/**
 * Starts tracing for this process; null config: does nothing. Returns the
 * stop function: it flushes the spans still queued, waiting at most
 * `timeoutMs`, then unregisters everything.
 */
export function startTracing(config: TracingConfig | null): (timeoutMs: number) => Promise<void> {
  if (config === null) return async () => {};
  if (tracer !== null) throw new Error("tracing is already running in this process: one traced broker per process");
  const provider = new NodeTracerProvider({
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win: an
    // operator may name replicas or add a deployment environment.
    resource: defaultResource()
      .merge(resourceFromAttributes({ [ATTR_SERVICE_NAME]: "baton", [ATTR_SERVICE_VERSION]: VERSION }))
      .merge(detectResources({ detectors: [envDetector] })),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    // The exporter also reads OTEL_EXPORTER_OTLP_HEADERS (a collector's credentials).
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: config.url, timeoutMillis: EXPORT_TIMEOUT_MS }))],
  });
  // Global tracer provider, AsyncLocalStorage context (context follows
  // async/await) and the W3C traceparent propagator.
  provider.register();
  tracer = provider.getTracer("baton", VERSION);
  return async (timeoutMs) => {
    if (tracer === null) return;
    tracer = null;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([provider.shutdown().catch(() => {}), waited]);
    clearTimeout(timer);
    trace.disable();
    context.disable();
    propagation.disable();
  };
}

/** gRPC status codes that are the server's fault (OpenTelemetry's gRPC conventions); the others leave a SERVER span's status unset. */
const SERVER_FAULTS = new Set([2, 4, 12, 13, 14, 15]);

/** Incoming gRPC metadata (grpc.Metadata) as the propagator reads it: only traceparent and tracestate are asked for. */
interface MetadataLike {
  get(key: string): readonly unknown[];
}
const metadataGetter: TextMapGetter<MetadataLike> = {
  keys: () => ["traceparent", "tracestate"],
  get: (md, key) => {
    const v = md.get(key)[0];
    return typeof v === "string" ? v : undefined;
  },
};

/** One gRPC call's SERVER span. */
export interface CallSpan {
  /** The trace id, for the access log; null when not recorded. */
  readonly traceId: string | null;
  /** Runs `fn` with this span as the active one: spans `fn` starts are its children. */
  run<T>(fn: () => T): T;
  /**
   * Ends the span with the call's status. `reason`: the ErrorInfo reason of a
   * failed call; `caller`: who called (ids only), when known.
   */
  end(code: number, codeName: string, reason: string | null, caller: Record<string, string>): void;
}

const NOOP_CALL_SPAN: CallSpan = { traceId: null, run: (fn) => fn(), end: () => {} };

/**
 * A SERVER span for a call to `/{service}/{method}`, a child of the caller's
 * span when its metadata carries a W3C traceparent.
 */
export function startCallSpan(service: string, method: string, metadata: MetadataLike, requestId: string): CallSpan {
  if (tracer === null) return NOOP_CALL_SPAN;
  const parent = propagation.extract(context.active(), metadata, metadataGetter);
  // The conventions most collectors and backends read for gRPC today.
  const span = tracer.startSpan(
    `${service}/${method}`,
    {
      kind: SpanKind.SERVER,
      attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method, "baton.request_id": requestId },
    },
    parent,
  );
  const active = trace.setSpan(parent, span);
  let ended = false;
  return {
    traceId: span.isRecording() ? span.spanContext().traceId : null,
    run: (fn) => context.with(active, fn),
    end(code, codeName, reason, caller) {
      if (ended) return;
      ended = true;
      span.setAttribute("rpc.grpc.status_code", code);
      for (const [k, v] of Object.entries(caller)) span.setAttribute(`baton.${k}`, v);
      if (code !== 0) {
        span.setAttribute(ATTR_ERROR_TYPE, codeName);
        if (reason !== null) span.setAttribute("baton.error.reason", reason);
        if (SERVER_FAULTS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR, message: reason ?? codeName });
      }
      span.end();
    },
  };
}

/** Ends `span` with the outcome of a promise (its error's type and SQLSTATE, never its message). */
function endWith(span: Span, err: unknown): void {
  if (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string") span.setAttribute(ATTR_DB_RESPONSE_STATUS_CODE, code);
    span.setAttribute(ATTR_ERROR_TYPE, typeof code === "string" ? code : err instanceof Error ? err.constructor.name : "error");
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

/** Runs `fn` in a new child span of the active one, ending it when `fn`'s promise settles. */
function inSpan<T>(t: Tracer, name: string, kind: SpanKind, attributes: Attributes, fn: () => Promise<T>): Promise<T> {
  return t.startActiveSpan(name, { kind, attributes }, (span) => {
    let p: Promise<T>;
    try {
      p = fn();
    } catch (err) {
      endWith(span, err);
      throw err;
    }
    p.then(
      () => endWith(span, null),
      (err: unknown) => endWith(span, err ?? "error"),
    );
    return p;
  });
}

/**
 * Replaces the named async methods of `target` by ones that run in an
 * INTERNAL span `{name}.{method}`: the use cases under a call's SERVER span.
 * Tracing off: leaves `target` as it is.
 */
export function traceMethods<T extends object>(target: T, name: string, methods: readonly (keyof T & string)[]): T {
  const t = tracer;
  if (t === null) return target;
  for (const m of methods) {
    const original = target[m] as unknown as (...args: unknown[]) => Promise<unknown>;
    const spanName = `${name}.${m}`;
    (target as Record<string, unknown>)[m] = (...args: unknown[]) =>
      tracedParent() === null ? original.apply(target, args) : inSpan(t, spanName, SpanKind.INTERNAL, {}, () => original.apply(target, args));
  }
  return target;
}

/** `sql` with everything inside parentheses blanked: the statement's own clauses, not its subqueries or column lists. */
function topLevel(sql: string): string {
  let depth = 0;
  let out = "";
  for (const c of sql) {
    if (c === "(") depth++;
    out += depth === 0 ? c : " ";
    if (c === ")" && depth > 0) depth--;
  }
  return out;
}

const IDENT = "([A-Za-z_][A-Za-z0-9_.]*)";
const TABLE_AFTER: Record<string, RegExp> = {
  INSERT: new RegExp(`^INSERT\\s+INTO\\s+${IDENT}`, "i"),
  UPDATE: new RegExp(`^UPDATE\\s+(?:ONLY\\s+)?${IDENT}`, "i"),
  DELETE: new RegExp(`^DELETE\\s+FROM\\s+(?:ONLY\\s+)?${IDENT}`, "i"),
  LOCK: new RegExp(`^LOCK\\s+(?:TABLE\\s+)?${IDENT}`, "i"),
  SELECT: new RegExp(`\\bFROM\\s+${IDENT}`, "i"),
};

/**
 * A statement's operation and main table, from its text: `SELECT grants`.
 * A WITH statement is named by its main statement (`WITH x AS (…) INSERT
 * INTO grants …`: `INSERT grants`). Never its parameters or values.
 */
export function statementSummary(sql: string): { operation: string; table: string | null } {
  let text = topLevel(sql).trim();
  let operation = (/^[A-Za-z]+/.exec(text)?.[0] ?? "QUERY").toUpperCase();
  if (operation === "WITH") {
    const main = /\b(SELECT|INSERT|UPDATE|DELETE)\b/i.exec(text);
    if (main) {
      operation = main[1]!.toUpperCase();
      text = text.slice(main.index);
    }
  }
  return { operation, table: TABLE_AFTER[operation]?.exec(text)?.[1] ?? null };
}

// The broker's statements are constants: each is summarised once. Bounded
// all the same, in case some text is built per call.
const summaries = new Map<string, { name: string; attributes: Attributes }>();
const MAX_SUMMARIES = 1_000;

function statementAttributes(sql: string): { name: string; attributes: Attributes } {
  let s = summaries.get(sql);
  if (s === undefined) {
    const { operation, table } = statementSummary(sql);
    const name = table ? `${operation} ${table}` : operation;
    const attributes: Attributes = { [ATTR_DB_SYSTEM_NAME]: "postgresql", [ATTR_DB_OPERATION_NAME]: operation, [ATTR_DB_QUERY_SUMMARY]: name };
    if (table) attributes[ATTR_DB_COLLECTION_NAME] = table;
    s = { name, attributes: Object.freeze(attributes) };
    if (summaries.size >= MAX_SUMMARIES) summaries.clear();
    summaries.set(sql, s);
  }
  return s;
}

/**
 * The tracer, when a recorded span is active: a sampled call (or use case)
 * is running. An unsampled call's children would be dropped anyway.
 */
function tracedParent(): Tracer | null {
  return tracer !== null && trace.getActiveSpan()?.isRecording() === true ? tracer : null;
}

/**
 * Runs pg's `query(...args)` through `run` inside a CLIENT span. Only under
 * a traced call: the broker's background work (catch-up, pruning) would
 * otherwise send a trace a second. Callback or promise, as pg was called.
 */
export function traceQuery(args: unknown[], run: (args: unknown[]) => unknown): unknown {
  const t = tracedParent();
  if (t === null) return run(args);
  const first = args[0];
  const sql = typeof first === "string" ? first : typeof (first as { text?: unknown })?.text === "string" ? (first as { text: string }).text : "";
  const { name, attributes } = statementAttributes(sql);
  const span = t.startSpan(name, { kind: SpanKind.CLIENT, attributes });
  const last = args.at(-1);
  if (typeof last === "function") {
    const cb = last as (err: unknown, ...rest: unknown[]) => unknown;
    return run([
      ...args.slice(0, -1),
      (err: unknown, ...rest: unknown[]) => {
        endWith(span, err);
        return cb(err, ...rest);
      },
    ]);
  }
  let result: unknown;
  try {
    result = run(args);
  } catch (err) {
    endWith(span, err);
    throw err;
  }
  if (result instanceof Promise) result.then(() => endWith(span, null), (err: unknown) => endWith(span, err ?? "error"));
  else span.end();
  return result;
}

/** Runs a transaction (BEGIN … COMMIT) in a span whose children are its statements; only under a traced call. */
export function traceTransaction<T>(fn: () => Promise<T>): Promise<T> {
  const t = tracedParent();
  return t === null ? fn() : inSpan(t, "transaction", SpanKind.INTERNAL, { [ATTR_DB_SYSTEM_NAME]: "postgresql" }, fn);
}

/**
 * `cb` bound to the active context. pg-pool hands a connection to a waiting
 * request from whichever call released it: without this, that request's
 * statements would join the releasing call's trace.
 */
export function bindToActive<F extends (...args: never[]) => unknown>(cb: F): F {
  return tracer === null ? cb : context.bind(context.active(), cb);
}

/** Runs `fn` in a context captured earlier. */
export type InContext = <T>(fn: () => T) => T;
const direct: InContext = (fn) => fn();

/**
 * The active context, to run later work in: work queued by one request and
 * done from another's async chain (a group commit) belongs to the first.
 */
export function captureContext(): InContext {
  if (tracer === null) return direct;
  const ctx = context.active();
  return (fn) => context.with(ctx, fn);
}
