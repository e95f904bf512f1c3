// Renew: an agent, with its own token (and a proof when it is key-bound),
// trades it for a fresh one with the same authority, and the old token is
// revoked in the same transaction as the new grant and their audit events.
//
// Everything the old token says is carried over (agent, app, task,
// orchestration, human, scopes, audiences, lineage, key, and any claim added
// later, such as an approval): only the id, the times and `rnw` change. The
// renewal line is bounded by the app's task lifetime maximum, counted from
// the line's first token (grants.task_start_time), and a delegated token by
// its parent's expiry. The new token keeps the chain's root issue time, so
// a task or app revocation that covers the line's first token covers it too.
//
// One transaction, in the lock order of every writer: the app row (shared,
// by the grant insert: a disable waits for it and its revocation covers the
// new token), the revocation cursor row, the audit head. Holding the cursor
// lock, it re-reads the revocations table: a revocation of the old token
// (or its ancestors, agent, chain, task or app) committed by any replica
// since the caller authenticated, or a concurrent Renew of the same token,
// refuses the call, so one token never renews twice.

import { AppDisabledError, BatonError, NotPermittedError, ParentExpiredError, TokenInvalidError } from "../domain/errors.js";
import { decideRenewal } from "../domain/lifetimes.js";
import type { TokenClaims } from "../domain/tokens.js";
import { signToken } from "../crypto/tokens.js";
import { randomId } from "../crypto/secrets.js";
import type { AppRecord } from "../storage/apps.js";
import { appendAudit } from "../storage/audit.js";
import { type Db, withTransaction } from "../storage/db.js";
import { getGrant, insertGrants } from "../storage/grants.js";
import { insertRevocations, revokedBefore } from "../storage/revocations.js";
import type { KeyManager } from "./keys.js";
import { grantOf, type IssuedToken, lineageData, mintedData, type Minter, type RequestContext } from "./minter.js";
import type { Principal } from "./principals.js";
import type { RevocationState } from "./revocation-state.js";

export interface RenewInput {
  readonly ttlSeconds: number | null;
  readonly allowTtlClamp: boolean;
}

export interface RenewSettings {
  /** The task lifetime maximum of apps that set none. */
  readonly maxTaskSeconds: number;
  /** A revocation stays live this long past the last expiry it covers. */
  readonly revocationMarginMs: number;
}

export class Renewer {
  constructor(
    private readonly db: Db,
    private readonly keys: KeyManager,
    private readonly minter: Minter,
    private readonly revocations: RevocationState,
    private readonly findApp: (appId: string) => Promise<AppRecord | null>,
    private readonly settings: RenewSettings,
  ) {}

  async renew(caller: Principal, input: RenewInput, ctx: RequestContext): Promise<IssuedToken> {
    if (caller.kind !== "agent") throw new NotPermittedError("only an agent may renew, with its own token");
    const old = caller.claims;
    try {
      return await this.renewToken(old, input, ctx);
    } catch (err) {
      // UNAVAILABLE is no decision to record, and its audit row would wait on the failing database.
      if (err instanceof BatonError && err.reason !== "UNAVAILABLE") {
        await this.minter.refused("renewal.refused", old.appId, caller, err, ctx, {
          token_id: old.tokenId,
          agent_id: old.agentId,
          task_id: old.taskId,
          orchestration_id: old.orchestrationId,
          human: old.humanPrincipal,
          lineage: lineageData(old.lineage),
        });
      }
      throw err;
    }
  }

  private async renewToken(old: TokenClaims, input: RenewInput, ctx: RequestContext): Promise<IssuedToken> {
    const settings = this.minter.settings;
    const app = await this.findApp(old.appId);
    if (!app) throw new NotPermittedError("the token's app no longer exists");
    if (app.disabled) throw new AppDisabledError();
    const grant = await getGrant(this.db, old.tokenId);
    // A valid token's grant outlives it (retention keeps grants past expiry); the chain's root time is never later.
    const taskStartMs = grant?.taskStartTime?.getTime() ?? old.rootIssuedAtMs;
    const parentId = old.lineage.at(-1)?.tokenId;
    let parentExpiresAtMs: number | null = null;
    if (parentId !== undefined) {
      const parent = await getGrant(this.db, parentId);
      if (!parent) throw new ParentExpiredError();
      parentExpiresAtMs = parent.expireTime.getTime();
    }
    const nowMs = settings.now();
    const maxTaskSeconds = app.maxTaskSeconds ?? this.settings.maxTaskSeconds;
    const d = decideRenewal({
      requestedSeconds: input.ttlSeconds,
      allowClamp: input.allowTtlClamp,
      defaultSeconds: settings.defaultTtlSeconds,
      appMaxSeconds: app.maxTtlSeconds,
      parentExpiresAtMs,
      taskStartMs,
      maxTaskSeconds,
      nowMs,
    });
    // Spread: every claim of the old token, including ones this file does not name.
    const claims: TokenClaims = {
      ...old,
      tokenId: randomId(),
      issuedAtMs: nowMs,
      notBeforeMs: d.notBeforeMs,
      expiresAtMs: d.expiresAtMs,
      renewedFromTokenId: old.tokenId,
    };
    const key = this.keys.ring.active;
    const token = await signToken(claims, key);
    const revocation = await withTransaction(this.db, async (tx) => {
      const inserted = await insertGrants(tx, [grantOf(claims, key.stored.keyId, taskStartMs)], [null]);
      if (inserted.size === 0) throw new AppDisabledError();
      const [stored] = await insertRevocations(tx, [
        {
          revocation: {
            target: "token",
            id: old.tokenId,
            appId: old.appId,
            revokedAtMs: nowMs,
            expiresAtMs: old.expiresAtMs + this.settings.revocationMarginMs,
            audiences: old.audiences,
          },
          reason: "renewed",
        },
      ]);
      if (await revokedBefore(tx, old, stored!.cursor, nowMs)) throw new TokenInvalidError("REVOKED");
      const time = new Date(nowMs);
      const actor = `agent:${old.agentId}`;
      await appendAudit(tx, [
        {
          kind: "revocation.created",
          time,
          appId: old.appId,
          requestId: ctx.requestId,
          actor,
          data: { target: "token", id: old.tokenId, reason: "renewed", cursor: stored!.cursor.toString() },
        },
        {
          kind: "token.renewed",
          time,
          appId: claims.appId,
          requestId: ctx.requestId,
          actor,
          data: {
            ...mintedData(claims, d.clamped),
            renewed_from: old.tokenId,
            task_expire_time: new Date(d.taskExpiresAtMs).toISOString(),
          },
        },
      ]);
      return stored!;
    });
    // This replica's checks see the old token revoked before the answer; others learn it from the table (NOTIFY at commit).
    this.revocations.add(revocation);
    return { token, claims, ttlClamped: d.clamped };
  }
}
