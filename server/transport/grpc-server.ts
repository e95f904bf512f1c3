// The gRPC edge: handlers for BrokerService and AdminService, health checking
// and reflection. Each handler authenticates, converts the request to plain
// objects, calls the service layer and converts the answer back. Every error
// leaves through the one table in errors.ts.

import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Http2Server, IncomingHttpHeaders, ServerHttp2Stream } from "node:http2";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { asParentRefusal, InvalidRequestError, ShuttingDownError } from "../domain/errors.js";
import type { AccessReporter } from "../service/access-reports.js";
import type { AppAdmin } from "../service/apps.js";
import type { ApproverAdmin } from "../service/approvers.js";
import type { Approvals } from "../service/approvals.js";
import type { ApprovalWatches, WatchSink } from "../service/approval-watches.js";
import type { Authentication } from "../service/authentication.js";
import type { Delegator } from "../service/delegate.js";
import type { Renewer } from "../service/renew.js";
import type { Issuer } from "../service/issue.js";
import type { ResourceServerAdmin } from "../service/resource-servers.js";
import type { Revoker } from "../service/revoke.js";
import type { Validator } from "../service/validate.js";
import type { KeyManager } from "../service/keys.js";
import type { Allowed, Principal } from "../service/principals.js";
import { sourceKey } from "../service/rate-limits.js";
import type { Logger } from "../telemetry/logger.js";
import type { Metrics } from "../telemetry/metrics.js";
import { type CallSpan, startCallSpan } from "../telemetry/tracing.js";
import { verifyAudit } from "../storage/audit.js";
import { queryAudit } from "../service/audit-query.js";
import type { Db } from "../storage/db.js";
import { AdminServiceService, type AdminServiceServer } from "../gen/baton/v1/admin.js";
import {
  ApprovalServiceService,
  type ApprovalServiceServer,
  type WatchApprovalRequest,
  type WatchApprovalResponse,
} from "../gen/baton/v1/approvals.js";
import {
  BrokerServiceService,
  type BrokerServiceServer,
  type StreamRevocationsRequest,
  StreamRevocationsResponse,
} from "../gen/baton/v1/broker.js";
import type { RevocationStreams, StreamEvent, StreamSink } from "../service/revocation-streams.js";
import { auditEventToProto } from "./audit-convert.js";
import { credentialsFrom } from "./auth.js";
import {
  accessReportFromProto,
  appToProto,
  approvalStateFromProto,
  approvalToProto,
  approverToProto,
  claimsToProto,
  durationSeconds,
  fieldWithNul,
  grantFromProto,
  issuedToProto,
  keyToProto,
  resourceServerToProto,
  revocationToProto,
  ruleFromProto,
  statusToProto,
  streamEventToProto,
  targetFromProto,
} from "./convert.js";
import { mapError, toServiceError } from "./errors.js";

/**
 * Every file of the contract with its imports (google/protobuf, google/rpc)
 * and comments, as `buf build` writes them (scripts/generate.sh).
 */
const DESCRIPTORS = join(dirname(fileURLToPath(import.meta.url)), "..", "gen", "descriptors.binpb");
// A caller's x-request-id is kept when short and printable ASCII; else a fresh one.
const REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

function requestIdOf(md: grpc.Metadata): string {
  const given = md.get("x-request-id")[0];
  return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
}

/**
 * The request id goes back in trailers: a client gets them on success and on
 * error alike (initial metadata is not sent when a call fails first).
 */
function requestIdTrailer(requestId: string, md = new grpc.Metadata()): grpc.Metadata {
  md.set("x-request-id", requestId);
  return md;
}

/** Who called, for the access log: a kind and ids, never a credential. */
function callerFields(p: Principal | null): Record<string, string> {
  switch (p?.kind) {
    case undefined:
      return {};
    case "operator":
      return { principal: "operator" };
    case "app":
      return { principal: "app", app_id: p.app.appId };
    case "resourceServer":
      return { principal: "resource_server", resource_server_id: p.resourceServer.resourceServerId };
    case "agent":
      return { principal: "agent", app_id: p.claims.appId, agent_id: p.claims.agentId };
    case "approver":
      return { principal: "approver", approver_id: p.approver.approverId };
  }
}

