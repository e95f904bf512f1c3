// Operator use cases for apps. Every change is audited in its own
// transaction. Narrowing an app revokes what no longer fits; disabling it
// revokes everything it issued.

import { type ApprovalRule, requirePolicy } from "../domain/approvals.js";
import { AlreadyExistsError, InvalidRequestError, NotFoundError } from "../domain/errors.js";
import { excessAudiences, requireAppName, requireAudiences, requireScopes } from "../domain/limits.js";
import type { Revocation } from "../domain/revocations.js";
import { uncoveredScopes } from "../domain/scopes.js";
import { APP_ID, hashSecret, newAppId, newClientSecret } from "../crypto/secrets.js";
import { type AppRecord, getApp, insertApp, listApps, updateApp } from "../storage/apps.js";
import { appendAudit } from "../storage/audit.js";
import type { Db, Tx } from "../storage/db.js";
import { withTransaction } from "../storage/db.js";
import { liveGrantsOfApp } from "../storage/grants.js";
import { insertRevocation } from "../storage/revocations.js";
import { pageOf, pageRequest } from "./paging.js";
import type { RevocationState } from "./revocation-state.js";

export const MAX_APP_TTL_SECONDS = 24 * 3600;
export const DEFAULT_APP_TTL_SECONDS = 3600;
export const DEFAULT_DELEGATION_DEPTH = 5;
export const MAX_DELEGATION_DEPTH = 16;

export interface CreateAppInput {
  readonly name: string;
  readonly scopeCeiling: readonly string[];
  readonly audiences: readonly string[];
  /** null: the default. */
  readonly maxTtlSeconds: number | null;
  /** 0: the default. */
  readonly maxDelegationDepth: number;
  /** 0: the broker's default rate limit. */
  readonly ratePerSecond: number;
  /** 0: the broker's default burst. */
  readonly rateBurst: number;
  /** Unchecked rules; empty: nothing needs approval. */
  readonly approvalPolicy: readonly ApprovalRule[];
  /** null: the broker's default task lifetime maximum. */
  readonly maxTaskSeconds?: number | null;
}

export interface UpdateAppInput {
  readonly appId: string;
  readonly name: string | null;
  readonly scopeCeiling: readonly string[] | null;
  readonly audiences: readonly string[] | null;
  readonly maxTtlSeconds: number | null;
  readonly maxDelegationDepth: number | null;
  /** 0: back to the broker's default. */
  readonly ratePerSecond: number | null;
  readonly rateBurst: number | null;
  /** null: unchanged; empty: no approvals. Pending approvals keep the rule they were created under. */
  readonly approvalPolicy: readonly ApprovalRule[] | null;
  /** null: unchanged. */
  readonly maxTaskSeconds?: number | null;
}

function checkTtl(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_APP_TTL_SECONDS) {
    throw new InvalidRequestError("max_ttl", `must be a whole number of seconds from 1 to ${MAX_APP_TTL_SECONDS}`);
  }
  return seconds;
}

function checkDepth(depth: number): number {
  if (!Number.isInteger(depth) || depth < 0 || depth > MAX_DELEGATION_DEPTH) {
    throw new InvalidRequestError("max_delegation_depth", `must be from 0 to ${MAX_DELEGATION_DEPTH}`);
  }
  return depth;
}

/** The longest task lifetime maximum an app may set: 30 days. */
export const MAX_TASK_SECONDS = 30 * 86_400;

/**
 * Whole seconds from 1 to 30 days. Lowering it revokes nothing: tokens keep
 * the expiry they were minted with, and the next Renew uses the new value.
 */
function checkTaskSeconds(seconds: number): number {
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_TASK_SECONDS) {
    throw new InvalidRequestError("max_task_lifetime", `must be a whole number of seconds from 1 to ${MAX_TASK_SECONDS}`);
  }
  return seconds;
}

export const MAX_APP_RATE = 1_000_000;

function checkRate(field: string, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_APP_RATE) throw new InvalidRequestError(field, `must be from 0 (the broker's default) to ${MAX_APP_RATE}`);
  return n;
}

/** A policy as audit data. */
const policyData = (p: readonly ApprovalRule[]): unknown[] =>
  p.map((r) => ({ pattern: r.pattern, scope_class: r.scopeClass, approvals_required: r.approvalsRequired, approver_group: r.approverGroup }));

