// The broker's use cases: issue, validate, revoke. Combines the domain rules,
// the store and the signer; knows nothing of gRPC.

import {
  AppDisabledError,
  AudienceNotAllowedError,
  BatonError,
  DelegationDepthExceededError,
  ParentExpiredError,
  ProofReplayedError,
  ProofRequiredError,
  InvalidRequestError,
  NotFoundError,
  NotPermittedError,
  ScopeNotCoveredError,
  TokenInvalidError,
  UnavailableError,
} from "../domain/errors.js";
import { decideTtl } from "../domain/lifetimes.js";
import {
  excessAudiences,
  MAX_HUMAN_LENGTH,
  MAX_REASON_LENGTH,
  optionalTaskId,
  optionalText,
  requireAudiences,
  requireScopes,
  requireTaskId,
} from "../domain/limits.js";
import type { Revocation, RevocationTarget } from "../domain/revocations.js";
import { uncoveredScopes } from "../domain/scopes.js";
import { agentIdFor, type TokenClaims, type TokenStatus } from "../domain/tokens.js";
import { parseAgentKey } from "../crypto/agent-keys.js";
import { randomId } from "../crypto/secrets.js";
import { signToken, verifyToken } from "../crypto/tokens.js";
import { verifyProof } from "../crypto/proofs.js";
import { type ProofUse, useProofs } from "../storage/proofs.js";
import { Batcher } from "./batcher.js";
import { createHash } from "node:crypto";
import type { AppRecord } from "../storage/apps.js";
import { getApp } from "../storage/apps.js";
import { appendAudit, type AuditEvent } from "../storage/audit.js";
import type { Db, Queryable } from "../storage/db.js";
import { withTransaction } from "../storage/db.js";
import { agentGrantSpan, getGrant } from "../storage/grants.js";
import { GrantWriter } from "./grant-writer.js";
import type { KeyManager } from "./keys.js";
import { actorOf, type Authenticator, type Principal } from "./principals.js";
import type { RevocationState } from "./revocation-state.js";
import { insertRevocation } from "../storage/revocations.js";

export interface BrokerSettings {
  readonly issuer: string;
  readonly trustDomain: string;
  readonly defaultTtlSeconds: number;
  readonly leewayMs: number;
  readonly operatorTokenHash: Buffer;
  readonly now: () => number;
}

export interface IssueInput {
  readonly taskId: string;
  readonly orchestrationId: string;
  readonly humanPrincipal: string;
  readonly scopes: readonly string[];
  readonly audiences: readonly string[];
  /** null when unset. */
  readonly ttlSeconds: number | null;
  readonly allowTtlClamp: boolean;
  readonly agentPublicKeyJwk: string;
}

export interface DelegateInput {
  readonly scopes: readonly string[];
  /** Empty: the parent's audiences. */
  readonly audiences: readonly string[];
  readonly ttlSeconds: number | null;
  readonly allowTtlClamp: boolean;
  readonly agentPublicKeyJwk: string;
}

export interface IssuedToken {
  readonly token: string;
  readonly claims: TokenClaims;
  readonly ttlClamped: boolean;
}

export interface ValidateInput {
  readonly token: string;
  readonly audience: string;
  readonly requiredScopes: readonly string[];
}

export interface Verdict {
  readonly status: TokenStatus;
  readonly claims: TokenClaims | null;
}

export interface RevokeInput {
  readonly target: RevocationTarget | null;
  readonly id: string;
  readonly appId: string;
  readonly reason: string;
}

export interface RequestContext {
  readonly requestId: string;
}

const APP_CACHE_MS = 2000;
/** Proofs are accepted within the leeway, and never less than this, of their iat. */
const PROOF_MIN_WINDOW_MS = 5_000;

export class Broker implements Authenticator {
  private readonly writer: GrantWriter;
  /** Proof ids, recorded once each across replicas, in group commits. */
  private readonly proofLedger: Batcher<ProofUse, boolean>;
  private readonly appCache = new Map<string, { app: AppRecord; at: number }>();
  readonly operatorTokenHash: Buffer;

