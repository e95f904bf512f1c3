// Baton tokens as JWTs (RFC 9068 `at+jwt`): signing, and verification with a
// pinned algorithm. Verification never throws on a bad token: every failure
// is a TokenStatus, so hostile input is an ordinary "invalid" answer.

import type { LineageEntry, TokenApproval, TokenClaims, TokenStatus } from "../domain/tokens.js";
import { signingInput, verifyCompact } from "./jws.js";
import { ALLOWED_ALGORITHMS, type KeyRing, type LoadedKey, type SigningAlgorithm } from "./keyring.js";
import { inlineSigner, type Signer } from "./signing-thread.js";

export const TOKEN_TYPE = "at+jwt";
const MAX_TOKEN_LENGTH = 16 * 1024;

/** The JWT claims set, as signed. */
interface JwtPayload {
  iss: string;
  sub: string;
  aud: string[];
  /** Seconds with millisecond precision (RFC 7519 NumericDate allows fractions): task and app revocations compare it to the millisecond. */
  iat: number;
  nbf: number;
  exp: number;
  jti: string;
  client_id: string;
  scope: string;
  task_id: string;
  orchestration_id?: string;
  human?: string;
  /** Root first: each ancestor's token id and agent id. */
  lineage?: { jti: string; sub: string }[];
  /**
   * Issue time of the chain's root: delegated tokens, and renewed tokens,
   * whose chain began with the first token of their renewal line (so a task
   * or app revocation covers the whole line).
   */
  root_iat?: number;
  cnf?: { jkt: string };
  /** The approval it was minted under: its id and the approvers who approved. */
  apr?: { id: string; by: string[] };
  /** The token this one replaced through Renew. */
  rnw?: string;
}

const decoder = new TextDecoder();

interface Header {
  alg?: unknown;
  typ?: unknown;
  kid?: unknown;
  crit?: unknown;
}

function decodeHeader(token: string): Header | null {
  const part = token.slice(0, token.indexOf("."));
  if (!/^[A-Za-z0-9_-]+$/.test(part)) return null;
  try {
    const h = JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as unknown;
    return typeof h === "object" && h !== null && !Array.isArray(h) ? (h as Header) : null;
  } catch {
    return null;
  }
}

/** The token for `claims`, signed by `signer` (the event loop itself unless given). */
export async function signToken(claims: TokenClaims, key: LoadedKey, signer: Signer = inlineSigner): Promise<string> {
  if (!key.privateKey) throw new Error("key cannot sign");
  const payload: JwtPayload = {
    iss: claims.issuer,
    sub: claims.agentId,
    aud: [...claims.audiences],
    iat: claims.issuedAtMs / 1000,
    nbf: Math.floor(claims.notBeforeMs / 1000),
    exp: Math.floor(claims.expiresAtMs / 1000),
    jti: claims.tokenId,
    client_id: claims.appId,
    scope: claims.scopes.join(" "),
    task_id: claims.taskId,
  };
  if (claims.orchestrationId) payload.orchestration_id = claims.orchestrationId;
  if (claims.humanPrincipal) payload.human = claims.humanPrincipal;
  if (claims.lineage.length > 0) payload.lineage = claims.lineage.map((e) => ({ jti: e.tokenId, sub: e.agentId }));
  if (claims.lineage.length > 0 || claims.rootIssuedAtMs !== claims.issuedAtMs) payload.root_iat = claims.rootIssuedAtMs / 1000;
  if (claims.keyThumbprint) payload.cnf = { jkt: claims.keyThumbprint };
  if (claims.approval) payload.apr = { id: claims.approval.approvalId, by: [...claims.approval.approverIds] };
  if (claims.renewedFromTokenId) payload.rnw = claims.renewedFromTokenId;
  const input = signingInput({ alg: key.stored.algorithm, typ: TOKEN_TYPE, kid: key.stored.keyId }, JSON.stringify(payload));
  const sig = await signer.sign(Buffer.from(input), key.privateKey, key.stored.algorithm);
  return `${input}.${sig.toString("base64url")}`;
}

export interface VerifyOptions {
  readonly issuer: string;
  readonly nowMs: number;
  readonly leewayMs: number;
}

export type VerifyResult =
  | { readonly status: "VALID"; readonly claims: TokenClaims }
  // claims are present when the signature verified but a time or issuer check failed.
  | { readonly status: Exclude<TokenStatus, "VALID">; readonly claims: TokenClaims | null };