/** A call's span, and its log lines carrying the request id (and the trace id when traced). */
function startCall(logger: Logger, service: string, method: string, md: grpc.Metadata): { requestId: string; span: CallSpan; log: Logger } {
  const requestId = requestIdOf(md);
  const span = startCallSpan(`baton.v1.${service}`, method, md, requestId);
  const log = logger.child(span.traceId ? { request_id: requestId, trace_id: span.traceId } : { request_id: requestId });
  return { requestId, span, log };
}

/** One finished call, unary or stream: its metrics, its access-log line and the end of its span. */
function observeCall(
  metrics: Metrics,
  log: Logger,
  span: CallSpan,
  method: string,
  logName: string,
  started: bigint,
  peer: string,
  who: Principal | null,
  code: grpc.status,
  reason: string | null,
): void {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const name = grpc.status[code] ?? String(code);
  const caller = callerFields(who);
  metrics.observeRpc(method, name, seconds);
  log.info("rpc", { method: logName, code: name, duration_ms: Math.round(seconds * 1e6) / 1e3, peer, ...caller });
  span.end(code, name, reason, caller);
}

/** Encoded revocation events, shared by every stream that sends them. */
const encodedRevocations = new WeakMap<object, Buffer>();

function encodeStreamEvent(e: StreamEvent): Buffer {
  const shared = e.kind === "revocation" ? encodedRevocations.get(e.revocation) : undefined;
  if (shared) return shared;
  const bytes = Buffer.from(StreamRevocationsResponse.encode(streamEventToProto(e)).finish());
  if (e.kind === "revocation") encodedRevocations.set(e.revocation, bytes);
  return bytes;
}
/** The names health checking answers for ("" is the whole server). */
const SERVICES = ["", "baton.v1.BrokerService", "baton.v1.AdminService", "baton.v1.ApprovalService"];

/** Requests above this are refused by grpc-js before any handler runs. */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Server pings: how often, and how long an answer may take before the connection is closed. */
export const KEEPALIVE_TIME_MS = 10_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;

/**
 * Stands for a request whose bytes do not decode. grpc-js would answer such a
 * request with INTERNAL; the handler answers INVALID_ARGUMENT instead.
 */
const UNDECODABLE = Object.freeze({ undecodable: true }) as never;

/** Checks every request gets before its handler: bytes that decode, and no NUL characters (see fieldWithNul). */
function checkedRequest<Req>(req: Req): Req {
  if (req === UNDECODABLE) throw new InvalidRequestError("request", "is not a valid protobuf message for this method");
  const field = fieldWithNul(req as object);
  if (field !== null) throw new InvalidRequestError(field, "must not contain NUL characters");
  return req;
}

/**
 * The handlers of a library's service (health, reflection) behind the same
 * tolerant deserializers as ours: a request that does not decode gets
 * INVALID_ARGUMENT instead of the INTERNAL grpc-js would send.
 */
function refuseUndecodable(service: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation): grpc.UntypedServiceImplementation {
  const refusal = (): grpc.ServiceError =>
    toServiceError(mapError(new InvalidRequestError("request", "is not a valid protobuf message for this method"), randomUUID()));
  const out: grpc.UntypedServiceImplementation = {};
  for (const [name, m] of Object.entries(service)) {
    const key = name in impl ? name : (m.originalName ?? name);
    const fn = impl[key] as (...args: never[]) => void;
    if (!fn) continue;
    if (!m.requestStream && !m.responseStream) {
      out[key] = ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) =>
        call.request === UNDECODABLE ? cb(refusal()) : fn(call as never, cb as never)) as grpc.UntypedHandleCall;
    } else if (!m.requestStream) {
      out[key] = ((call: grpc.ServerWritableStream<unknown, unknown>) =>
        call.request === UNDECODABLE ? call.emit("error", refusal()) : fn(call as never)) as grpc.UntypedHandleCall;
    } else {
      // Streamed requests arrive as "data" events; an undecodable one ends the call.
      out[key] = ((call: grpc.ServerDuplexStream<unknown, unknown>) => {
        const emit = call.emit.bind(call);
        call.emit = (event: string | symbol, ...args: unknown[]) =>
          event === "data" && args[0] === UNDECODABLE ? emit("error", refusal()) : emit(event, ...args);
        fn(call as never);
      }) as grpc.UntypedHandleCall;
    }
  }
  return out;
}