  constructor(
    private readonly db: Db,
    private readonly keys: KeyManager,
    private readonly revocations: RevocationState,
    private readonly settings: BrokerSettings,
  ) {
    this.writer = new GrantWriter(db);
    this.proofLedger = new Batcher((uses) => useProofs(db, uses));
    this.operatorTokenHash = settings.operatorTokenHash;
  }

  /**
   * Apps are cached for APP_CACHE_MS: authentication would otherwise cost a
   * query per call. A change made here is seen at once (`forgetApp`); one made
   * on another replica within APP_CACHE_MS. Issuance does not depend on the
   * cache: the grant insert re-checks the app and its secret at commit.
   */
  async findApp(appId: string): Promise<AppRecord | null> {
    const hit = this.appCache.get(appId);
    const now = Date.now();
    if (hit && now - hit.at < APP_CACHE_MS) return hit.app;
    const app = await getApp(this.db, appId);
    // Unknown ids are not cached: a caller could fill memory with them.
    if (app) this.appCache.set(appId, { app, at: now });
    else this.appCache.delete(appId);
    return app;
  }

  forgetApp(appId: string): void {
    this.appCache.delete(appId);
  }

  /**
   * Verifies a token presented as the caller's own credential, and its proof
   * of possession (made for `method`) when the token is key-bound.
   */
  async verifyAgentToken(token: string, proof: string | null, method: string): Promise<TokenClaims> {
    const v = await this.check(token);
    if (v.status !== "VALID" || !v.claims) {
      throw new TokenInvalidError(v.status);
    }
    if (v.claims.keyThumbprint !== null) {
      if (proof === null) throw new ProofRequiredError();
      const nowMs = this.settings.now();
      const windowMs = Math.max(this.settings.leewayMs, PROOF_MIN_WINDOW_MS);
      const p = await verifyProof(proof, { method, token, thumbprint: v.claims.keyThumbprint, nowMs, windowMs });
      // Once only, across replicas: the id is kept until the proof is stale.
      const jtiHash = createHash("sha256").update(`${v.claims.keyThumbprint}\u0000${p.jti}`).digest();
      if (!(await this.proofLedger.submit({ jtiHash, expireTime: new Date(p.issuedAtMs + windowMs) }))) throw new ProofReplayedError();
    }
    return v.claims;
  }

  // ---- Issue -------------------------------------------------------------

  async issue(caller: Principal, input: IssueInput, ctx: RequestContext): Promise<IssuedToken> {
    if (caller.kind !== "app") throw new NotPermittedError("only an app may issue tokens");
    const app = caller.app;
    try {
      return await this.issueFor(app, input, ctx);
    } catch (err) {
      if (err instanceof BatonError) await this.auditRefusal("issue.refused", app.appId, caller, err, ctx);
      throw err;
    }
  }

  private async issueFor(app: AppRecord, input: IssueInput, ctx: RequestContext): Promise<IssuedToken> {
    const taskId = requireTaskId("task_id", input.taskId);
    const orchestrationId = optionalTaskId("orchestration_id", input.orchestrationId);
    const humanPrincipal = optionalText("human_principal", input.humanPrincipal, MAX_HUMAN_LENGTH);
    const scopes = requireScopes("scopes", input.scopes);
    const audiences = requireAudiences("audiences", input.audiences);
    const agentKey = input.agentPublicKeyJwk === "" ? null : await parseAgentKey(input.agentPublicKeyJwk);

    const excess = uncoveredScopes(app.scopeCeiling, scopes);
    if (excess.length > 0) throw new ScopeNotCoveredError(excess, "ceiling");
    const badAudiences = excessAudiences(app.audiences, audiences);
    if (badAudiences.length > 0) throw new AudienceNotAllowedError(badAudiences, "ceiling");
    const ttl = decideTtl({
      requestedSeconds: input.ttlSeconds,
      allowClamp: input.allowTtlClamp,
      defaultSeconds: this.settings.defaultTtlSeconds,
      maximumSeconds: app.maxTtlSeconds,
      rule: "app_maximum",
    });

    const nowMs = this.settings.now();
    const tokenId = randomId();
    return this.mint(
      {
        tokenId,
        agentId: agentIdFor(this.settings.trustDomain, app.appId, taskId, randomId()),
        appId: app.appId,
        taskId,
        orchestrationId,
        humanPrincipal,
        scopes,
        audiences,
        issuer: this.settings.issuer,
        issuedAtMs: nowMs,
        notBeforeMs: Math.floor(nowMs / 1000) * 1000,
        expiresAtMs: Math.floor(nowMs / 1000) * 1000 + ttl.seconds * 1000,
        lineage: [],
        rootIssuedAtMs: nowMs,
        keyThumbprint: agentKey?.thumbprint ?? null,
      },
      { kind: "token.issued", actor: `app:${app.appId}`, ttlClamped: ttl.clamped, appVersion: app.updateTime },
      ctx,
    );
  }

