// Who may call: apps by client id and secret (from the in-memory view), agents
// by their own token (and its proof of possession when key-bound). The
// principal rules themselves are in principals.ts; this supplies the lookups,
// throttles sources that keep failing, and charges requests to app limits.

import { createHash } from "node:crypto";
import { CredentialsInvalidError, ProofReplayedError, ProofRequiredError, TokenInvalidError } from "../domain/errors.js";
import type { TokenClaims } from "../domain/tokens.js";
import { verifyProof } from "../crypto/proofs.js";
import type { AppRecord } from "../storage/apps.js";
import { type ApproverRecord, getApprover } from "../storage/approvers.js";
import type { Db } from "../storage/db.js";
import type { ResourceServerRecord } from "../storage/resource-servers.js";
import { type ProofUse, useProofs } from "../storage/proofs.js";
import type { AppView } from "./app-view.js";
import { Batcher } from "./batcher.js";
import { type Allowed, authenticate, type Authenticator, type Credentials, type Principal } from "./principals.js";
import type { RateLimits } from "./rate-limits.js";
import type { TokenChecker } from "./token-check.js";

/** Proofs are accepted within the leeway, and never less than this, of their iat. */
const PROOF_MIN_WINDOW_MS = 5_000;

export interface AuthenticationSettings {
  readonly operatorTokenHash: Buffer;
  readonly leewayMs: number;
  readonly now: () => number;
  readonly limits: RateLimits;
}

/**
 * Failures that look like guessing: a wrong secret or operator credential,
 * garbage, or a token that was never valid. An expired or revoked token is
 * an honest caller behind the times and is not counted: one revocation must
 * not lock a whole host's agents (and their orchestrator) out.
 */
function isGuess(err: unknown): boolean {
  if (err instanceof CredentialsInvalidError) return true;
  return err instanceof TokenInvalidError && !["EXPIRED", "NOT_YET_VALID", "REVOKED"].includes(err.status);
}

export class Authentication implements Authenticator {
  /** Proof ids, recorded once each across replicas, in group commits. */
  private readonly proofLedger: Batcher<ProofUse, boolean>;
  readonly operatorTokenHash: Buffer;

  constructor(
    private readonly db: Db,
    private readonly checker: TokenChecker,
    private readonly view: AppView,
    private readonly settings: AuthenticationSettings,
  ) {
    this.proofLedger = new Batcher((uses) => useProofs(db, uses));
    this.operatorTokenHash = settings.operatorTokenHash;
  }

  /**
   * From the view: no database read. A change made on this replica is in the
   * view before its RPC answers; one made on another within the notification
   * latency, at worst the catch-up interval. Issuance does not depend on the
   * view: the grant insert re-checks the app and its secret at commit.
   */
  async findApp(appId: string): Promise<AppRecord | null> {
    return this.view.app(appId);
  }

  /**
   * Authenticates a call from `source` (see sourceKey). A source with too
   * many recent failures is refused before its credentials are looked at:
   * no lookup, no hashing, no signature check.
   */
  async authenticate(creds: Credentials, allowed: readonly Allowed[], method: string, source: string): Promise<Principal> {
    this.settings.limits.checkSource(source);
    try {
      return await authenticate(this, creds, allowed, method);
    } catch (err) {
      if (isGuess(err)) this.settings.limits.sourceFailed(source);
      throw err;
    }
  }

  /**
   * Charges one request to the caller's app: an app's own, or an agent's
   * app; a resource server to its own bucket. The operator is not limited. Throws RateLimitedError when the app
   * is over its limit; nothing of the request has been done then.
   */
  async charge(caller: Principal): Promise<void> {
    const limits = this.settings.limits;
    if (caller.kind === "app") limits.chargeApp(caller.app.appId, limits.rateOf(caller.app));
    else if (caller.kind === "agent") limits.chargeApp(caller.claims.appId, limits.rateOf(await this.findApp(caller.claims.appId)));
    else if (caller.kind === "resourceServer") limits.chargeResourceServer(caller.resourceServer.resourceServerId);
  }

  /** Resource servers, from the view like apps (a stream and a Validate authenticate with them). */
  async findResourceServer(id: string): Promise<ResourceServerRecord | null> {
    return this.view.resourceServer(id);
  }

  /**
   * Approvers are read from the database on each call: they act at human
   * pace, and a disable takes effect on every replica at once.
   */
  async findApprover(id: string): Promise<ApproverRecord | null> {
    return getApprover(this.db, id);
  }

  /**
   * Verifies a token presented as the caller's own credential, and its proof
   * of possession (made for `method`) when the token is key-bound.
   */
  async verifyAgentToken(token: string, proof: string | null, method: string): Promise<TokenClaims> {
    const v = await this.checker.check(token);
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
}