/**
 * The descriptors reflection serves, in the shape @grpc/reflection reads: it
 * takes only the `fileDescriptorProtos` of each entry. proto-loader's own
 * definitions would not do: it merges the files of a package into one
 * ("baton_v1.proto") that declares no imports, so a client cannot resolve
 * google.protobuf.Duration, and it leaves out google.rpc.ErrorInfo, which
 * clients need to decode error details.
 */
function reflectionDefinitions(): PackageDefinition {
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(DESCRIPTORS));
  const fileDescriptorProtos = set.file.map((f) => Buffer.from(toBinary(FileDescriptorProtoSchema, f)));
  return { contract: { fileDescriptorProtos } } as unknown as PackageDefinition;
}

/**
 * Node's HTTP/2 layer keeps only the first of repeated `authorization`
 * headers, so a request carrying two would be judged on one of them.
 * grpc-js does not expose its HTTP/2 servers; this reaches them to put every
 * value back, so credentialsFrom sees them all and refuses the request.
 */
function keepRepeatedAuthorization(server: grpc.Server): void {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) throw new Error("grpc-js no longer exposes its HTTP/2 servers: repeated authorization headers cannot be refused");
  for (const h2 of servers.keys() as IterableIterator<Http2Server>) {
    h2.prependListener("stream", (_stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => {
      const values: string[] = [];
      for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
        if (rawHeaders[i]!.toLowerCase() === "authorization") values.push(rawHeaders[i + 1]!);
      }
      if (values.length > 1) (headers as Record<string, unknown>)["authorization"] = values;
    });
  }
}

/**
 * The service definition with deserializers that never throw, and
 * serializers that pass already-encoded messages through (a revocation sent
 * to a thousand streams is encoded once).
 */
function tolerant<S extends grpc.ServiceDefinition>(service: S): S {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, m] of Object.entries(service)) {
    out[name] = {
      ...m,
      responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : m.responseSerialize(value)),
      requestDeserialize: (bytes: Buffer) => {
        try {
          return m.requestDeserialize(bytes);
        } catch {
          return UNDECODABLE;
        }
      },
    };
  }
  return out as S;
}

export interface GrpcDeps {
  readonly auth: Authentication;
  readonly issuer: Issuer;
  readonly delegator: Delegator;
  readonly renewer: Renewer;
  readonly validator: Validator;
  readonly revoker: Revoker;
  readonly accessReports: AccessReporter;
  readonly apps: AppAdmin;
  readonly resourceServers: ResourceServerAdmin;
  readonly approvers: ApproverAdmin;
  readonly approvals: Approvals;
  readonly approvalWatches: ApprovalWatches;
  readonly keys: KeyManager;
  readonly streams: RevocationStreams;
  readonly db: Db;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

interface CallContext {
  readonly requestId: string;
  /** Lines carry the request id. */
  readonly log: Logger;
  /**
   * Authenticates the caller as one of the allowed kinds; `charged`: the call
   * also counts against the caller's app rate limit.
   */
  readonly caller: (allowed: readonly Allowed[], charged?: boolean) => Promise<Principal>;
}

export class GrpcServer {
  readonly server: grpc.Server;
  readonly health: HealthImplementation;
  private shuttingDown = false;