  // ---- Delegate ----------------------------------------------------------

  async delegate(caller: Principal, input: DelegateInput, ctx: RequestContext): Promise<IssuedToken> {
    if (caller.kind !== "agent") throw new NotPermittedError("only an agent may delegate, with its own token");
    const parent = caller.claims;
    try {
      return await this.delegateFrom(parent, input, ctx);
    } catch (err) {
      if (err instanceof BatonError) {
        const lineage = [...parent.lineage, { tokenId: parent.tokenId, agentId: parent.agentId }];
        await this.auditRefusal("delegation.refused", parent.appId, caller, err, ctx, {
          lineage: lineage.map((e) => ({ token_id: e.tokenId, agent_id: e.agentId })),
        });
      }
      throw err;
    }
  }

  private async delegateFrom(parent: TokenClaims, input: DelegateInput, ctx: RequestContext): Promise<IssuedToken> {
    const scopes = requireScopes("scopes", input.scopes);
    const audiences = input.audiences.length === 0 ? [...parent.audiences] : requireAudiences("audiences", input.audiences);
    const agentKey = input.agentPublicKeyJwk === "" ? null : await parseAgentKey(input.agentPublicKeyJwk);
    const app = await this.findApp(parent.appId);
    if (!app) throw new NotPermittedError("the token's app no longer exists");
    if (app.disabled) throw new AppDisabledError();
    const depth = parent.lineage.length + 1;
    if (depth > app.maxDelegationDepth) throw new DelegationDepthExceededError(depth, app.maxDelegationDepth);
    // Wildcards included: `read:*:x` is not covered by `read:data:x`.
    const excess = uncoveredScopes(parent.scopes, scopes);
    if (excess.length > 0) throw new ScopeNotCoveredError(excess, "parent");
    const badAudiences = excessAudiences(parent.audiences, audiences);
    if (badAudiences.length > 0) throw new AudienceNotAllowedError(badAudiences, "parent");
    const nowMs = this.settings.now();
    const start = Math.floor(nowMs / 1000) * 1000;
    // Whole seconds left: the child's exp can never pass the parent's.
    const remaining = Math.floor((parent.expiresAtMs - start) / 1000);
    if (remaining < 1) throw new ParentExpiredError();
    const ttl = decideTtl({
      requestedSeconds: input.ttlSeconds,
      allowClamp: input.allowTtlClamp,
      defaultSeconds: this.settings.defaultTtlSeconds,
      maximumSeconds: remaining,
      rule: "parent_remaining",
    });
    return this.mint(
      {
        tokenId: randomId(),
        agentId: agentIdFor(this.settings.trustDomain, parent.appId, parent.taskId, randomId()),
        appId: parent.appId,
        taskId: parent.taskId,
        orchestrationId: parent.orchestrationId,
        humanPrincipal: parent.humanPrincipal,
        scopes,
        audiences,
        issuer: this.settings.issuer,
        issuedAtMs: nowMs,
        notBeforeMs: start,
        expiresAtMs: start + ttl.seconds * 1000,
        lineage: [...parent.lineage, { tokenId: parent.tokenId, agentId: parent.agentId }],
        rootIssuedAtMs: parent.rootIssuedAtMs,
        keyThumbprint: agentKey?.thumbprint ?? null,
      },
      { kind: "token.delegated", actor: `agent:${parent.agentId}`, ttlClamped: ttl.clamped, appVersion: null },
      ctx,
    );
  }

