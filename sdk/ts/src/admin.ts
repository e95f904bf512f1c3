// AdminClient: a thin, promise-based layer over the generated
// AdminServiceClient, for operators. Like BrokerClient, the credential is
// given per call (an operator token, sent as `authorization: Bearer`), each
// call gets a deadline and fails with a BatonError; arguments are checked
// before anything is sent.

import { status } from "@grpc/grpc-js";
import {
  AdminServiceClient,
  ScopeClass,
  type App,
  type ApprovalRule,
  type Approver,
  type AuditEvent,
  type ResourceServer,
  type SigningKey,
  type VerifyAuditLogResponse,
} from "./gen/baton/v1/admin.js";
import type { Duration } from "./gen/google/protobuf/duration.js";
import { optionalNumber, optionalString, optionalStringList, requiredObject, requiredString, stringList } from "./args.js";
import {
  callerMetadata,
  channelSettings,
  present,
  unaryCall,
  type BrokerClientOptions,
  type CallOptions,
  type OperatorCredentials,
  type UnaryMethod,
} from "./client.js";
import { BatonError } from "./errors.js";
import type { Metadata } from "@grpc/grpc-js";

/** A CreateApp request. */
export interface CreateAppRequest {
  /** A name for people. */
  readonly name: string;
  /** The scopes the app may ever grant, each `action:resource:identifier` (wildcards allowed). */
  readonly scopeCeiling: readonly string[];
  /** The resource servers its tokens may be for. */
  readonly audiences: readonly string[];
  /** The longest token lifetime it may ask for, in seconds; the broker default when unset. */
  readonly maxTtlSeconds?: number;
  /** How deep its agents may delegate; 0 forbids delegation. */
  readonly maxDelegationDepth?: number;
  /** Its rate limit in requests per second; the broker default when unset, 0 for none. */
  readonly rateLimitPerSecond?: number;
  /** Its rate-limit burst; the broker default when unset. */
  readonly rateLimitBurst?: number;
  /** Its approval policy: which scopes need human approval, and whose. None when unset. */
  readonly approvalPolicy?: readonly ApprovalRuleInput[];
  /** How long a task may keep renewing its tokens, in seconds (1 to 30 days); the broker default (BATON_MAX_TASK_SECONDS) when unset. */
  readonly maxTaskSeconds?: number;
}

/** An UpdateApp request: only what is set changes. */
export interface UpdateAppRequest {
  /** The app to change. */
  readonly appId: string;
  /** Its new name. */
  readonly name?: string;
  /** Its new scope ceiling (replaces the old one; tokens beyond it are revoked by the broker). */
  readonly scopeCeiling?: readonly string[];
  /** Its new audiences (replaces the old list). */
  readonly audiences?: readonly string[];
  /** Its new maximum token lifetime, in seconds. */
  readonly maxTtlSeconds?: number;
  /** Its new maximum delegation depth. */
  readonly maxDelegationDepth?: number;
  /** Its new rate limit, in requests per second. */
  readonly rateLimitPerSecond?: number;
  /** Its new rate-limit burst. */
  readonly rateLimitBurst?: number;
  /** Its new approval policy, replacing the old one (`[]` removes it); unchanged when unset. */
  readonly approvalPolicy?: readonly ApprovalRuleInput[];
  /** Its new task lifetime maximum, in seconds; lowering it revokes nothing, the next Renew uses it. */
  readonly maxTaskSeconds?: number;
}

/** A CreateResourceServer request. */
export interface CreateResourceServerRequest {
  /** A name for people. */
  readonly name: string;
  /** The audiences it serves. */
  readonly audiences: readonly string[];
}

/** A page request of a List call. */
export interface PageRequest {
  /** How many entries at most; the broker default when unset. */
  readonly pageSize?: number;
  /** The `nextPageToken` of the previous page; the first page when unset. */
  readonly pageToken?: string;
}