/** Checks form, algorithm, key, signature, issuer and lifetime. Audience, scope and revocation are the caller's. */
export async function verifyToken(token: string, ring: KeyRing, opts: VerifyOptions): Promise<VerifyResult> {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH || token.split(".").length !== 3) {
    return { status: "MALFORMED", claims: null };
  }
  const header = decodeHeader(token);
  if (!header) return { status: "MALFORMED", claims: null };
  if (typeof header.alg !== "string" || !ALLOWED_ALGORITHMS.includes(header.alg as SigningAlgorithm)) {
    return { status: "ALGORITHM_NOT_ALLOWED", claims: null };
  }
  if (header.typ !== TOKEN_TYPE) return { status: "WRONG_TYPE", claims: null };
  if (typeof header.kid !== "string") return { status: "UNKNOWN_KEY", claims: null };
  const key = ring.get(header.kid);
  if (!key) return { status: "UNKNOWN_KEY", claims: null };
  // Pin the algorithm to the key's own: a token cannot pick how it is checked.
  if (header.alg !== key.stored.algorithm) return { status: "ALGORITHM_NOT_ALLOWED", claims: null };
  if (header.crit !== undefined) return { status: "MALFORMED", claims: null };
  const payloadBytes = verifyCompact(token, key.publicKey, key.stored.algorithm);
  if (!payloadBytes) return { status: "BAD_SIGNATURE", claims: null };
  const claims = parseClaims(payloadBytes);
  if (!claims) return { status: "MALFORMED", claims: null };
  return checkIssuerAndTime(claims, opts);
}

/** The checks of verifyToken after the signature: issuer and lifetime, at `opts.nowMs`. */
export function checkIssuerAndTime(claims: TokenClaims, opts: VerifyOptions): VerifyResult {
  if (claims.issuer !== opts.issuer) return { status: "WRONG_ISSUER", claims };
  if (opts.nowMs >= claims.expiresAtMs + opts.leewayMs) return { status: "EXPIRED", claims };
  if (opts.nowMs + opts.leewayMs < claims.notBeforeMs) return { status: "NOT_YET_VALID", claims };
  return { status: "VALID", claims };
}

const isString = (v: unknown): v is string => typeof v === "string" && v.length > 0;
/** 9999-12-31T23:59:59Z: the end of a google.protobuf.Timestamp, well inside a JavaScript Date. */
const MAX_TIME_SECONDS = 253_402_300_799;
/** A NumericDate the broker can represent: a signed time past year 9999 is malformed, not an internal error. */
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0 && v <= MAX_TIME_SECONDS;

function parseClaims(bytes: Uint8Array): TokenClaims | null {
  let p: Partial<Record<keyof JwtPayload, unknown>>;
  try {
    p = JSON.parse(decoder.decode(bytes)) as typeof p;
  } catch {
    return null;
  }
  if (typeof p !== "object" || p === null || Array.isArray(p)) return null;
  if (!isString(p.iss) || !isString(p.sub) || !isString(p.jti) || !isString(p.client_id) || !isString(p.task_id)) return null;
  if (!isString(p.scope) || !isTime(p.iat) || !isTime(p.nbf) || !isTime(p.exp)) return null;
  if (!Array.isArray(p.aud) || p.aud.length === 0 || !p.aud.every(isString)) return null;
  if (p.orchestration_id !== undefined && !isString(p.orchestration_id)) return null;
  if (p.human !== undefined && !isString(p.human)) return null;
  if (p.rnw !== undefined && !isString(p.rnw)) return null;
  if (p.root_iat !== undefined && !isTime(p.root_iat)) return null;
  let lineage: LineageEntry[] = [];
  if (p.lineage !== undefined) {
    if (!Array.isArray(p.lineage) || !isTime(p.root_iat)) return null;
    lineage = [];
    for (const e of p.lineage as unknown[]) {
      if (typeof e !== "object" || e === null) return null;
      const { jti, sub } = e as { jti?: unknown; sub?: unknown };
      if (!isString(jti) || !isString(sub)) return null;
      lineage.push({ tokenId: jti, agentId: sub });
    }
  }
  let keyThumbprint: string | null = null;
  if (p.cnf !== undefined) {
    const jkt = (p.cnf as { jkt?: unknown } | null)?.jkt;
    if (!isString(jkt)) return null;
    keyThumbprint = jkt;
  }
  let approval: TokenApproval | null = null;
  if (p.apr !== undefined) {
    const { id, by } = (p.apr ?? {}) as { id?: unknown; by?: unknown };
    if (!isString(id) || !Array.isArray(by) || !by.every(isString)) return null;
    approval = { approvalId: id, approverIds: by };
  }
  const issuedAtMs = Math.round(p.iat * 1000);
  return {
    tokenId: p.jti,
    agentId: p.sub,
    appId: p.client_id,
    taskId: p.task_id,
    orchestrationId: p.orchestration_id ?? null,
    humanPrincipal: p.human ?? null,
    scopes: p.scope.split(" "),
    audiences: p.aud,
    issuer: p.iss,
    issuedAtMs,
    notBeforeMs: p.nbf * 1000,
    expiresAtMs: p.exp * 1000,
    lineage,
    rootIssuedAtMs: p.root_iat !== undefined ? Math.round(p.root_iat * 1000) : issuedAtMs,
    keyThumbprint,
    // Only when present: a token without `apr` decodes as it always did.
    ...(approval ? { approval } : {}),
    // Only on renewed tokens, so an issued token's claims read back as they were signed.
    ...(p.rnw !== undefined ? { renewedFromTokenId: p.rnw } : {}),
  };
}