  /** Signs the token, then stores its grant and audit event before returning it. */
  private async mint(
    claims: TokenClaims,
    how: { kind: string; actor: string; ttlClamped: boolean; appVersion: Date | null },
    ctx: RequestContext,
  ): Promise<IssuedToken> {
    const key = this.keys.ring.active;
    const token = await signToken(claims, key);
    const parent = claims.lineage.at(-1);
    const stored = await this.writer.write(
      {
        tokenId: claims.tokenId,
        appId: claims.appId,
        agentId: claims.agentId,
        taskId: claims.taskId,
        orchestrationId: claims.orchestrationId,
        humanPrincipal: claims.humanPrincipal,
        parentTokenId: parent?.tokenId ?? null,
        rootTokenId: claims.lineage[0]?.tokenId ?? claims.tokenId,
        depth: claims.lineage.length,
        scopes: claims.scopes,
        audiences: claims.audiences,
        keyThumbprint: claims.keyThumbprint,
        keyId: key.stored.keyId,
        issueTime: new Date(claims.issuedAtMs),
        expireTime: new Date(claims.expiresAtMs),
      },
      {
        kind: how.kind,
        time: new Date(claims.issuedAtMs),
        appId: claims.appId,
        requestId: ctx.requestId,
        actor: how.actor,
        data: {
          token_id: claims.tokenId,
          agent_id: claims.agentId,
          task_id: claims.taskId,
          orchestration_id: claims.orchestrationId,
          human: claims.humanPrincipal,
          lineage: claims.lineage.map((e) => ({ token_id: e.tokenId, agent_id: e.agentId })),
          scopes: claims.scopes,
          audiences: claims.audiences,
          expire_time: new Date(claims.expiresAtMs).toISOString(),
          key_bound: claims.keyThumbprint !== null,
          ttl_clamped: how.ttlClamped,
        },
      },
      how.appVersion,
    );
    // The app was disabled, narrowed or its secret rotated while this request ran.
    if (!stored) throw new UnavailableError("the app's settings changed during this request; retry");
    return { token, claims, ttlClamped: how.ttlClamped };
  }

  // ---- Validate ----------------------------------------------------------

  async validate(caller: Principal, input: ValidateInput): Promise<Verdict> {
    if (caller.kind === "agent") throw new NotPermittedError("validate needs app or operator credentials");
    if (input.audience === "") throw new InvalidRequestError("audience", "the audience you validate for is required");
    requireAudiences("audience", [input.audience]);
    const required = input.requiredScopes.length > 0 ? requireScopes("required_scopes", input.requiredScopes) : [];
    const v = await this.check(input.token);
    if (v.status !== "VALID" || !v.claims) return v;
    if (!v.claims.audiences.includes(input.audience)) return { status: "WRONG_AUDIENCE", claims: v.claims };
    if (required.length > 0 && uncoveredScopes(v.claims.scopes, required).length > 0) {
      return { status: "INSUFFICIENT_SCOPE", claims: v.claims };
    }
    return v;
  }

  /** Signature, issuer, lifetime and revocation. */
  private async check(token: string): Promise<Verdict> {
    const opts = { issuer: this.settings.issuer, nowMs: this.settings.now(), leewayMs: this.settings.leewayMs };
    let v = await verifyToken(token, this.keys.ring, opts);
    if (v.status === "UNKNOWN_KEY") {
      // A key published by another replica since our last load.
      v = await verifyToken(token, await this.keys.reloadIfStale(), opts);
    }
    if (v.status !== "VALID") return v;
    if (this.revocations.isRevoked(v.claims)) return { status: "REVOKED", claims: v.claims };
    return v;
  }

  // ---- Revoke ------------------------------------------------------------

  async revoke(caller: Principal, input: RevokeInput, ctx: RequestContext): Promise<Revocation> {
    if (input.target === null) throw new InvalidRequestError("target", "a revocation target is required");
    const reason = optionalText("reason", input.reason, MAX_REASON_LENGTH);
    const nowMs = this.settings.now();
    const r = await this.resolveTarget(caller, input, nowMs);
    const stored = await withTransaction(this.db, async (tx) => {
      const rev = await insertRevocation(tx, r, reason);
      await appendAudit(tx, [
        {
          kind: "revocation.created",
          time: new Date(nowMs),
          appId: r.appId,
          requestId: ctx.requestId,
          actor: actorOf(caller),
          data: { target: r.target, id: r.id, reason, cursor: rev.cursor.toString() },
        },
      ]);
      return rev;
    });
    this.revocations.add(stored);
    return stored;
  }