/** A ListAuditEvents query: filters combine with AND; an unset filter matches everything. */
export interface AuditEventFilter {
  /** Only this app's events. */
  readonly appId?: string;
  /** Only this task's events. */
  readonly taskId?: string;
  /** Only events about this agent (`sub`). */
  readonly agentId?: string;
  /** Only events for this human principal. */
  readonly humanPrincipal?: string;
  /** Only events about this token (`jti`). */
  readonly tokenId?: string;
  /** Only events of these kinds, e.g. `token.issued`. */
  readonly kinds?: readonly string[];
  /** Only events at or after this time. */
  readonly startTime?: Date;
  /** Only events before this time. */
  readonly endTime?: Date;
  /** Only events with a sequence number above this one (to follow the trail: the last `seq` seen). */
  readonly afterSeq?: number;
}

/** A new app and its secret (shown once). */
export interface CreatedApp {
  /** The app as stored. */
  readonly app: App;
  /** Its client credentials, ready for BrokerClient calls. Treat the secret as a secret. */
  readonly credentials: { readonly clientId: string; readonly clientSecret: string };
}

/** A new resource server and its secret (shown once). */
export interface CreatedResourceServer {
  /** The resource server as stored. */
  readonly resourceServer: ResourceServer;
  /**
   * Its credentials (`rs_...` id and secret): accepted wherever app
   * credentials are for Validate and StreamRevocations (BrokerClient.validate,
   * RevocationSubscriber).
   */
  readonly credentials: { readonly clientId: string; readonly clientSecret: string };
}

/** An UpdateApp result. */
export interface UpdatedApp {
  /** The app as stored after the change. */
  readonly app: App;
  /** How many live tokens the change revoked (scopes or audiences no longer allowed). */
  readonly revokedTokenCount: number;
}

/** The keys after a RotateSigningKey call. */
export interface RotatedSigningKeys {
  /** The key that signs from now on. */
  readonly active: SigningKey;
  /** The key published ahead of its turn. */
  readonly next: SigningKey | undefined;
}

function durationOf(value: number | undefined, name: string): Duration | undefined {
  const seconds = optionalNumber(value, name);
  if (seconds === undefined) return undefined;
  const whole = Math.trunc(seconds);
  return { seconds: whole, nanos: Math.round((seconds - whole) * 1e9) };
}

/** A uint32 or undefined; anything else (a fraction, a negative, a string) is a TypeError naming `name`. */
export function optionalUint32(value: unknown, name: string): number | undefined {
  const n = optionalNumber(value, name);
  if (n !== undefined && (!Number.isInteger(n) || n < 0 || n > 0xffffffff)) throw new TypeError(`${name} must be an integer from 0 to 4294967295, not ${n}`);
  return n;
}

/** The operator's `authorization` metadata; app credentials are refused here, since the broker would refuse them. */
function operatorMetadata(operator: OperatorCredentials): Metadata {
  requiredObject(operator, "operator");
  if (!("operatorToken" in operator)) throw new TypeError("operator must be { operatorToken }: the admin service takes only the operator credential");
  return callerMetadata(operator, "operator");
}

/**
 * A connection to a Baton broker's AdminService (operators only).
 *
 * @example
 * ```ts
 * const admin = new AdminClient("127.0.0.1:7443");
 * const op = { operatorToken: process.env.BATON_OPERATOR_TOKEN! };
 * const { credentials } = await admin.createApp(op, { name: "orchestrator", scopeCeiling: ["read:records:*"], audiences: ["ehr-api"] });
 * for await (const app of admin.allApps(op)) console.log(app.appId, app.name);
 * admin.close();
 * ```
 */
export class AdminClient {
  readonly #client: AdminServiceClient;
  readonly #timeoutMs: number;

  /**
   * Opens a channel to the broker at `address`, as {@link BrokerClient} does
   * (plaintext only on loopback unless `credentials` are given).
   *
   * @throws TypeError when `address` is not a loopback address and no `credentials` are given
   */
  constructor(address: string, options: BrokerClientOptions = {}) {
    const { creds, timeoutMs } = channelSettings(address, options);
    this.#timeoutMs = timeoutMs;
    this.#client = new AdminServiceClient(address, creds, options.channelOptions);
  }

  /** The generated client; calls on it get neither credentials, deadline nor BatonError conversion. */
  get stub(): AdminServiceClient {
    return this.#client;
  }