export class AppAdmin {
  constructor(
    private readonly db: Db,
    private readonly revocations: RevocationState,
    private readonly now: () => number,
    /** A revocation stays live this long past the last expiry it covers. */
    private readonly revocationMarginMs: number,
    /** Awaited after a committed change (creation too), so this replica's app view has it before the answer. */
    private readonly onChange: (appId: string) => Promise<void> | void = () => {},
  ) {}

  async create(input: CreateAppInput, requestId: string): Promise<{ app: AppRecord; clientSecret: string }> {
    const name = requireAppName(input.name);
    const scopeCeiling = requireScopes("scope_ceiling", input.scopeCeiling);
    const audiences = requireAudiences("audiences", input.audiences);
    const maxTtlSeconds = checkTtl(input.maxTtlSeconds ?? DEFAULT_APP_TTL_SECONDS);
    const maxDelegationDepth = input.maxDelegationDepth === 0 ? DEFAULT_DELEGATION_DEPTH : checkDepth(input.maxDelegationDepth);
    const ratePerSecond = checkRate("rate_limit_per_second", input.ratePerSecond);
    const rateBurst = checkRate("rate_limit_burst", input.rateBurst);
    const approvalPolicy = requirePolicy(input.approvalPolicy);
    const maxTaskSeconds = input.maxTaskSeconds == null ? null : checkTaskSeconds(input.maxTaskSeconds);
    const clientSecret = newClientSecret();
    const t = new Date(this.now());
    const app: AppRecord = {
      appId: newAppId(),
      name,
      secretHash: hashSecret(clientSecret),
      scopeCeiling,
      audiences,
      maxTtlSeconds,
      maxDelegationDepth,
      disabled: false,
      createTime: t,
      updateTime: t,
      ratePerSecond,
      rateBurst,
      approvalPolicy,
      maxTaskSeconds,
    };
    await withTransaction(this.db, async (tx) => {
      if (!(await insertApp(tx, app))) throw new AlreadyExistsError("app", "name");
      await this.audit(tx, "app.created", app, requestId, { name, scope_ceiling: scopeCeiling, audiences, max_ttl_seconds: maxTtlSeconds, max_delegation_depth: maxDelegationDepth, rate_per_second: ratePerSecond, rate_burst: rateBurst, approval_policy: policyData(approvalPolicy), max_task_seconds: maxTaskSeconds });
    });
    await this.onChange(app.appId);
    return { app, clientSecret };
  }

  async get(appId: string): Promise<AppRecord> {
    const app = APP_ID.test(appId) ? await getApp(this.db, appId) : null;
    if (!app) throw new NotFoundError("app");
    return app;
  }

  async list(pageSize: number, pageToken: string): Promise<{ apps: AppRecord[]; nextPageToken: string }> {
    const { size, after } = pageRequest(pageSize, pageToken, APP_ID);
    const { page, nextPageToken } = pageOf(await listApps(this.db, after, size + 1), size, (a) => a.appId);
    return { apps: page, nextPageToken };
  }

