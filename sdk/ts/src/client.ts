// BrokerClient: a thin, promise-based layer over the generated
// BrokerServiceClient. Each call names who is calling (an app, an operator or
// an agent), gets a deadline, sends the matching `authorization` metadata
// (plus a fresh `baton-proof` when an agent's token is key-bound), and fails
// with a BatonError.
//
// Credentials are given per call, not per client: one channel serves an
// orchestrator and all the agents it runs, and an agent credential is just
// its token and, when bound, its key.

import { credentials as grpcCredentials, Metadata, status } from "@grpc/grpc-js";
import type { CallOptions as GrpcCallOptions, ChannelCredentials, ClientOptions, ClientUnaryCall, ServiceError } from "@grpc/grpc-js";
import type { JSONWebKeySet } from "jose";
import {
  BrokerServiceClient,
  BrokerServiceService,
  RevocationTarget,
  type AccessReport,
  type Revocation,
  type TokenClaims,
  type ValidateResponse,
} from "./gen/baton/v1/broker.js";
import type { Duration } from "./gen/google/protobuf/duration.js";
import { optionalBoolean, optionalNumber, optionalString, optionalStringList, requiredObject, requiredString, stringList } from "./args.js";
import { ApprovalRequiredError, BatonError, fromServiceError } from "./errors.js";
import { ApprovalServiceClient, ApprovalServiceService, type Approval } from "./gen/baton/v1/approvals.js";
import { waitForDecision, type WaitOptions } from "./approvals.js";
import { PROOF_METADATA_KEY, type AgentKey } from "./proof.js";
import type { AccessDecision } from "./reporter.js";

/** The deadline of a call when neither the client nor the call sets one, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 5000;

/**
 * The longest bearer token (an agent's token or an operator credential) the
 * client sends, in characters: the broker's own limit. Past it the broker
 * would not answer the call but close the whole connection (HTTP/2 GOAWAY on
 * oversized metadata), failing every call sharing it; so a longer token is
 * refused here, before anything is sent.
 */
export const MAX_BEARER_TOKEN_LENGTH: number = 16 * 1024;

/** The most targets one {@link BrokerClient.revokeMany} call takes: the broker's limit. */
export const MAX_REVOKE_MANY_TARGETS = 1000;

/** The most decisions one {@link BrokerClient.reportAccess} call takes: the broker's limit. */
export const MAX_ACCESS_REPORT_BATCH = 500;

/** An app (orchestrator, or resource server registered as an app): sent as `authorization: Basic`. */
export interface AppCredentials {
  /** The app's client id (`app_...`). */
  readonly clientId: string;
  /** The app's client secret. */
  readonly clientSecret: string;
}

/** An operator: its admin credential, sent as `authorization: Bearer`. */
export interface OperatorCredentials {
  /** The operator credential. */
  readonly operatorToken: string;
}

/**
 * An agent's own credential: its Baton token and, when the token is
 * key-bound (`cnf.jkt`), the key it is bound to. With a key, every call made
 * with the credential carries a fresh proof of possession.
 */
export interface AgentCredential {
  /** The agent's Baton token. Treat as a secret. */
  readonly token: string;
  /** The key the token is bound to; required to use a key-bound token. */
  readonly key?: AgentKey | undefined;
}

/** Who may validate or revoke: an app or an operator. */
export type AppOrOperator = AppCredentials | OperatorCredentials;

/** Who may follow an approval: the app or agent that asked for it, or an operator. */
export type Requester = AppOrOperator | AgentCredential;

/** Options of {@link BrokerClient.issueWithApproval}. */
export interface IssueWithApprovalOptions extends CallOptions {
  /** How long to wait for the approvers, in ms; default 15 minutes. Each Issue call keeps `timeoutMs`. */
  readonly approvalTimeoutMs?: number;
  /** Told the pending approval (its id, group, expiry) before the wait starts: to tell the humans, say. */
  readonly onApprovalRequired?: (err: ApprovalRequiredError) => void;
}