  constructor(private readonly deps: GrpcDeps) {
    // grpc-js writes its own messages to stderr, and some quote metadata
    // values, credentials included ("Failed to add metadata entry
    // authorization: Bearer ..."). Send them through our logger, which
    // redacts credentials from text. The grpc-js logger is process-wide.
    const text = (args: unknown[]): string => args.map(String).join(" ");
    grpc.setLogger({
      error: (...args: unknown[]) => deps.logger.error("grpc-js", { detail: text(args) }),
      info: (...args: unknown[]) => deps.logger.info("grpc-js", { detail: text(args) }),
      debug: (...args: unknown[]) => deps.logger.debug("grpc-js", { detail: text(args) }),
    });
    this.server = new grpc.Server({
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.keepalive_permit_without_calls": 1,
      // A header field over 64 KB as sent (nghttp2's fixed HPACK limit in
      // Node) makes Node's HTTP/2 layer answer GOAWAY and stop reading, but
      // leave the connection open: a client that counts the call as started
      // waits for its deadline. A ping unanswered within the timeout closes
      // such a connection, so those calls fail UNAVAILABLE within
      // KEEPALIVE_TIME_MS + KEEPALIVE_TIMEOUT_MS; it also drops dead peers.
      "grpc.keepalive_time_ms": KEEPALIVE_TIME_MS,
      "grpc.keepalive_timeout_ms": KEEPALIVE_TIMEOUT_MS,
    });
    this.server.addService(tolerant(BrokerServiceService), this.brokerHandlers());
    this.server.addService(tolerant(AdminServiceService), this.adminHandlers());
    this.server.addService(tolerant(ApprovalServiceService), this.approvalHandlers());
    this.health = new HealthImplementation(Object.fromEntries(SERVICES.map((name) => [name, "NOT_SERVING"])));
    // Library services get the same decode guard as ours.
    const guarded = { addService: (s: grpc.ServiceDefinition, impl: grpc.UntypedServiceImplementation) => this.server.addService(tolerant(s), refuseUndecodable(s, impl)) };
    this.health.addToServer(guarded as unknown as grpc.Server);
    new ReflectionService(reflectionDefinitions()).addToServer(guarded);
  }

