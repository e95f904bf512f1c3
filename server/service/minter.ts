// Shared by Issue and Delegate: sign a token, store its grant and audit event
// before returning it, and record refusals in the audit trail.
//
// Refusals are written in group commits (batcher.ts): one transaction, and
// one turn of the audit chain's head lock, for every refusal that arrived
// while the previous batch committed. Written one transaction each, an app
// sending refused requests at ~200/s cut another app's issuance by three
// quarters (bench/noisy.ts). The refusal is still answered only once its
// event has committed: the trail never misses a refusal the caller saw, and
// the callers' own concurrency bounds the queue, so nothing is dropped.

import { type BatonError, UnavailableError } from "../domain/errors.js";
import type { LineageEntry, TokenClaims } from "../domain/tokens.js";
import type { Signer } from "../crypto/signing-thread.js";
import { signToken } from "../crypto/tokens.js";
import { appendAudit, type AuditEvent } from "../storage/audit.js";
import { type Db, type Tx, withTransaction } from "../storage/db.js";
import { insertGrants, type GrantRecord } from "../storage/grants.js";
import { Batcher } from "./batcher.js";
import { GrantWriter } from "./grant-writer.js";
import type { KeyManager } from "./keys.js";
import { actorOf, type Principal } from "./principals.js";

export interface RequestContext {
  readonly requestId: string;
}

export interface IssuedToken {
  readonly token: string;
  readonly claims: TokenClaims;
  readonly ttlClamped: boolean;
}

export interface MintSettings {
  readonly issuer: string;
  /** Where tokens are signed (a SigningThread, or the event loop). */
  readonly signer: Signer;
  readonly trustDomain: string;
  readonly defaultTtlSeconds: number;
  readonly now: () => number;
}

export interface HowMinted {
  readonly kind: "token.issued" | "token.delegated";
  readonly actor: string;
  readonly ttlClamped: boolean;
  /** The app's update_time the request was checked against (Issue), or null. */
  readonly appVersion: Date | null;
  /**
   * For a token minted under an approval: locks and uses the approval in the
   * grant's transaction, returning its audit event (see Approvals.use).
   */
  readonly useApproval?: (tx: Tx) => Promise<AuditEvent>;
}

/** A lineage as audit events record it, root first. */
export const lineageData = (lineage: readonly LineageEntry[]): { token_id: string; agent_id: string }[] =>
  lineage.map((e) => ({ token_id: e.tokenId, agent_id: e.agentId }));

/** The grant row of a signed token; `taskStartMs` only for a renewal (else the token starts its task line). */
export function grantOf(claims: TokenClaims, keyId: string, taskStartMs?: number): GrantRecord {
  return {
    tokenId: claims.tokenId,
    appId: claims.appId,
    agentId: claims.agentId,
    taskId: claims.taskId,
    orchestrationId: claims.orchestrationId,
    humanPrincipal: claims.humanPrincipal,
    parentTokenId: claims.lineage.at(-1)?.tokenId ?? null,
    rootTokenId: claims.lineage[0]?.tokenId ?? claims.tokenId,
    depth: claims.lineage.length,
    scopes: claims.scopes,
    audiences: claims.audiences,
    keyThumbprint: claims.keyThumbprint,
    keyId,
    issueTime: new Date(claims.issuedAtMs),
    expireTime: new Date(claims.expiresAtMs),
    ...(taskStartMs === undefined ? {} : { taskStartTime: new Date(taskStartMs) }),
  };
}

/** What the audit event of a minted token (issued, delegated, renewed) records. */
export function mintedData(claims: TokenClaims, ttlClamped: boolean): Record<string, unknown> {
  return {
    token_id: claims.tokenId,
    agent_id: claims.agentId,
    task_id: claims.taskId,
    orchestration_id: claims.orchestrationId,
    human: claims.humanPrincipal,
    lineage: lineageData(claims.lineage),
    scopes: claims.scopes,
    audiences: claims.audiences,
    expire_time: new Date(claims.expiresAtMs).toISOString(),
    ttl_seconds: (claims.expiresAtMs - claims.notBeforeMs) / 1000,
    key_bound: claims.keyThumbprint !== null,
    ttl_clamped: ttlClamped,
    ...(claims.approval ? { approval_id: claims.approval.approvalId } : {}),
  };
}

export class Minter {
  private readonly writer: GrantWriter;
  private readonly refusals: Batcher<AuditEvent, null>;

  constructor(
    private readonly db: Db,
    private readonly keys: KeyManager,
    readonly settings: MintSettings,
  ) {
    this.writer = new GrantWriter(db);
    this.refusals = new Batcher(async (events) => {
      await withTransaction(db, (tx) => appendAudit(tx, events));
      return events.map(() => null);
    });
  }

  /** Signs the token, then stores its grant and audit event before returning it. */
  async mint(claims: TokenClaims, how: HowMinted, ctx: RequestContext): Promise<IssuedToken> {
    const key = this.keys.ring.active;
    const token = await signToken(claims, key, this.settings.signer);
    const grant = grantOf(claims, key.stored.keyId);
    const event: AuditEvent = {
      kind: how.kind,
      time: new Date(claims.issuedAtMs),
      appId: claims.appId,
      requestId: ctx.requestId,
      actor: how.actor,
      data: mintedData(claims, how.ttlClamped),
    };
    const stored = how.useApproval
      ? await this.writeApproved(grant, event, how.appVersion, how.useApproval)
      : await this.writer.write(grant, event, how.appVersion);
    // The app was disabled, narrowed or its secret rotated while this request ran.
    if (!stored) throw new UnavailableError("the app's settings changed during this request; retry");
    return { token, claims, ttlClamped: how.ttlClamped };
  }

  /**
   * A grant under an approval, in its own transaction (approvals come at
   * human pace, no batching): the approval is locked and used first, so of
   * two requests under one approval only one commits a grant.
   */
  private writeApproved(grant: GrantRecord, event: AuditEvent, appVersion: Date | null, useApproval: (tx: Tx) => Promise<AuditEvent>): Promise<boolean> {
    return withTransaction(this.db, async (tx) => {
      const used = await useApproval(tx);
      const ids = await insertGrants(tx, [grant], [appVersion]);
      // Rolled back: the approval stays APPROVED for a retry.
      if (!ids.has(grant.tokenId)) throw new UnavailableError("the app's settings changed during this request; retry");
      await appendAudit(tx, [event, used]);
      return true;
    });
  }

  /** Records a refused Issue, Delegate or Renew: only the refusal's own details, never the request's free text. */
  async refused(
    kind: "issue.refused" | "delegation.refused" | "renewal.refused",
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
      data: { reason: err.reason, details: err.details, ...extra },
    };
    await this.refusals.submit(event);
  }
}
