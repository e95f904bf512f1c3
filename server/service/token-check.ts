// The one verdict on a token: signature, issuer, lifetime and revocation,
// from the key ring and the in-memory revocation set (no database round
// trip). Used for agents' own tokens and for Validate.
//
// A resource server presents an agent's token with every call the agent
// makes, and the ES256 verification is about a third of the CPU a Validate
// costs the broker's one thread. So the tokens whose signature verified are
// remembered by their exact string (VerifiedTokens): presented again, only
// the issuer, lifetime and revocation are checked. A token has exactly one
// string form (low-S signature, canonical base64url; jws.ts), so a changed
// character is a different key and is verified from scratch.

import type { KeyRing } from "../crypto/keyring.js";
import { checkIssuerAndTime, verifyToken } from "../crypto/tokens.js";
import type { TokenClaims, TokenStatus } from "../domain/tokens.js";
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
  /** How many verified tokens to remember (0: verify every time). */
  readonly verifiedTokenCache: number;
}

/**
 * Tokens whose signature verified under one key ring, with their claims.
 * Only tokens that were VALID enter, so nothing a caller invents takes a
 * place. Any new ring (a reload, a rotation, a key no longer published)
 * empties it: an entry always names a key the current ring verified it with.
 * Full, the oldest entry leaves first.
 */
export class VerifiedTokens {
  private ring: KeyRing | null = null;
  private readonly entries = new Map<string, TokenClaims>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(token: string, ring: KeyRing): TokenClaims | undefined {
    return ring === this.ring ? this.entries.get(token) : undefined;
  }

  add(token: string, ring: KeyRing, claims: TokenClaims): void {
    if (this.max === 0) return;
    if (ring !== this.ring) {
      this.entries.clear();
      this.ring = ring;
    }
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(token, claims);
  }
}

export class TokenChecker {
  private readonly verified: VerifiedTokens;

  constructor(
    private readonly keys: KeyManager,
    private readonly revocations: RevocationState,
    private readonly settings: TokenCheckSettings,
  ) {
    this.verified = new VerifiedTokens(settings.verifiedTokenCache);
  }

  /** How many verified tokens are remembered. */
  get remembered(): number {
    return this.verified.size;
  }

  async check(token: string): Promise<Verdict> {
    const opts = { issuer: this.settings.issuer, nowMs: this.settings.now(), leewayMs: this.settings.skewMs };
    let ring = this.keys.ring;
    const known = this.verified.get(token, ring);
    let v = known ? checkIssuerAndTime(known, opts) : await verifyToken(token, ring, opts);
    if (v.status === "UNKNOWN_KEY") {
      // A key published by another replica since our last load.
      ring = await this.keys.reloadIfStale();
      v = await verifyToken(token, ring, opts);
    }
    if (v.status !== "VALID") return v;
    if (!known) this.verified.add(token, ring, v.claims);
    if (this.revocations.isRevoked(v.claims)) return { status: "REVOKED", claims: v.claims };
    return v;
  }
}