  /** Registers an app; resolves with it and its credentials (the secret is shown only here). */
  async createApp(operator: OperatorCredentials, request: CreateAppRequest, options?: CallOptions): Promise<CreatedApp> {
    requiredObject(request, "request");
    const req = {
      name: requiredString(request.name, "request.name"),
      scopeCeiling: stringList(request.scopeCeiling, "request.scopeCeiling"),
      audiences: stringList(request.audiences, "request.audiences"),
      maxTtl: durationOf(request.maxTtlSeconds, "request.maxTtlSeconds"),
      maxDelegationDepth: optionalUint32(request.maxDelegationDepth, "request.maxDelegationDepth") ?? 0,
      rateLimitPerSecond: optionalUint32(request.rateLimitPerSecond, "request.rateLimitPerSecond"),
      rateLimitBurst: optionalUint32(request.rateLimitBurst, "request.rateLimitBurst"),
      approvalPolicy: policyOf(request.approvalPolicy ?? [], "request.approvalPolicy"),
      maxTaskLifetime: durationOf(request.maxTaskSeconds, "request.maxTaskSeconds"),
    };
    const res = await this.#unary(this.#client.createApp, req, operatorMetadata(operator), options);
    const app = present(res.app, "app");
    return { app, credentials: { clientId: app.appId, clientSecret: res.clientSecret } };
  }

  /** One app, by id. */
  async getApp(operator: OperatorCredentials, appId: string, options?: CallOptions): Promise<App> {
    const req = { appId: requiredString(appId, "appId") };
    const res = await this.#unary(this.#client.getApp, req, operatorMetadata(operator), options);
    return present(res.app, "app");
  }

  /** One page of apps; `nextPageToken` is empty on the last. See {@link allApps} to walk every page. */
  async listApps(operator: OperatorCredentials, page: PageRequest = {}, options?: CallOptions): Promise<{ apps: App[]; nextPageToken: string }> {
    const res = await this.#unary(this.#client.listApps, pageOf(page), operatorMetadata(operator), options);
    return { apps: res.apps, nextPageToken: res.nextPageToken };
  }

  /** Every app, page after page (each page one call, made as the iteration reaches it). */
  async *allApps(operator: OperatorCredentials, page: Omit<PageRequest, "pageToken"> = {}, options?: CallOptions): AsyncGenerator<App> {
    yield* paginate((pageToken) => this.listApps(operator, { ...page, pageToken }, options).then((r) => ({ items: r.apps, next: r.nextPageToken })));
  }

  /** Changes an app; only the fields set in `request` change. */
  async updateApp(operator: OperatorCredentials, request: UpdateAppRequest, options?: CallOptions): Promise<UpdatedApp> {
    requiredObject(request, "request");
    const name = request.name === undefined ? undefined : requiredString(request.name, "request.name");
    const req = {
      appId: requiredString(request.appId, "request.appId"),
      name,
      updateScopeCeiling: request.scopeCeiling !== undefined,
      scopeCeiling: optionalStringList(request.scopeCeiling, "request.scopeCeiling"),
      updateAudiences: request.audiences !== undefined,
      audiences: optionalStringList(request.audiences, "request.audiences"),
      maxTtl: durationOf(request.maxTtlSeconds, "request.maxTtlSeconds"),
      maxDelegationDepth: optionalUint32(request.maxDelegationDepth, "request.maxDelegationDepth"),
      rateLimitPerSecond: optionalUint32(request.rateLimitPerSecond, "request.rateLimitPerSecond"),
      rateLimitBurst: optionalUint32(request.rateLimitBurst, "request.rateLimitBurst"),
      updateApprovalPolicy: request.approvalPolicy !== undefined,
      approvalPolicy: policyOf(request.approvalPolicy ?? [], "request.approvalPolicy"),
      maxTaskLifetime: durationOf(request.maxTaskSeconds, "request.maxTaskSeconds"),
    };
    const res = await this.#unary(this.#client.updateApp, req, operatorMetadata(operator), options);
    return { app: present(res.app, "app"), revokedTokenCount: res.revokedTokenCount };
  }