/** Options of {@link BrokerClient}. */
export interface BrokerClientOptions {
  /**
   * Transport security, for example `credentials.createSsl(rootCa)`. Unset:
   * plaintext, allowed only for a loopback address (127.0.0.0/8, ::1,
   * localhost, a unix socket), since app secrets and agent tokens travel on
   * every call. Anything else must use TLS, or pass
   * `credentials.createInsecure()` deliberately (a TLS-terminating sidecar on
   * the same host, for example).
   */
  readonly credentials?: ChannelCredentials;
  /** The deadline of each unary call, in milliseconds, unless the call sets one. Default 5000; 0 for none. */
  readonly timeoutMs?: number;
  /** gRPC channel options (keepalive, message sizes, ...). */
  readonly channelOptions?: Partial<ClientOptions>;
}

/** Per-call options. */
export interface CallOptions {
  /** This call's deadline in milliseconds; the client's by default. 0 for none. */
  readonly timeoutMs?: number;
  /** Cancels the call when aborted; it then fails with CANCELLED. */
  readonly signal?: AbortSignal;
  /** Sent as `x-request-id`, which the broker logs and audits (1 to 64 of `A-Z a-z 0-9 . _ -`). */
  readonly requestId?: string;
}

/** What to bind a new token to: the agent's key, or only its public JWK when the key lives elsewhere. */
interface KeyBinding {
  /** The new agent's key; the returned credential then carries it. */
  readonly agentKey?: AgentKey;
  /** The new agent's public JWK (JSON), when its key is held elsewhere. Not with `agentKey`. */
  readonly agentPublicKeyJwk?: string;
}

/** An Issue request. */
export interface IssueRequest extends KeyBinding {
  /** The task the agent works on, chosen by the app. */
  readonly taskId: string;
  /** The scopes the agent needs, each `action:resource:identifier`, within the app's ceiling. */
  readonly scopes: readonly string[];
  /** The resource servers the token is for, each in the app's audience list. */
  readonly audiences: readonly string[];
  /** The token's lifetime in seconds; the broker default (5 minutes) when unset. */
  readonly ttlSeconds?: number;
  /** Shorten a TTL above the app's maximum instead of failing. */
  readonly allowTtlClamp?: boolean;
  /** The orchestration run, for the audit trail. */
  readonly orchestrationId?: string;
  /** The human the work is done for (a user id). */
  readonly humanPrincipal?: string;
  /** The approved approval this same request was granted (after an {@link ApprovalRequiredError}). */
  readonly approvalId?: string;
}

/** A Delegate request: what the sub-agent's token may do. */
export interface DelegateRequest extends KeyBinding {
  /** The sub-agent's scopes, each covered by the caller's own. */
  readonly scopes: readonly string[];
  /** The child's audiences, each one of the caller's; the caller's when unset. */
  readonly audiences?: readonly string[];
  /** The child's lifetime in seconds; the broker default, shortened to the parent's remaining life, when unset. */
  readonly ttlSeconds?: number;
  /** Shorten a TTL beyond the parent's remaining life instead of failing. */
  readonly allowTtlClamp?: boolean;
  /** The approved approval this same request was granted (after an {@link ApprovalRequiredError}). */
  readonly approvalId?: string;
}

/** A Renew request: the new token's lifetime. */
export interface RenewRequest {
  /** The new token's lifetime in seconds; the broker default when unset. Never past the task's lifetime maximum nor, for a delegated token, its parent. */
  readonly ttlSeconds?: number;
  /** Shorten a TTL above the app's maximum or the parent's remaining life instead of failing. */
  readonly allowTtlClamp?: boolean;
}

/** A Validate request. */
export interface ValidateRequest {
  /** The token to check. */
  readonly token: string;
  /** The resource server the caller validates for. */
  readonly audience: string;
  /** Scopes the token must cover. */
  readonly requiredScopes?: readonly string[];
}

/** The kinds of revocation target, by name. */
export type RevocationTargetName = "token" | "agent" | "task" | "chain" | "app";

/** A Revoke request. */
export interface RevokeRequest {
  /** What `id` names: a RevocationTarget, or its name. */
  readonly target: RevocationTarget | RevocationTargetName;
  /** The token id (token, chain), agent id, task id or app id. */
  readonly id: string;
  /** The app a task belongs to; operators must give it for a task. */
  readonly appId?: string;
  /** Why, for the audit trail. */
  readonly reason?: string;
}

