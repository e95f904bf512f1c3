// Revocation matching (DESIGN §6). A token is revoked when its own id or any
// id in its lineage, its agent or any ancestor's agent, its chain's root, or
// its task or app (for chains rooted at or before the revocation) matches a
// live revocation. The check needs only the token's claims and this set: no
// database round trip.

import type { TokenClaims } from "./tokens.js";
import { rootTokenId } from "./tokens.js";

/**
 * The SDK verifiers allow 30 s of leeway on `exp` by default: a revocation
 * forgotten sooner after the expiry it covers would let them accept a
 * revoked token again.
 */
export const MIN_REVOCATION_MARGIN_MS = 30_000;

/** How long past the last expiry it covers a revocation stays live (in the set and the stream snapshot). */
export function revocationMarginMs(verifierLeewayMs: number): number {
  return Math.max(verifierLeewayMs, MIN_REVOCATION_MARGIN_MS);
}

export type RevocationTarget = "token" | "agent" | "task" | "chain" | "app";

export interface Revocation {
  readonly target: RevocationTarget;
  /** Token id (token, chain: the root's id), agent id, task id or app id. */
  readonly id: string;
  readonly appId: string;
  /** For task and app: tokens whose chain was rooted at or before this instant (ms) are revoked. */
  readonly revokedAtMs: number;
  /** After this instant (ms) nothing the revocation matches can be valid. */
  readonly expiresAtMs: number;
  /** Commit-order position on the revocation stream. */
  readonly cursor: bigint;
}

/**
 * A revocation as stored and streamed, with the audiences of every token it
 * can kill, fixed at revoke time: what the stream matches resource servers
 * against (tenant isolation). Matching tokens does not need them.
 */
export interface StoredRevocation extends Revocation {
  readonly audiences: readonly string[];
}

type Facts = Pick<TokenClaims, "tokenId" | "agentId" | "appId" | "taskId" | "lineage" | "rootIssuedAtMs">;

const taskKey = (appId: string, taskId: string): string => `${appId}\u0000${taskId}`;

/** The set of live revocations, indexed for an O(lineage) check. */
export class RevocationSet {
  // id -> latest expiry among revocations of that id
  private readonly tokens = new Map<string, number>();
  private readonly agents = new Map<string, number>();
  private readonly chains = new Map<string, number>();
  // key -> revocations (a task or app can be revoked more than once)
  private readonly tasks = new Map<string, Revocation[]>();
  private readonly apps = new Map<string, Revocation[]>();

  /** Number of distinct entries held. */
  get size(): number {
    let n = this.tokens.size + this.agents.size + this.chains.size;
    for (const l of this.tasks.values()) n += l.length;
    for (const l of this.apps.values()) n += l.length;
    return n;
  }

  add(r: Revocation): void {
    switch (r.target) {
      case "token":
        return keepLatest(this.tokens, r.id, r.expiresAtMs);
      case "agent":
        return keepLatest(this.agents, r.id, r.expiresAtMs);
      case "chain":
        return keepLatest(this.chains, r.id, r.expiresAtMs);
      case "task":
        return append(this.tasks, taskKey(r.appId, r.id), r);
      case "app":
        return append(this.apps, r.appId, r);
    }
  }

  isRevoked(t: Facts): boolean {
    if (this.tokens.has(t.tokenId) || this.agents.has(t.agentId)) return true;
    for (const a of t.lineage) {
      if (this.tokens.has(a.tokenId) || this.agents.has(a.agentId)) return true;
    }
    if (this.chains.has(rootTokenId(t))) return true;
    if (revokedBefore(this.apps.get(t.appId), t.rootIssuedAtMs)) return true;
    return revokedBefore(this.tasks.get(taskKey(t.appId, t.taskId)), t.rootIssuedAtMs);
  }

  /** Forgets revocations whose every possible match expired before `beforeMs`. Returns how many. */
  prune(beforeMs: number): number {
    let removed = 0;
    for (const m of [this.tokens, this.agents, this.chains]) {
      for (const [k, exp] of m) {
        if (exp < beforeMs) {
          m.delete(k);
          removed += 1;
        }
      }
    }
    for (const m of [this.tasks, this.apps]) {
      for (const [k, list] of m) {
        const kept = list.filter((r) => r.expiresAtMs >= beforeMs);
        removed += list.length - kept.length;
        if (kept.length === 0) m.delete(k);
        else m.set(k, kept);
      }
    }
    return removed;
  }
}

function keepLatest(m: Map<string, number>, k: string, exp: number): void {
  const prev = m.get(k);
  m.set(k, prev === undefined ? exp : Math.max(prev, exp));
}

function append(m: Map<string, Revocation[]>, k: string, r: Revocation): void {
  const list = m.get(k);
  if (!list) m.set(k, [r]);
  // The same revocation can arrive twice (committed here, then read back).
  else if (!list.some((x) => x.cursor === r.cursor)) list.push(r);
}

function revokedBefore(list: readonly Revocation[] | undefined, rootIssuedAtMs: number): boolean {
  return list !== undefined && list.some((r) => rootIssuedAtMs <= r.revokedAtMs);
}