  /** Disables an app: its credentials stop working and its tokens are revoked. */
  async disableApp(operator: OperatorCredentials, appId: string, options?: CallOptions & { readonly reason?: string }): Promise<App> {
    const req = { appId: requiredString(appId, "appId"), reason: optionalString(options?.reason, "options.reason") };
    const res = await this.#unary(this.#client.disableApp, req, operatorMetadata(operator), options);
    return present(res.app, "app");
  }

  /** Gives an app a new secret (the old one stops working); resolves with the new secret. */
  async rotateAppSecret(operator: OperatorCredentials, appId: string, options?: CallOptions): Promise<string> {
    const req = { appId: requiredString(appId, "appId") };
    const res = await this.#unary(this.#client.rotateAppSecret, req, operatorMetadata(operator), options);
    return res.clientSecret;
  }

  /** Registers a resource server; resolves with it and its credentials (the secret is shown only here). */
  async createResourceServer(operator: OperatorCredentials, request: CreateResourceServerRequest, options?: CallOptions): Promise<CreatedResourceServer> {
    requiredObject(request, "request");
    const req = { name: requiredString(request.name, "request.name"), audiences: stringList(request.audiences, "request.audiences") };
    const res = await this.#unary(this.#client.createResourceServer, req, operatorMetadata(operator), options);
    const rs = present(res.resourceServer, "resource server");
    return { resourceServer: rs, credentials: { clientId: rs.resourceServerId, clientSecret: res.clientSecret } };
  }

  /** One page of resource servers; `nextPageToken` is empty on the last. See {@link allResourceServers}. */
  async listResourceServers(
    operator: OperatorCredentials,
    page: PageRequest = {},
    options?: CallOptions,
  ): Promise<{ resourceServers: ResourceServer[]; nextPageToken: string }> {
    const res = await this.#unary(this.#client.listResourceServers, pageOf(page), operatorMetadata(operator), options);
    return { resourceServers: res.resourceServers, nextPageToken: res.nextPageToken };
  }

  /** Every resource server, page after page. */
  async *allResourceServers(operator: OperatorCredentials, page: Omit<PageRequest, "pageToken"> = {}, options?: CallOptions): AsyncGenerator<ResourceServer> {
    yield* paginate((pageToken) =>
      this.listResourceServers(operator, { ...page, pageToken }, options).then((r) => ({ items: r.resourceServers, next: r.nextPageToken })),
    );
  }

  /** Disables a resource server: its credentials stop working and its revocation streams end. */
  async disableResourceServer(operator: OperatorCredentials, resourceServerId: string, options?: CallOptions & { readonly reason?: string }): Promise<ResourceServer> {
    const req = { resourceServerId: requiredString(resourceServerId, "resourceServerId"), reason: optionalString(options?.reason, "options.reason") };
    const res = await this.#unary(this.#client.disableResourceServer, req, operatorMetadata(operator), options);
    return present(res.resourceServer, "resource server");
  }

  /** The broker's signing keys (next, active and retired). */
  async listSigningKeys(operator: OperatorCredentials, options?: CallOptions): Promise<SigningKey[]> {
    const res = await this.#unary(this.#client.listSigningKeys, {}, operatorMetadata(operator), options);
    return res.keys;
  }

  /** Rotates the signing key: the next key becomes active and a new next key is made. */
  async rotateSigningKey(operator: OperatorCredentials, options?: CallOptions): Promise<RotatedSigningKeys> {
    const res = await this.#unary(this.#client.rotateSigningKey, {}, operatorMetadata(operator), options);
    return { active: present(res.active, "active key"), next: res.next };
  }

  /** Checks the audit log's hash chain; `intact` false names the first broken event. */
  async verifyAuditLog(operator: OperatorCredentials, options?: CallOptions): Promise<VerifyAuditLogResponse> {
    return this.#unary(this.#client.verifyAuditLog, {}, operatorMetadata(operator), options);
  }

  // ---- Approvers (issue 8) ----