/** A token just issued or delegated. */
export interface IssuedToken {
  /** The signed token. Treat as a secret. */
  readonly accessToken: string;
  /** Its claims, decoded by the broker. */
  readonly claims: TokenClaims;
  /** True when the TTL was shortened because the request allowed it. */
  readonly ttlClamped: boolean;
  /** The token with its key (when `agentKey` was given), ready for the agent's own calls. */
  readonly credential: AgentCredential;
}

const TARGETS: Record<RevocationTargetName, RevocationTarget> = {
  token: RevocationTarget.REVOCATION_TARGET_TOKEN,
  agent: RevocationTarget.REVOCATION_TARGET_AGENT,
  task: RevocationTarget.REVOCATION_TARGET_TASK,
  chain: RevocationTarget.REVOCATION_TARGET_CHAIN,
  app: RevocationTarget.REVOCATION_TARGET_APP,
};

export type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

const LOOPBACK_TARGET = /^(?:dns:(?:\/\/[^/]*\/)?|ipv4:|ipv6:)?(?:\[(?<v6>[^\]]+)\]|(?<host>[^:/[\]]+))(?::\d+)?$/;

/** Whether a gRPC target is on this host, where plaintext is acceptable. */
export function isLoopbackTarget(address: string): boolean {
  if (address.startsWith("unix:")) return true;
  const m = LOOPBACK_TARGET.exec(address);
  const host = (m?.groups?.v6 ?? m?.groups?.host ?? "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127(?:\.\d{1,3}){3}$/.test(host);
}

function ttlOf(value: number | undefined): Duration | undefined {
  const seconds = optionalNumber(value, "request.ttlSeconds");
  if (seconds === undefined) return undefined;
  const whole = Math.trunc(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) };
}

function publicKeyOf(b: KeyBinding): string {
  const jwk = optionalString(b.agentPublicKeyJwk, "request.agentPublicKeyJwk");
  if (b.agentKey && jwk !== "" && jwk !== b.agentKey.publicJwk) {
    throw new TypeError("give agentKey or agentPublicKeyJwk, not two different keys");
  }
  return b.agentKey?.publicJwk ?? jwk;
}

/** Printable ASCII: what grpc-js accepts in a text metadata value. */
const METADATA_VALUE = /^[ -~]*$/;

/**
 * Sets a metadata value. grpc-js would reject a value with other characters
 * (a token read from a file with its newline, say) with an error that quotes
 * the value, so that check is made here first, naming only what was wrong.
 */
function setMetadata(md: Metadata, key: string, value: string, what: string): void {
  if (!METADATA_VALUE.test(value)) throw new BatonError(status.INVALID_ARGUMENT, `${what} contains characters not allowed in gRPC metadata`);
  md.set(key, value);
}

/**
 * Sets `authorization: Bearer <token>`, refusing (INVALID_REQUEST, nothing
 * sent) a token longer than {@link MAX_BEARER_TOKEN_LENGTH}.
 */
function setBearer(md: Metadata, token: string, what: string): void {
  if (token.length > MAX_BEARER_TOKEN_LENGTH) {
    throw new BatonError(status.INVALID_ARGUMENT, `${what} is longer than ${MAX_BEARER_TOKEN_LENGTH} characters; it was not sent`, "INVALID_REQUEST", {
      field: "authorization",
      problem: `longer than ${MAX_BEARER_TOKEN_LENGTH} characters`,
    });
  }
  setMetadata(md, "authorization", `Bearer ${token}`, what);
}

/** Checks an app's or operator's credentials are strings; `name` is the argument's, for the TypeError. */
export function checkCaller(caller: AppOrOperator, name: string): void {
  requiredObject(caller, name);
  if ("clientId" in caller) {
    requiredString(caller.clientId, `${name}.clientId`);
    requiredString(caller.clientSecret, `${name}.clientSecret`);
  } else {
    requiredString(caller.operatorToken, `${name}.operatorToken`);
  }
}