  /** Binds and returns the port (useful with port 0). */
  listen(address: string, tls: { certFile: string; keyFile: string; clientCaFile: string | null } | null): Promise<number> {
    const creds = tls
      ? grpc.ServerCredentials.createSsl(
          tls.clientCaFile ? readFileSync(tls.clientCaFile) : null,
          [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
          tls.clientCaFile !== null,
        )
      : grpc.ServerCredentials.createInsecure();
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, creds, (err, port) => {
        if (err) return reject(err);
        keepRepeatedAuthorization(this.server);
        resolve(port);
      });
    });
  }

  setServing(serving: boolean): void {
    const s = serving ? "SERVING" : "NOT_SERVING";
    for (const name of SERVICES) this.health.setStatus(name, s);
  }

  /** Stops taking calls; waits up to `graceMs` for running ones, then cancels them. */
  async shutdown(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    this.setServing(false);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Wraps a unary handler: request id, authentication helper, access log, metrics, the error table. */
  private unary<Req, Res>(
    service: "BrokerService" | "AdminService" | "ApprovalService",
    method: string,
    fn: (req: Req, ctx: CallContext) => Promise<Res>,
  ): grpc.handleUnaryCall<Req, Res> {
    const { auth, logger, metrics } = this.deps;
    // Per method, not per call.
    const path = `/baton.v1.${service}/${method}`;
    const logName = `${service}/${method}`;
    return (call, callback) => {
      const started = process.hrtime.bigint();
      const { requestId, span, log } = startCall(logger, service, method, call.metadata);
      let who: Principal | null = null;
      const ctx: CallContext = {
        requestId,
        log,
        caller: async (allowed, charged = false) => {
          const p = await auth.authenticate(credentialsFrom(call.metadata), allowed, path, sourceKey(call.getPeer()));
          who = p;
          if (charged) await auth.charge(p);
          return p;
        },
      };
      const finish = (code: grpc.status, reason: string | null): void =>
        observeCall(metrics, log, span, method, logName, started, call.getPeer(), who, code, reason);
      const run = span.run(() =>
        this.shuttingDown ? Promise.reject(new ShuttingDownError()) : Promise.resolve(call.request).then((req) => fn(checkedRequest(req), ctx)),
      );
      run.then(
        (res) => {
          finish(grpc.status.OK, null);
          callback(null, res, requestIdTrailer(requestId));
        },
        (err: unknown) => {
          const m = mapError(err, requestId);
          if (m.unexpected) log.error("request failed", { method, error: err });
          else log.debug("request refused", { method, reason: m.reason });
          finish(m.code, m.reason);
          const e = toServiceError(m);
          requestIdTrailer(requestId, e.metadata);
          callback(e);
        },
      );
    };
  }

  private brokerHandlers(): BrokerServiceServer {
    const { issuer, delegator, renewer, validator, revoker, keys, metrics, accessReports } = this.deps;
    return {
      issue: this.unary("BrokerService", "Issue", async (req, ctx) => {
        const caller = await ctx.caller(["app"], true);
        const r = await issuer.issue(
          caller,
          { taskId: req.taskId, orchestrationId: req.orchestrationId, humanPrincipal: req.humanPrincipal, ...grantFromProto(req) },
          ctx,
        );
        metrics.tokenIssued("issue");
        return issuedToProto(r);
      }),
      delegate: this.unary("BrokerService", "Delegate", async (req, ctx) => {
        const caller = await ctx.caller(["agent"], true).catch((err: unknown) => {
          throw asParentRefusal(err);
        });
        const r = await delegator.delegate(caller, grantFromProto(req), ctx);
        metrics.tokenIssued("delegate");
        return issuedToProto(r);
      }),
      validate: this.unary("BrokerService", "Validate", async (req, ctx) => {
        const caller = await ctx.caller(["resourceServer", "app", "operator"]);
        const v = await validator.validate(caller, { token: req.token, audience: req.audience, requiredScopes: req.requiredScopes });
        metrics.observeValidation(v.status);
        return {
          valid: v.status === "VALID",
          status: statusToProto(v.status),
          claims: v.claims ? claimsToProto(v.claims) : undefined,
        };
      }),
      revoke: this.unary("BrokerService", "Revoke", async (req, ctx) => {
        const caller = await ctx.caller(["operator", "app", "agent"], true);
        const r = await revoker.revoke(
          caller,
          { target: targetFromProto(req.target), id: req.id, appId: req.appId, reason: req.reason },
          ctx,
        );
        metrics.revoked(r.target);
        return { revocation: revocationToProto(r) };
      }),
      revokeMany: this.unary("BrokerService", "RevokeMany", async (req, ctx) => {
        // Charged once per call, whatever its size (see broker.proto).
        const caller = await ctx.caller(["operator", "app"], true);
        const rs = await revoker.revokeMany(
          caller,
          req.targets.map((t) => ({ target: targetFromProto(t.target), id: t.id, appId: t.appId, reason: t.reason })),
          ctx,
        );
        for (const r of rs) metrics.revoked(r.target);
        return { revocations: rs.map(revocationToProto) };
      }),
      streamRevocations: (call) => this.streamRevocations(call),
      getKeySet: this.unary("BrokerService", "GetKeySet", async () => ({ jwksJson: keys.ring.jwksJson })),
      renew: this.unary("BrokerService", "Renew", async (req, ctx) => {
        const caller = await ctx.caller(["agent"], true);
        const r = await renewer.renew(caller, { ttlSeconds: durationSeconds("ttl", req.ttl), allowTtlClamp: req.allowTtlClamp }, ctx);
        metrics.tokenIssued("renew");
        metrics.revoked("token");
        return issuedToProto(r);
      }),
      reportAccess: this.unary("BrokerService", "ReportAccess", async (req, ctx) => {
        // Charged once per batch, whatever its size (see service/rate-limits.ts).
        const caller = await ctx.caller(["resourceServer"], true);
        const accepted = await accessReports.report(caller, req.reports.map(accessReportFromProto), ctx);
        return { accepted };
      }),
    };
  }

  /** A server stream: authenticate, then hand the call to the stream service as a sink. */
  private streamRevocations(call: grpc.ServerWritableStream<StreamRevocationsRequest, StreamRevocationsResponse>): void {
    const { streams } = this.deps;
    this.serverStream(call, "BrokerService", "StreamRevocations", ["resourceServer", "app", "operator"], (caller, req, stream) => {
      const sink: StreamSink = {
        // Pre-encoded bytes: the tolerant serializer passes them through.
        write: (e) => call.write(encodeStreamEvent(e) as unknown as StreamRevocationsResponse),
        onceDrained: (fn) => call.once("drain", fn),
        end: stream.end,
      };
      return streams.open(req.cursor, sink, caller);
    });
  }

  /**
   * What every server stream shares: the request id, span, access log line
   * and metrics, authentication, and one end with a status (an error's
   * status and reason, OK with the request id trailer, or CANCELLED when the
   * client went away, which also stops what `open` started).
   */
  private serverStream<Req, Res>(
    call: grpc.ServerWritableStream<Req, Res>,
    service: "BrokerService" | "ApprovalService",
    method: string,
    allowed: readonly Allowed[],
    open: (caller: Principal, req: Req, stream: { readonly ended: () => boolean; readonly end: (err?: unknown) => void }) => Promise<() => void>,
  ): void {
    const { auth, logger, metrics } = this.deps;
    const started = process.hrtime.bigint();
    const { requestId, span, log } = startCall(logger, service, method, call.metadata);
    let who: Principal | null = null;
    let stop: (() => void) | null = null;
    let ended = false;
    const finish = (code: grpc.status, reason: string | null): void => {
      if (ended) return;
      ended = true;
      observeCall(metrics, log, span, method, `${service}/${method}`, started, call.getPeer(), who, code, reason);
    };
    const fail = (err: unknown): void => {
      if (ended) return;
      const m = mapError(err, requestId);
      if (m.unexpected) log.error("stream failed", { method, error: err });
      finish(m.code, m.reason);
      const e = toServiceError(m);
      requestIdTrailer(requestId, e.metadata);
      call.emit("error", e);
    };
    const end = (err?: unknown): void => {
      if (err) return fail(err);
      if (ended) return;
      finish(grpc.status.OK, null);
      call.end(requestIdTrailer(requestId));
    };
    call.on("cancelled", () => {
      finish(grpc.status.CANCELLED, null);
      stop?.();
    });
    span.run(async () => {
      if (this.shuttingDown) throw new ShuttingDownError();
      who = await auth.authenticate(credentialsFrom(call.metadata), allowed, `/baton.v1.${service}/${method}`, sourceKey(call.getPeer()));
      const s = await open(who, checkedRequest(call.request), { ended: () => ended, end });
      if (ended) s();
      else stop = s;
    }).catch(fail);
  }

  private adminHandlers(): AdminServiceServer {
    const { apps, resourceServers, keys, db, approvers } = this.deps;
    const operator = (ctx: CallContext) => ctx.caller(["operator"]);
    // What an operator changed, at info; the audit log holds the details.
    const acted = (ctx: CallContext, action: string, target: Record<string, string>): void =>
      ctx.log.info("admin action", { action, actor: "operator", ...target });
    return {
      createApp: this.unary("AdminService", "CreateApp", async (req, ctx) => {
        await operator(ctx);
        const maxTtl = durationSeconds("max_ttl", req.maxTtl);
        const maxTask = durationSeconds("max_task_lifetime", req.maxTaskLifetime);
        const r = await apps.create(
          {
            name: req.name,
            scopeCeiling: req.scopeCeiling,
            audiences: req.audiences,
            maxTtlSeconds: maxTtl === null ? null : Math.floor(maxTtl),
            maxDelegationDepth: req.maxDelegationDepth,
            ratePerSecond: req.rateLimitPerSecond ?? 0,
            rateBurst: req.rateLimitBurst ?? 0,
            approvalPolicy: req.approvalPolicy.map(ruleFromProto),
            // A fraction is refused (checkTaskSeconds), not rounded.
            maxTaskSeconds: maxTask,
          },
          ctx.requestId,
        );
        acted(ctx, "CreateApp", { app_id: r.app.appId });
        return { app: appToProto(r.app), clientSecret: r.clientSecret };
      }),
      getApp: this.unary("AdminService", "GetApp", async (req, ctx) => {
        await operator(ctx);
        return { app: appToProto(await apps.get(req.appId)) };
      }),
      listApps: this.unary("AdminService", "ListApps", async (req, ctx) => {
        await operator(ctx);
        const r = await apps.list(req.pageSize, req.pageToken);
        return { apps: r.apps.map(appToProto), nextPageToken: r.nextPageToken };
      }),
      updateApp: this.unary("AdminService", "UpdateApp", async (req, ctx) => {
        await operator(ctx);
        const maxTtl = durationSeconds("max_ttl", req.maxTtl);
        const maxTask = durationSeconds("max_task_lifetime", req.maxTaskLifetime);
        const r = await apps.update(
          {
            appId: req.appId,
            name: req.name ?? null,
            scopeCeiling: req.updateScopeCeiling ? req.scopeCeiling : null,
            audiences: req.updateAudiences ? req.audiences : null,
            maxTtlSeconds: maxTtl === null ? null : Math.floor(maxTtl),
            maxDelegationDepth: req.maxDelegationDepth ?? null,
            ratePerSecond: req.rateLimitPerSecond ?? null,
            rateBurst: req.rateLimitBurst ?? null,
            approvalPolicy: req.updateApprovalPolicy ? req.approvalPolicy.map(ruleFromProto) : null,
            maxTaskSeconds: maxTask,
          },
          ctx.requestId,
        );
        acted(ctx, "UpdateApp", { app_id: r.app.appId, revoked_token_count: String(r.revokedTokenCount) });
        return { app: appToProto(r.app), revokedTokenCount: r.revokedTokenCount };
      }),
      disableApp: this.unary("AdminService", "DisableApp", async (req, ctx) => {
        await operator(ctx);
        const app = await apps.disable(req.appId, req.reason, ctx.requestId);
        acted(ctx, "DisableApp", { app_id: app.appId });
        return { app: appToProto(app) };
      }),
      rotateAppSecret: this.unary("AdminService", "RotateAppSecret", async (req, ctx) => {
        await operator(ctx);
        const clientSecret = await apps.rotateSecret(req.appId, ctx.requestId);
        acted(ctx, "RotateAppSecret", { app_id: req.appId });
        return { clientSecret };
      }),
      createResourceServer: this.unary("AdminService", "CreateResourceServer", async (req, ctx) => {
        await operator(ctx);
        const r = await resourceServers.create({ name: req.name, audiences: req.audiences }, ctx.requestId);
        acted(ctx, "CreateResourceServer", { resource_server_id: r.resourceServer.resourceServerId });
        return { resourceServer: resourceServerToProto(r.resourceServer), clientSecret: r.clientSecret };
      }),
      listResourceServers: this.unary("AdminService", "ListResourceServers", async (req, ctx) => {
        await operator(ctx);
        const r = await resourceServers.list(req.pageSize, req.pageToken);
        return { resourceServers: r.resourceServers.map(resourceServerToProto), nextPageToken: r.nextPageToken };
      }),
      disableResourceServer: this.unary("AdminService", "DisableResourceServer", async (req, ctx) => {
        await operator(ctx);
        const rs = await resourceServers.disable(req.resourceServerId, req.reason, ctx.requestId);
        acted(ctx, "DisableResourceServer", { resource_server_id: rs.resourceServerId });
        return { resourceServer: resourceServerToProto(rs) };
      }),
      listSigningKeys: this.unary("AdminService", "ListSigningKeys", async (_req, ctx) => {
        await operator(ctx);
        return { keys: keys.ring.keys.map(keyToProto) };
      }),
      rotateSigningKey: this.unary("AdminService", "RotateSigningKey", async (_req, ctx) => {
        await operator(ctx);
        const ring = await keys.rotate(ctx.requestId);
        acted(ctx, "RotateSigningKey", { key_id: ring.active.stored.keyId });
        const next = ring.keys.find((k) => k.stored.state === "next");
        return { active: keyToProto(ring.active), next: next ? keyToProto(next) : undefined };
      }),
      verifyAuditLog: this.unary("AdminService", "VerifyAuditLog", async (_req, ctx) => {
        await operator(ctx);
        const r = await verifyAudit(db);
        return { intact: r.intact, eventCount: r.eventCount, firstBrokenSeq: Number(r.firstBrokenSeq) };
      }),
      listAuditEvents: this.unary("AdminService", "ListAuditEvents", async (req, ctx) => {
        await operator(ctx);
        const page = await queryAudit(db, {
          appId: req.appId,
          taskId: req.taskId,
          agentId: req.agentId,
          human: req.humanPrincipal,
          tokenId: req.tokenId,
          kinds: req.kinds,
          start: req.startTime ?? null,
          end: req.endTime ?? null,
          afterSeq: BigInt(req.afterSeq),
          pageSize: req.pageSize,
          pageToken: req.pageToken,
        });
        return { events: page.events.map(auditEventToProto), nextPageToken: page.nextPageToken };
      }),
      createApprover: this.unary("AdminService", "CreateApprover", async (req, ctx) => {
        await operator(ctx);
        const r = await approvers.create({ name: req.name, groups: req.groups }, ctx.requestId);
        acted(ctx, "CreateApprover", { approver_id: r.approver.approverId });
        return { approver: approverToProto(r.approver), clientSecret: r.clientSecret };
      }),
      listApprovers: this.unary("AdminService", "ListApprovers", async (req, ctx) => {
        await operator(ctx);
        const r = await approvers.list(req.pageSize, req.pageToken);
        return { approvers: r.approvers.map(approverToProto), nextPageToken: r.nextPageToken };
      }),
      disableApprover: this.unary("AdminService", "DisableApprover", async (req, ctx) => {
        await operator(ctx);
        const a = await approvers.disable(req.approverId, req.reason, ctx.requestId);
        acted(ctx, "DisableApprover", { approver_id: a.approverId });
        return { approver: approverToProto(a) };
      }),
    };
  }

  private approvalHandlers(): ApprovalServiceServer {
    const { approvals } = this.deps;
    return {
      listApprovals: this.unary("ApprovalService", "ListApprovals", async (req, ctx) => {
        const caller = await ctx.caller(["approver", "operator"]);
        const r = await approvals.list(caller, { state: approvalStateFromProto(req.state), appId: req.appId, pageSize: req.pageSize, pageToken: req.pageToken });
        return { approvals: r.approvals.map(approvalToProto), nextPageToken: r.nextPageToken };
      }),
      getApproval: this.unary("ApprovalService", "GetApproval", async (req, ctx) => {
        const caller = await ctx.caller(["approver", "app", "agent", "operator"]);
        return { approval: approvalToProto(await approvals.get(caller, req.approvalId)) };
      }),
      watchApproval: (call) => this.watchApproval(call),
      approve: this.unary("ApprovalService", "Approve", async (req, ctx) => {
        // Apps and the operator authenticate, then are refused NOT_PERMITTED by the service.
        const caller = await ctx.caller(["approver", "app", "operator"]);
        const a = await approvals.approve(caller, req.approvalId, req.reason, ctx);
        ctx.log.info("approval decided", { approval_id: a.approvalId, decision: "approve", state: a.state });
        return { approval: approvalToProto(a) };
      }),
      deny: this.unary("ApprovalService", "Deny", async (req, ctx) => {
        const caller = await ctx.caller(["approver", "app", "operator"]);
        const a = await approvals.deny(caller, req.approvalId, req.reason, ctx);
        ctx.log.info("approval decided", { approval_id: a.approvalId, decision: "deny", state: a.state });
        return { approval: approvalToProto(a) };
      }),
    };
  }

  /** A server stream: authenticate, then follow the approval until it is no longer pending. */
  private watchApproval(call: grpc.ServerWritableStream<WatchApprovalRequest, WatchApprovalResponse>): void {
    const { approvalWatches } = this.deps;
    this.serverStream(call, "ApprovalService", "WatchApproval", ["approver", "app", "agent", "operator"], (caller, req, stream) => {
      const sink: WatchSink = {
        write: (a) => {
          if (!stream.ended()) call.write({ approval: approvalToProto(a) });
        },
        end: stream.end,
      };
      return approvalWatches.open(caller, req.approvalId, sink);
    });
  }
}