  /** Registers a named human approver in 1 to 16 groups; resolves with it and its credentials (the secret is shown only here). */
  async createApprover(operator: OperatorCredentials, request: CreateApproverRequest, options?: CallOptions): Promise<CreatedApprover> {
    requiredObject(request, "request");
    const req = { name: requiredString(request.name, "request.name"), groups: stringList(request.groups, "request.groups") };
    const res = await this.#unary(this.#client.createApprover, req, operatorMetadata(operator), options);
    const approver = present(res.approver, "approver");
    return { approver, credentials: { clientId: approver.approverId, clientSecret: res.clientSecret } };
  }

  /** One page of approvers, by id; `nextPageToken` is empty on the last. See {@link allApprovers}. */
  async listApprovers(operator: OperatorCredentials, page: PageRequest = {}, options?: CallOptions): Promise<{ approvers: Approver[]; nextPageToken: string }> {
    const res = await this.#unary(this.#client.listApprovers, pageOf(page), operatorMetadata(operator), options);
    return { approvers: res.approvers, nextPageToken: res.nextPageToken };
  }

  /** Every approver, page after page. */
  async *allApprovers(operator: OperatorCredentials, page: Omit<PageRequest, "pageToken"> = {}, options?: CallOptions): AsyncGenerator<Approver> {
    yield* paginate((pageToken) => this.listApprovers(operator, { ...page, pageToken }, options).then((r) => ({ items: r.approvers, next: r.nextPageToken })));
  }

  /** Disables an approver: it can no longer authenticate, and its decisions on approvals still pending are withdrawn. */
  async disableApprover(operator: OperatorCredentials, approverId: string, options?: CallOptions & { readonly reason?: string }): Promise<Approver> {
    const req = { approverId: requiredString(approverId, "approverId"), reason: optionalString(options?.reason, "options.reason") };
    const res = await this.#unary(this.#client.disableApprover, req, operatorMetadata(operator), options);
    return present(res.approver, "approver");
  }

  /**
   * One page of audit events, oldest first; `nextPageToken` is empty on the
   * last. A page token continues only the query it came from (the same
   * filters). See {@link allAuditEvents} to walk every page.
   */
  async listAuditEvents(
    operator: OperatorCredentials,
    filter: AuditEventFilter = {},
    page: PageRequest = {},
    options?: CallOptions,
  ): Promise<{ events: AuditEvent[]; nextPageToken: string }> {
    const req = { ...auditFilterOf(filter), ...pageOf(page) };
    const res = await this.#unary(this.#client.listAuditEvents, req, operatorMetadata(operator), options);
    return { events: res.events, nextPageToken: res.nextPageToken };
  }

  /** Every audit event matching `filter`, oldest first, page after page. */
  async *allAuditEvents(
    operator: OperatorCredentials,
    filter: AuditEventFilter = {},
    page: Omit<PageRequest, "pageToken"> = {},
    options?: CallOptions,
  ): AsyncGenerator<AuditEvent> {
    yield* paginate((pageToken) =>
      this.listAuditEvents(operator, filter, { ...page, pageToken }, options).then((r) => ({ items: r.events, next: r.nextPageToken })),
    );
  }

  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void {
    this.#client.close();
  }

  #unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, metadata: Metadata, options?: CallOptions): Promise<Res> {
    return unaryCall(this.#client, this.#timeoutMs, method, request, metadata, options);
  }
}

// ---- Approval policy and approvers (issue 8) ----

/** The scope classes by name, for {@link ApprovalRuleInput.scopeClass}. */
export type ScopeClassName = "read" | "write" | "dangerous_write";

const SCOPE_CLASSES: Record<ScopeClassName, ScopeClass> = {
  read: ScopeClass.SCOPE_CLASS_READ,
  write: ScopeClass.SCOPE_CLASS_WRITE,
  dangerous_write: ScopeClass.SCOPE_CLASS_DANGEROUS_WRITE,
};