/** The `authorization` metadata of an app (Basic) or an operator (Bearer); `name` is the argument's, for errors. */
export function callerMetadata(caller: AppOrOperator, name = "caller"): Metadata {
  checkCaller(caller, name);
  const md = new Metadata();
  if ("clientId" in caller) {
    // Base64 is always printable.
    md.set("authorization", `Basic ${Buffer.from(`${caller.clientId}:${caller.clientSecret}`, "utf8").toString("base64")}`);
  } else {
    setBearer(md, caller.operatorToken, "the operator token");
  }
  return md;
}

/** The wire form of a Revoke request; `name` is the argument's, for the TypeError. */
function revokeRequestOf(request: RevokeRequest, name: string): { target: RevocationTarget; id: string; appId: string; reason: string } {
  requiredObject(request, name);
  const named = request.target;
  // Own keys only: "constructor" names no target.
  const target = typeof named === "string" ? (Object.hasOwn(TARGETS, named) ? TARGETS[named] : undefined) : typeof named === "number" ? named : undefined;
  if (target === undefined) throw new TypeError(`${name}.target: unknown revocation target: ${typeof named === "string" ? named.slice(0, 32) : typeof named}`);
  return {
    target,
    id: requiredString(request.id, `${name}.id`),
    appId: optionalString(request.appId, `${name}.appId`),
    reason: optionalString(request.reason, `${name}.reason`),
  };
}

/** The wire form of an access decision; `name` is the argument's, for the TypeError. */
function accessReportOf(d: AccessDecision, name: string): AccessReport {
  requiredObject(d, name);
  if (typeof d.allowed !== "boolean") throw new TypeError(`${name}.allowed must be a boolean`);
  const ms = optionalNumber(d.decideTimeMs, `${name}.decideTimeMs`);
  return {
    tokenId: requiredString(d.tokenId, `${name}.tokenId`),
    agentId: requiredString(d.agentId, `${name}.agentId`),
    audience: requiredString(d.audience, `${name}.audience`),
    scope: optionalString(d.scope, `${name}.scope`),
    resource: optionalString(d.resource, `${name}.resource`),
    allowed: d.allowed,
    reason: optionalString(d.reason, `${name}.reason`),
    outcome: optionalString(d.outcome, `${name}.outcome`),
    decideTime: new Date(ms ?? Date.now()),
  };
}

/**
 * The channel credentials and default deadline of a client for `address`
 * (shared by BrokerClient and AdminClient).
 *
 * @throws TypeError when `address` is not a loopback address and no `credentials` are given
 */
export function channelSettings(address: string, options: BrokerClientOptions): { creds: ChannelCredentials; timeoutMs: number } {
  let creds = options.credentials;
  if (!creds) {
    if (!isLoopbackTarget(address)) {
      throw new TypeError(
        "plaintext is only allowed on loopback: pass credentials (credentials.createSsl(...)), or credentials.createInsecure() deliberately",
      );
    }
    creds = grpcCredentials.createInsecure();
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs < 0) throw new TypeError("timeoutMs must be a non-negative number");
  return { creds, timeoutMs };
}

/**
 * One unary call on a generated client: deadline, request id, cancellation
 * by `signal`, and failure as a BatonError.
 */
