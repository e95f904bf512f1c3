// What a Baton token says, as plain data (DESIGN §2). The crypto layer turns
// it into a signed JWT and back; the transport turns it into proto messages.

/** One ancestor of a delegated token, root first in a lineage. */
export interface LineageEntry {
  readonly tokenId: string;
  readonly agentId: string;
}

/** The human approval a token was minted under (claim `apr`). */
export interface TokenApproval {
  readonly approvalId: string;
  /** In the order they approved. */
  readonly approverIds: readonly string[];
}

export interface TokenClaims {
  readonly tokenId: string;
  readonly agentId: string;
  readonly appId: string;
  readonly taskId: string;
  readonly orchestrationId: string | null;
  readonly humanPrincipal: string | null;
  /** Sorted, de-duplicated. */
  readonly scopes: readonly string[];
  /** Sorted, de-duplicated. */
  readonly audiences: readonly string[];
  readonly issuer: string;
  /** Milliseconds since the epoch. `iat` is signed with millisecond precision. */
  readonly issuedAtMs: number;
  readonly notBeforeMs: number;
  readonly expiresAtMs: number;
  /** Root first; empty for a token issued by an app. */
  readonly lineage: readonly LineageEntry[];
  /** When the root of the chain was issued (= issuedAtMs for a root token). */
  readonly rootIssuedAtMs: number;
  /** RFC 7638 thumbprint of the bound key, or null. */
  readonly keyThumbprint: string | null;
  /** Set only on a token minted under an approval; never inherited by delegation. */
  readonly approval?: TokenApproval | null;
  /** The token this one replaced through Renew (`rnw`); absent for an issued or delegated token. */
  readonly renewedFromTokenId?: string | null;
}

/** The id of the root token of the chain a token belongs to. */
export function rootTokenId(c: Pick<TokenClaims, "tokenId" | "lineage">): string {
  return c.lineage[0]?.tokenId ?? c.tokenId;
}

/**
 * The SPIFFE-style agent id (DESIGN §2). The task id is percent-encoded
 * (RFC 3986), so its `: / @` stay inside one path segment; the other parts
 * are SPIFFE path characters already.
 */
export function agentIdFor(trustDomain: string, appId: string, taskId: string, random: string): string {
  return `spiffe://${trustDomain}/app/${appId}/task/${encodeURIComponent(taskId)}/agent/${random}`;
}

/** The verdict on a token (proto TokenStatus without its prefix). */
export type TokenStatus =
  | "VALID"
  | "MALFORMED"
  | "ALGORITHM_NOT_ALLOWED"
  | "UNKNOWN_KEY"
  | "BAD_SIGNATURE"
  | "EXPIRED"
  | "NOT_YET_VALID"
  | "WRONG_ISSUER"
  | "WRONG_AUDIENCE"
  | "REVOKED"
  | "INSUFFICIENT_SCOPE"
  | "WRONG_TYPE"
  /** Validate: the caller may not ask about this token (tenant isolation). */
  | "AUDIENCE_NOT_SERVED";