/** One rule of an app's approval policy (the broker checks the rules as a whole). */
export interface ApprovalRuleInput {
  /** A scope pattern, for example `write:prescriptions:*`. */
  readonly pattern: string;
  /** The class of the scopes it covers: a ScopeClass or its name. */
  readonly scopeClass: ScopeClass | ScopeClassName;
  /** How many distinct approvers must approve: 0 for read; 0 or 1 for write; 1 or 2 for dangerous write. */
  readonly approvalsRequired?: number;
  /** The approver group whose members may decide; required when `approvalsRequired` is above 0. */
  readonly approverGroup?: string;
}

/** A CreateApprover request. */
export interface CreateApproverRequest {
  /** A unique name, for example `dr-smith`. */
  readonly name: string;
  /** Its approver groups (1 to 16), for example `["clinical-leads"]`. */
  readonly groups: readonly string[];
}

/** A new approver and its secret (shown once). */
export interface CreatedApprover {
  /** The approver as stored. */
  readonly approver: Approver;
  /** Its credentials (`apv_...` id and secret), for ApprovalClient calls. Treat the secret as a secret. */
  readonly credentials: { readonly clientId: string; readonly clientSecret: string };
}

function policyOf(value: unknown, name: string): ApprovalRule[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of rules, not ${value === null ? "null" : typeof value}`);
  return value.map((rule: unknown, i) => {
    const at = `${name}[${i}]`;
    requiredObject(rule, at);
    const r = rule as ApprovalRuleInput;
    const named = r.scopeClass;
    const scopeClass =
      typeof named === "string" && Object.hasOwn(SCOPE_CLASSES, named)
        ? SCOPE_CLASSES[named]
        : typeof named === "number" && Object.values(SCOPE_CLASSES).includes(named)
          ? named
          : undefined;
    if (scopeClass === undefined) throw new TypeError(`${at}.scopeClass: unknown scope class: ${typeof named === "string" ? named.slice(0, 32) : typeof named}`);
    return {
      pattern: requiredString(r.pattern, `${at}.pattern`),
      scopeClass,
      approvalsRequired: optionalUint32(r.approvalsRequired, `${at}.approvalsRequired`) ?? 0,
      approverGroup: optionalString(r.approverGroup, `${at}.approverGroup`),
    };
  });
}

function pageOf(page: PageRequest): { pageSize: number; pageToken: string } {
  requiredObject(page, "page");
  return { pageSize: optionalUint32(page.pageSize, "page.pageSize") ?? 0, pageToken: optionalString(page.pageToken, "page.pageToken") };
}

function optionalDate(value: unknown, name: string): Date | undefined {
  if (value === undefined || (value instanceof Date && !Number.isNaN(value.getTime()))) return value;
  throw new TypeError(`${name} must be a valid Date`);
}

function auditFilterOf(filter: AuditEventFilter) {
  requiredObject(filter, "filter");
  const afterSeq = optionalNumber(filter.afterSeq, "filter.afterSeq") ?? 0;
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0) throw new TypeError(`filter.afterSeq must be a whole number from 0, not ${afterSeq}`);
  return {
    appId: optionalString(filter.appId, "filter.appId"),
    taskId: optionalString(filter.taskId, "filter.taskId"),
    agentId: optionalString(filter.agentId, "filter.agentId"),
    humanPrincipal: optionalString(filter.humanPrincipal, "filter.humanPrincipal"),
    tokenId: optionalString(filter.tokenId, "filter.tokenId"),
    kinds: optionalStringList(filter.kinds, "filter.kinds"),
    startTime: optionalDate(filter.startTime, "filter.startTime"),
    endTime: optionalDate(filter.endTime, "filter.endTime"),
    afterSeq,
  };
}

/** The most pages a walk follows: a broker handing back its own token forever must not loop the caller forever. */
const MAX_PAGES = 100_000;

export async function* paginate<T>(fetch: (pageToken: string) => Promise<{ items: T[]; next: string }>): AsyncGenerator<T> {
  let token = "";
  for (let pages = 0; pages < MAX_PAGES; pages++) {
    const { items, next } = await fetch(token);
    yield* items;
    if (next === "") return;
    if (next === token) throw new BatonError(status.INTERNAL, "the broker returned the same page token twice");
    token = next;
  }
  throw new BatonError(status.INTERNAL, `more than ${MAX_PAGES} pages`);
}