export function unaryCall<Req, Res>(
  client: object,
  defaultTimeoutMs: number,
  method: UnaryMethod<Req, Res>,
  request: Req,
  metadata: Metadata,
  options: CallOptions = {},
): Promise<Res> {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const callOptions: Partial<GrpcCallOptions> = timeoutMs > 0 ? { deadline: Date.now() + timeoutMs } : {};
  if (options.requestId !== undefined) setMetadata(metadata, "x-request-id", options.requestId, "the request id");
  const { signal } = options;
  return new Promise<Res>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new BatonError(status.CANCELLED, "cancelled before the call started"));
      return;
    }
    const onAbort = (): void => call.cancel();
    const call = method.call(client, request, metadata, callOptions, (err, res) => {
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(fromServiceError(err));
      else resolve(res);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A field the broker always sets on success; its absence is a broker fault. */
export function present<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new BatonError(status.INTERNAL, `the broker's answer has no ${what}`);
  return value;
}

/**
 * A connection to a Baton broker's BrokerService.
 *
 * @example
 * ```ts
 * const broker = new BrokerClient("127.0.0.1:7443");
 * const key = await AgentKey.generate();
 * const { credential } = await broker.issue(app, { taskId: "t-1", scopes: ["read:records:P-1"], audiences: ["ehr-api"], agentKey: key });
 * const child = await broker.delegate(credential, { scopes: ["read:records:P-1"] });
 * await broker.release(credential); // the child dies with it
 * broker.close();
 * ```
 */
export class BrokerClient {
  readonly #client: BrokerServiceClient;
  readonly #approvals: ApprovalServiceClient;
  readonly #timeoutMs: number;

  /**
   * Opens a channel to the broker at `address` (`host:port` or a gRPC target
   * URI). It connects lazily, on the first call.
   *
   * @throws TypeError when `address` is not a loopback address and no `credentials` are given
   */
  constructor(address: string, options: BrokerClientOptions = {}) {
    const { creds, timeoutMs } = channelSettings(address, options);
    this.#timeoutMs = timeoutMs;
    this.#client = new BrokerServiceClient(address, creds, options.channelOptions);
    // The requester's approval calls share the broker channel.
    this.#approvals = new ApprovalServiceClient(address, creds, { ...options.channelOptions, channelOverride: this.#client.getChannel() });
  }

  /**
   * The generated client, for what this class does not wrap (the revocation
   * stream, for example). Calls on it get neither credentials, deadline nor
   * BatonError conversion.
   */
  get stub(): BrokerServiceClient {
    return this.#client;
  }

  /** Issues a token for one new agent of one task. Called by an app. */
  async issue(app: AppCredentials, request: IssueRequest, options?: CallOptions): Promise<IssuedToken> {
    requiredObject(request, "request");
    const res = await this.#unary(
      this.#client.issue,
      {
        taskId: requiredString(request.taskId, "request.taskId"),
        orchestrationId: optionalString(request.orchestrationId, "request.orchestrationId"),
        humanPrincipal: optionalString(request.humanPrincipal, "request.humanPrincipal"),
        scopes: stringList(request.scopes, "request.scopes"),
        audiences: stringList(request.audiences, "request.audiences"),
        ttl: ttlOf(request.ttlSeconds),
        allowTtlClamp: optionalBoolean(request.allowTtlClamp, "request.allowTtlClamp"),
        agentPublicKeyJwk: publicKeyOf(request),
        approvalId: optionalString(request.approvalId, "request.approvalId"),
      },
      callerMetadata(app, "app"),
      options,
    );
    return this.#issued(res.accessToken, res.claims, res.ttlClamped, request.agentKey);
  }

  /**
   * Delegates: asks for a token for a sub-agent with the same or less
   * authority than the caller's own. Called by an agent with its credential;
   * a proof of possession is attached when the credential has a key.
   */
  async delegate(agent: AgentCredential, request: DelegateRequest, options?: CallOptions): Promise<IssuedToken> {
    requiredObject(request, "request");
    // Checked before the proof is signed: a refused request costs nothing.
    const req = {
      scopes: stringList(request.scopes, "request.scopes"),
      audiences: optionalStringList(request.audiences, "request.audiences"),
      ttl: ttlOf(request.ttlSeconds),
      allowTtlClamp: optionalBoolean(request.allowTtlClamp, "request.allowTtlClamp"),
      agentPublicKeyJwk: publicKeyOf(request),
      approvalId: optionalString(request.approvalId, "request.approvalId"),
    };
    const md = await this.#agentMetadata(agent, BrokerServiceService.delegate.path);
    const res = await this.#unary(this.#client.delegate, req, md, options);
    return this.#issued(res.accessToken, res.claims, res.ttlClamped, request.agentKey);
  }

  /**
   * Renews the agent's own token: returns a new one for the same agent,
   * scopes, audiences and lineage (its claims name the old one in
   * `renewedFromTokenId`), and revokes the old token, and so everything
   * delegated from it, at once. Called by an agent with its credential; a
   * proof of possession is attached when the credential has a key, and the
   * returned credential carries the same key. Fails with
   * TASK_LIFETIME_EXCEEDED once the task's lifetime maximum is reached: the
   * app must issue a new token.
   */
  async renew(agent: AgentCredential, request: RenewRequest = {}, options?: CallOptions): Promise<IssuedToken> {
    requiredObject(request, "request");
    // Checked before the proof is signed: a refused request costs nothing.
    const req = {
      ttl: ttlOf(request.ttlSeconds),
      allowTtlClamp: optionalBoolean(request.allowTtlClamp, "request.allowTtlClamp"),
    };
    const md = await this.#agentMetadata(agent, BrokerServiceService.renew.path);
    const res = await this.#unary(this.#client.renew, req, md, options);
    return this.#issued(res.accessToken, res.claims, res.ttlClamped, agent.key);
  }

  /**
   * Releases the agent's own token: revokes it and every token delegated
   * from it, at once. Called by the agent when its work is done.
   */
  async release(agent: AgentCredential, options?: CallOptions & { readonly reason?: string }): Promise<Revocation> {
    const reason = optionalString(options?.reason, "options.reason");
    const md = await this.#agentMetadata(agent, BrokerServiceService.revoke.path);
    // TOKEN with an empty id: "the token I am calling with".
    const req = { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: "", appId: "", reason };
    const res = await this.#unary(this.#client.revoke, req, md, options);
    return present(res.revocation, "revocation");
  }

  /**
   * Checks a token online for one audience. An invalid token is an answer
   * (`valid` false and a `status` saying why), not an error. Called by an
   * app or an operator.
   */
  async validate(caller: AppOrOperator, request: ValidateRequest, options?: CallOptions): Promise<ValidateResponse> {
    requiredObject(request, "request");
    const req = {
      token: requiredString(request.token, "request.token"),
      audience: requiredString(request.audience, "request.audience"),
      requiredScopes: optionalStringList(request.requiredScopes, "request.requiredScopes"),
    };
    return this.#unary(this.#client.validate, req, callerMetadata(caller), options);
  }

  /**
   * Revokes a token, an agent, a task, a delegation chain or an app; effective
   * when the promise resolves. An app may revoke only what it issued.
   */
  async revoke(caller: AppOrOperator, request: RevokeRequest, options?: CallOptions): Promise<Revocation> {
    const req = revokeRequestOf(request, "request");
    const res = await this.#unary(this.#client.revoke, req, callerMetadata(caller), options);
    return present(res.revocation, "revocation");
  }

  /**
   * Revokes up to {@link MAX_REVOKE_MANY_TARGETS} targets at once, all or
   * none, for incident response; effective when the promise resolves. When
   * one target is refused, nothing is revoked and the BatonError is that
   * target's, with its position in `metadata.index`. Called by an operator
   * (any target) or an app (only what it issued). Resolves with the
   * revocations in the order of `targets`.
   */
  async revokeMany(caller: AppOrOperator, targets: readonly RevokeRequest[], options?: CallOptions): Promise<Revocation[]> {
    if (!Array.isArray(targets)) throw new TypeError(`targets must be an array of revoke requests, not ${targets === null ? "null" : typeof targets}`);
    // Checked here so a mistake costs no call; the broker enforces the same bounds.
    if (targets.length === 0 || targets.length > MAX_REVOKE_MANY_TARGETS) {
      throw new TypeError(`targets must hold 1 to ${MAX_REVOKE_MANY_TARGETS} entries, not ${targets.length}`);
    }
    const req = { targets: targets.map((t: unknown, i) => revokeRequestOf(t as RevokeRequest, `targets[${i}]`)) };
    const res = await this.#unary(this.#client.revokeMany, req, callerMetadata(caller), options);
    return res.revocations;
  }

  /**
   * Reports up to {@link MAX_ACCESS_REPORT_BATCH} access decisions, stored
   * by the broker as audit events with each token's lineage; all or none
   * (a refused report refuses the call, its position in `metadata.index`).
   * Called by a resource server with its client id (`rs_...`) and secret.
   * Resolves with the number stored. An {@link AccessReporter} calls this
   * in the background, off the verification path.
   */
  async reportAccess(resourceServer: AppCredentials, decisions: readonly AccessDecision[], options?: CallOptions): Promise<number> {
    if (!Array.isArray(decisions)) throw new TypeError(`decisions must be an array, not ${decisions === null ? "null" : typeof decisions}`);
    if (decisions.length === 0 || decisions.length > MAX_ACCESS_REPORT_BATCH) {
      throw new TypeError(`decisions must hold 1 to ${MAX_ACCESS_REPORT_BATCH} entries, not ${decisions.length}`);
    }
    const reports = decisions.map((d: unknown, i) => accessReportOf(d as AccessDecision, `decisions[${i}]`));
    const res = await this.#unary(this.#client.reportAccess, { reports }, callerMetadata(resourceServer, "resourceServer"), options);
    return res.accepted;
  }

  /** The public keys that verify Baton tokens, as a JWK set (for jose's `createLocalJWKSet`). Needs no credentials. */
  async getKeySet(options?: CallOptions): Promise<JSONWebKeySet> {
    const res = await this.#unary(this.#client.getKeySet, {}, new Metadata(), options);
    return JSON.parse(res.jwksJson) as JSONWebKeySet;
  }

  // ---- Approvals, the requester's side (issue 8) ----

  /**
   * One approval the caller asked for (an app, or the agent that asked to
   * delegate; an operator may read any).
   */
  async getApproval(caller: Requester, approvalId: string, options?: CallOptions): Promise<Approval> {
    const req = { approvalId: requiredString(approvalId, "approvalId") };
    const md = await this.#requesterMetadata(caller, ApprovalServiceService.getApproval.path);
    const res = await unaryCall(this.#approvals, this.#timeoutMs, this.#approvals.getApproval, req, md, options);
    return present(res.approval, "approval");
  }

  /**
   * Waits, through WatchApproval, until the approval is decided for good, and
   * resolves with it: APPROVED (send the same request again with
   * `approvalId`), DENIED, EXPIRED or USED. A broken stream is followed
   * again. Called by the requester, like {@link getApproval}.
   *
   * @throws ApprovalError (reason APPROVAL_PENDING, code DEADLINE_EXCEEDED) when still undecided after `options.timeoutMs` (default 15 minutes)
   */
  async waitForApproval(caller: Requester, approvalId: string, options?: WaitOptions): Promise<Approval> {
    return waitForDecision(this.#approvals, () => this.#requesterMetadata(caller, ApprovalServiceService.watchApproval.path), approvalId, options);
  }

  /**
   * {@link issue}, and when the app's policy says the request needs human
   * approval: waits for the decision ({@link waitForApproval}) and issues
   * again with the approval. A denied, expired or used approval fails as the
   * broker says (an ApprovalError: APPROVAL_DENIED, ...).
   */
  async issueWithApproval(app: AppCredentials, request: IssueRequest, options?: IssueWithApprovalOptions): Promise<IssuedToken> {
    try {
      return await this.issue(app, request, options);
    } catch (err) {
      if (!(err instanceof ApprovalRequiredError) || err.approvalId === "") throw err;
      options?.onApprovalRequired?.(err);
      await this.waitForApproval(app, err.approvalId, { timeoutMs: options?.approvalTimeoutMs, signal: options?.signal });
      return this.issue(app, { ...request, approvalId: err.approvalId }, options);
    }
  }

  async #requesterMetadata(caller: Requester, method: string): Promise<Metadata> {
    requiredObject(caller, "caller");
    return "token" in caller ? this.#agentMetadata(caller, method) : callerMetadata(caller);
  }

  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void {
    this.#client.close();
  }

  #issued(accessToken: string, claims: TokenClaims | undefined, ttlClamped: boolean, key: AgentKey | undefined): IssuedToken {
    return { accessToken, claims: present(claims, "claims"), ttlClamped, credential: key ? { token: accessToken, key } : { token: accessToken } };
  }

  async #agentMetadata(agent: AgentCredential, method: string): Promise<Metadata> {
    requiredObject(agent, "agent");
    const md = new Metadata();
    setBearer(md, requiredString(agent.token, "agent.token"), "the agent token");
    if (agent.key) md.set(PROOF_METADATA_KEY, await agent.key.createProof(method, agent.token));
    return md;
  }

  #unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, metadata: Metadata, options: CallOptions = {}): Promise<Res> {
    return unaryCall(this.#client, this.#timeoutMs, method, request, metadata, options);
  }
}
