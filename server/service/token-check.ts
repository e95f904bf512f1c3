// The one verdict on a token: signature, issuer, lifetime and revocation,
// from the key ring and the in-memory revocation set (no database round
// trip). Used for agents' own tokens and for Validate.

import type { TokenClaims, TokenStatus } from "../domain/tokens.js";
import { verifyToken } from "../crypto/tokens.js";
import type { KeyManager } from "./keys.js";
import type { RevocationState } from "./revocation-state.js";

export interface Verdict {
  readonly status: TokenStatus;
  readonly claims: TokenClaims | null;
}

export interface TokenCheckSettings {
  readonly issuer: string;
  /** Accepted past `exp` and before `nbf`: clock skew between replicas only, as the broker signs with its own clock. */
  readonly skewMs: number;
  readonly now: () => number;
}

export class TokenChecker {
  constructor(
    private readonly keys: KeyManager,
    private readonly revocations: RevocationState,
    private readonly settings: TokenCheckSettings,
  ) {}

  async check(token: string): Promise<Verdict> {
    const opts = { issuer: this.settings.issuer, nowMs: this.settings.now(), leewayMs: this.settings.skewMs };
    let v = await verifyToken(token, this.keys.ring, opts);
    if (v.status === "UNKNOWN_KEY") {
      // A key published by another replica since our last load.
      v = await verifyToken(token, await this.keys.reloadIfStale(), opts);
    }
    if (v.status !== "VALID") return v;
    if (this.revocations.isRevoked(v.claims)) return { status: "REVOKED", claims: v.claims };
    return v;
  }
}