  /** Checks the caller may revoke the target and works out what it kills and until when. */
  private async resolveTarget(caller: Principal, input: RevokeInput, nowMs: number): Promise<Omit<Revocation, "cursor">> {
    const leeway = this.settings.leewayMs;
    const target = input.target!;
    if (caller.kind === "agent") {
      // An agent may only release its own token.
      if (target !== "token" || (input.id !== "" && input.id !== caller.claims.tokenId)) {
        throw new NotPermittedError("an agent may only release its own token");
      }
      const c = caller.claims;
      return { target: "token", id: c.tokenId, appId: c.appId, revokedAtMs: nowMs, expiresAtMs: c.expiresAtMs + leeway };
    }
    const ownApp = caller.kind === "app" ? caller.app.appId : null;
    const mayTouch = (appId: string): void => {
      if (ownApp !== null && appId !== ownApp) throw new NotFoundError(target);
    };
    if (input.id === "") throw new InvalidRequestError("id", "the id of what to revoke is required");
    if (input.id.length > 512) throw new InvalidRequestError("id", "must be at most 512 characters");
    switch (target) {
      case "token":
      case "chain": {
        const g = await getGrant(this.db, input.id);
        if (!g) throw new NotFoundError("token");
        mayTouch(g.appId);
        if (target === "token") {
          return { target, id: g.tokenId, appId: g.appId, revokedAtMs: nowMs, expiresAtMs: g.expireTime.getTime() + leeway };
        }
        // A chain is stored as its root; nothing below the root outlives it.
        const root = g.rootTokenId === g.tokenId ? g : await getGrant(this.db, g.rootTokenId);
        if (!root) throw new NotFoundError("token");
        return { target, id: root.tokenId, appId: g.appId, revokedAtMs: nowMs, expiresAtMs: root.expireTime.getTime() + leeway };
      }
      case "agent": {
        const span = await agentGrantSpan(this.db, input.id);
        if (!span) throw new NotFoundError("agent");
        mayTouch(span.appId);
        return { target, id: input.id, appId: span.appId, revokedAtMs: nowMs, expiresAtMs: span.expireTime.getTime() + leeway };
      }
      case "task": {
        const appId = input.appId || ownApp;
        if (!appId) throw new InvalidRequestError("app_id", "the app the task belongs to is required");
        requireTaskId("id", input.id);
        const app = await this.appOf(this.db, appId, target);
        mayTouch(app.appId);
        return { target, id: input.id, appId: app.appId, revokedAtMs: nowMs, expiresAtMs: nowMs + app.maxTtlSeconds * 1000 + leeway };
      }
      case "app": {
        const app = await this.appOf(this.db, input.id, target);
        mayTouch(app.appId);
        return { target, id: app.appId, appId: app.appId, revokedAtMs: nowMs, expiresAtMs: nowMs + app.maxTtlSeconds * 1000 + leeway };
      }
    }
  }

  private async appOf(db: Queryable, appId: string, kind: string): Promise<AppRecord> {
    const app = /^app_[0-9A-Za-z]{22}$/.test(appId) ? await getApp(db, appId) : null;
    if (!app) throw new NotFoundError(kind === "app" ? "app" : "app of the task");
    return app;
  }

  // ---- Audit of refusals --------------------------------------------------

  private async auditRefusal(
    kind: string,
    appId: string,
    caller: Principal,
    err: BatonError,
    ctx: RequestContext,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const event: AuditEvent = {
      kind,
      time: new Date(this.settings.now()),
      appId,
      requestId: ctx.requestId,
      actor: actorOf(caller),
      // Only the refusal's own details: never the request's free text.
      data: { reason: err.reason, details: err.details, ...extra },
    };
    await withTransaction(this.db, (tx) => appendAudit(tx, [event]));
  }
}