  /** Applies the change; live tokens that no longer fit are revoked in the same transaction. */
  async update(input: UpdateAppInput, requestId: string): Promise<{ app: AppRecord; revokedTokenCount: number }> {
    const name = input.name === null ? null : requireAppName(input.name);
    const ceiling = input.scopeCeiling === null ? null : requireScopes("scope_ceiling", input.scopeCeiling);
    const audiences = input.audiences === null ? null : requireAudiences("audiences", input.audiences);
    const ttl = input.maxTtlSeconds === null ? null : checkTtl(input.maxTtlSeconds);
    const depth = input.maxDelegationDepth === null ? null : checkDepth(input.maxDelegationDepth);
    const ratePerSecond = input.ratePerSecond === null ? null : checkRate("rate_limit_per_second", input.ratePerSecond);
    const rateBurst = input.rateBurst === null ? null : checkRate("rate_limit_burst", input.rateBurst);
    const approvalPolicy = input.approvalPolicy === null ? null : requirePolicy(input.approvalPolicy);
    const maxTaskSeconds = input.maxTaskSeconds == null ? null : checkTaskSeconds(input.maxTaskSeconds);
    if (!APP_ID.test(input.appId)) throw new NotFoundError("app");
    const nowMs = this.now();
    const { app, revoked } = await withTransaction(this.db, async (tx) => {
      const old = await getApp(tx, input.appId, "FOR UPDATE");
      if (!old) throw new NotFoundError("app");
      const app: AppRecord = {
        ...old,
        name: name ?? old.name,
        scopeCeiling: ceiling ?? old.scopeCeiling,
        audiences: audiences ?? old.audiences,
        maxTtlSeconds: ttl ?? old.maxTtlSeconds,
        maxDelegationDepth: depth ?? old.maxDelegationDepth,
        ratePerSecond: ratePerSecond ?? old.ratePerSecond,
        rateBurst: rateBurst ?? old.rateBurst,
        approvalPolicy: approvalPolicy ?? old.approvalPolicy,
        maxTaskSeconds: maxTaskSeconds ?? old.maxTaskSeconds,
        updateTime: new Date(nowMs),
      };
      if (!(await updateApp(tx, app))) throw new AlreadyExistsError("app", "name");
      // Nothing keeps more authority than the app now has.
      const revoked: Revocation[] = [];
      for (const g of await liveGrantsOfApp(tx, app.appId, new Date(nowMs))) {
        const fits =
          uncoveredScopes(app.scopeCeiling, g.scopes).length === 0 &&
          excessAudiences(app.audiences, g.audiences).length === 0 &&
          g.expireTime.getTime() - g.issueTime.getTime() <= app.maxTtlSeconds * 1000 + 1000;
        if (fits || g.depth > 0) continue; // descendants fall with their root
        revoked.push(
          await insertRevocation(
            tx,
            { target: "token", id: g.tokenId, appId: app.appId, revokedAtMs: nowMs, expiresAtMs: g.expireTime.getTime() + this.revocationMarginMs, audiences: g.audiences },
            "app narrowed",
          ),
        );
      }
      await this.audit(tx, "app.updated", app, requestId, {
        name: app.name,
        scope_ceiling: app.scopeCeiling,
        audiences: app.audiences,
        max_ttl_seconds: app.maxTtlSeconds,
        max_delegation_depth: app.maxDelegationDepth,
        rate_per_second: app.ratePerSecond,
        rate_burst: app.rateBurst,
        approval_policy: policyData(app.approvalPolicy),
        max_task_seconds: app.maxTaskSeconds,
        revoked_token_ids: revoked.map((r) => r.id),
      });
      return { app, revoked };
    });
    for (const r of revoked) this.revocations.add(r);
    await this.onChange(app.appId);
    return { app, revokedTokenCount: revoked.length };
  }

  async disable(appId: string, reason: string, requestId: string): Promise<AppRecord> {
    if (!APP_ID.test(appId)) throw new NotFoundError("app");
    if (reason.length > 256) throw new InvalidRequestError("reason", "must be at most 256 characters");
    const { app, revocation } = await withTransaction(this.db, async (tx) => {
      const old = await getApp(tx, appId, "FOR UPDATE");
      if (!old) throw new NotFoundError("app");
      // Read the clock only once the row is locked: every grant batch that
      // saw the app enabled has committed by now, so their tokens were issued
      // before this instant and the app revocation below covers them.
      const nowMs = this.now();
      const app: AppRecord = { ...old, disabled: true, updateTime: new Date(nowMs) };
      await updateApp(tx, app);
      const revocation = await insertRevocation(
        tx,
        { target: "app", id: appId, appId, revokedAtMs: nowMs, expiresAtMs: nowMs + old.maxTtlSeconds * 1000 + this.revocationMarginMs, audiences: old.audiences },
        reason || "app disabled",
      );
      await this.audit(tx, "app.disabled", app, requestId, { reason: reason || null, cursor: revocation.cursor.toString() });
      return { app, revocation };
    });
    this.revocations.add(revocation);
    await this.onChange(appId);
    return app;
  }

  async rotateSecret(appId: string, requestId: string): Promise<string> {
    if (!APP_ID.test(appId)) throw new NotFoundError("app");
    const clientSecret = newClientSecret();
    await withTransaction(this.db, async (tx) => {
      const old = await getApp(tx, appId, "FOR UPDATE");
      if (!old) throw new NotFoundError("app");
      const app: AppRecord = { ...old, secretHash: hashSecret(clientSecret), updateTime: new Date(this.now()) };
      await updateApp(tx, app);
      await this.audit(tx, "app.secret_rotated", app, requestId, {});
    });
    await this.onChange(appId);
    return clientSecret;
  }

  private async audit(tx: Tx, kind: string, app: AppRecord, requestId: string, data: Record<string, unknown>): Promise<void> {
    await appendAudit(tx, [{ kind, time: new Date(this.now()), appId: app.appId, requestId, actor: "operator", data }]);
  }
}
