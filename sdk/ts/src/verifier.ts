// TokenVerifier: offline verification of Baton access tokens at a resource
// server (DESIGN §2, §3, §5, §6), with no broker round trip per request.
//
// Checks, in this order, each failure a reason:
//   form (compact JWS, at most 16 KiB)                     MALFORMED
//   alg ES256 or EdDSA, and equal to the key's own alg     ALGORITHM_NOT_ALLOWED
//   typ at+jwt                                             WRONG_TYPE
//   kid in the key set (refetched, rate-limited, if not)   UNKNOWN_KEY
//   signature (ES256: low-S only, see low-s.ts)            BAD_SIGNATURE
//   claims present and well-typed                          MALFORMED
//   iss                                                    WRONG_ISSUER
//   exp / nbf, with leeway                                 EXPIRED / NOT_YET_VALID
//   aud contains the configured audience                   WRONG_AUDIENCE
//   required scopes covered by the token's scopes          INSUFFICIENT_SCOPE
//   revocation view fresh within maxStalenessMs            STALE
//   token, lineage, agent, chain, task, app not revoked    REVOKED
//   cnf.jkt: a proof of possession for this call           PROOF_REQUIRED / PROOF_INVALID / PROOF_REPLAYED
//
// STALE comes after the checks that need no revocation data, so a token
// that is expired or for another audience is reported as such even while
// the stream is down; everything that would otherwise pass is refused.
// The proof comes last so that only a proof of an otherwise acceptable call
// takes a place in the replay cache.
//
// Signatures are checked with node:crypto directly (like the broker), the
// algorithm always the key's, never the token's. Hostile input never
// throws: every failure is a result.

import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from "node:crypto";
import type { JSONWebKeySet, JWK } from "jose";
import { optionalStringList, requiredObject, requiredString } from "./args.js";
import { BrokerClient } from "./client.js";
import { isHighS } from "./low-s.js";
import { PROOF_TYPE, tokenHash } from "./proof.js";
import type { LineageFacts, RevocationFacts } from "./subscriber.js";

/** Why a token was refused. */
export type VerifyFailureReason =
  | "MALFORMED"
  | "ALGORITHM_NOT_ALLOWED"
  | "WRONG_TYPE"
  | "UNKNOWN_KEY"
  | "BAD_SIGNATURE"
  | "WRONG_ISSUER"
  | "EXPIRED"
  | "NOT_YET_VALID"
  | "WRONG_AUDIENCE"
  | "INSUFFICIENT_SCOPE"
  | "STALE"
  | "REVOKED"
  | "PROOF_REQUIRED"
  | "PROOF_INVALID"
  | "PROOF_REPLAYED";

/** The claims of a verified token, decoded. */
export interface VerifiedClaims extends RevocationFacts {
  /** `jti`. */
  readonly tokenId: string;
  /** `sub`: the agent's id. */
  readonly agentId: string;
  /** `client_id`: the app that issued the chain's root. */
  readonly appId: string;
  /** The task id. */
  readonly taskId: string;
  /** The orchestration run; null when none. */
  readonly orchestrationId: string | null;
  /** The human the work is done for; null when none. */
  readonly humanPrincipal: string | null;
  /** `scope`, split on spaces. */
  readonly scopes: readonly string[];
  /** `aud`. */
  readonly audiences: readonly string[];
  /** `iss`. */
  readonly issuer: string;
  /** `iat`, in ms. */
  readonly issuedAtMs: number;
  /** `nbf`, in ms. */
  readonly notBeforeMs: number;
  /** `exp`, in ms. */
  readonly expiresAtMs: number;
  /** The ancestors, root first; empty for a token issued by an app. */
  readonly lineage: readonly LineageFacts[];
  /** The delegation depth: the number of ancestors. */
  readonly depth: number;
  /** When the chain's root was issued, in ms (`root_iat`: a renewed token keeps its line's start). */
  readonly rootIssuedAtMs: number;
  /** `cnf.jkt`: the thumbprint of the key the token is bound to; null when not bound. */
  readonly keyThumbprint: string | null;
  /** `apr`: the human approval the token was minted under; null when none was needed. */
  readonly approval: ApprovalFacts | null;
  /** `rnw`: the token this one replaced through Renew; null for an issued or delegated token. */
  readonly renewedFromTokenId: string | null;
}

/** Claim `apr`: the approval a token was minted under. */
export interface ApprovalFacts {
  /** `apr.id`: the approval's id (`apr_...`). */
  readonly approvalId: string;
  /** `apr.by`: the approvers who approved it, in the order they approved. */
  readonly approverIds: readonly string[];
}

/** The verdict on a token. */
export type VerifyResult =
  | { readonly ok: true; readonly claims: VerifiedClaims }
  | {
      readonly ok: false;
      readonly reason: VerifyFailureReason;
      /** A short explanation for logs. Never contains the token. */
      readonly detail: string;
      /** Set when the signature verified (a revoked or expired token, say); null otherwise. */
      readonly claims: VerifiedClaims | null;
    };

/** What the verifier needs of a revocation view; a RevocationSubscriber is one. */
export interface RevocationView {
  /** Whether the token is revoked. */
  isRevoked(facts: RevocationFacts): boolean;
  /** The local time (ms) up to which the view is known complete; null when never. */
  readonly freshAtMs: number | null;
  /** Subscribes to key-set changes, when the view carries them (the revocation stream does). */
  onKeySet?(fn: (jwks: JSONWebKeySet) => void): () => void;
}

/** Options of {@link TokenVerifier}. */
export interface TokenVerifierOptions {
  /** This resource server's name: a token is accepted only if its `aud` contains it. */
  readonly audience: string;
  /** The broker's issuer (`BATON_ISSUER`, default `https://baton.local`). */
  readonly issuer: string;
  /** Where the key set comes from: a BrokerClient (GetKeySet) or a function returning a JWK set. */
  readonly keys: BrokerClient | (() => Promise<JSONWebKeySet>);
  /** The revocation view, normally a started RevocationSubscriber. Its key-set changes are followed. */
  readonly revocations: RevocationView;
  /** Refuse everything (STALE) when the view is older than this, in ms. Default 15000. */
  readonly maxStalenessMs?: number;
  /**
   * Clock-skew leeway on exp and nbf, in ms: how far this server's clock may
   * be from the broker's. Default 5000: a token is refused at most 5 s after
   * its exp.
   */
  readonly leewayMs?: number;
  /**
   * How far a proof's iat may be from now, in ms: skew between the agent's
   * clock and this server's. Default 30000, as the broker's proof window;
   * not tied to leewayMs.
   */
  readonly proofWindowMs?: number;
  /** The most proofs remembered for replay detection; past it new proofs are refused. Default 100000. */
  readonly replayCacheSize?: number;
  /** An unknown kid refetches the key set at most once per this many ms. Default 30000. */
  readonly keyRefetchIntervalMs?: number;
  /** The clock, in ms since the epoch. Default Date.now. */
  readonly now?: () => number;
}

/** Per-call options of {@link TokenVerifier.verify}. */
export interface VerifyOptions {
  /** Scopes this call needs; each must be covered by some scope of the token. */
  readonly requiredScopes?: readonly string[];
  /** The proof of possession sent with the call (`baton-proof`), if any. */
  readonly proof?: string | undefined;
  /**
   * What the proof's `htm` must be for this call: the full gRPC method
   * (`/pkg.Service/Method`) or, over HTTP, `"<METHOD> <path>"` (see middleware.ts).
   * Without it a key-bound token is refused (PROOF_INVALID).
   */
  readonly htm?: string;
}

type Algorithm = "ES256" | "EdDSA";
interface VerifyKey {
  readonly alg: Algorithm;
  readonly key: KeyObject;
}

const MAX_TOKEN_LENGTH = 16 * 1024;
const MAX_PROOF_LENGTH = 4096;
const TOKEN_TYPE = "at+jwt";
const SEGMENT = /^[A-Za-z0-9_-]+$/;
// P-256 (r || s) and Ed25519 signatures are both 64 bytes: 86 base64url
// characters, the last with its two unused bits zero. Only that one spelling
// is accepted, so a token has a single string form (as at the broker).
const SIGNATURE = /^[A-Za-z0-9_-]{85}[AQgw]$/;

type Failure = Extract<VerifyResult, { ok: false }>;
const fail = (reason: VerifyFailureReason, detail: string, claims: VerifiedClaims | null = null): Failure => ({ ok: false, reason, detail, claims });

/**
 * Verifies Baton access tokens offline for one resource server.
 *
 * @example
 * ```ts
 * const verifier = new TokenVerifier({ audience: "ehr-api", issuer: "https://baton.example", keys: broker, revocations: subscriber });
 * const r = await verifier.verify(token, { requiredScopes: ["read:records:P-1"], proof, htm: "GET /records/P-1" });
 * if (!r.ok) return deny(r.reason);
 * ```
 */
export class TokenVerifier {
  readonly #opts: TokenVerifierOptions;
  readonly #now: () => number;
  readonly #maxStalenessMs: number;
  readonly #leewayMs: number;
  readonly #proofWindowMs: number;
  readonly #replayCacheSize: number;
  readonly #refetchMs: number;
  readonly #fetch: () => Promise<JSONWebKeySet>;
  #keys = new Map<string, VerifyKey>();
  #loaded = false;
  #lastFetchMs = Number.NEGATIVE_INFINITY;
  #fetching: Promise<void> | null = null;
  /** `jkt.jti` -> when the proof's window closes (ms); insertion order is roughly expiry order. */
  readonly #seenProofs = new Map<string, number>();
  readonly #unsubscribe: (() => void) | undefined;

  /** @throws TypeError on an invalid option */
  constructor(options: TokenVerifierOptions) {
    requiredObject(options, "options");
    // A list of audiences here would match no token: this server has one name.
    if (!requiredString(options.audience, "options.audience")) throw new TypeError("audience is required");
    if (!requiredString(options.issuer, "options.issuer")) throw new TypeError("issuer is required");
    this.#opts = options;
    this.#now = options.now ?? Date.now;
    this.#maxStalenessMs = nonNegative(options.maxStalenessMs ?? 15_000, "maxStalenessMs");
    this.#leewayMs = nonNegative(options.leewayMs ?? 5_000, "leewayMs");
    this.#proofWindowMs = nonNegative(options.proofWindowMs ?? 30_000, "proofWindowMs");
    this.#replayCacheSize = nonNegative(options.replayCacheSize ?? 100_000, "replayCacheSize");
    this.#refetchMs = nonNegative(options.keyRefetchIntervalMs ?? 30_000, "keyRefetchIntervalMs");
    const keys = options.keys;
    this.#fetch = keys instanceof BrokerClient ? () => keys.getKeySet() : keys;
    this.#unsubscribe = options.revocations.onKeySet?.((jwks) => this.setKeySet(jwks));
  }

  /** Fetches the key set now (for example at start, to fail fast). @throws the fetch's error */
  async loadKeys(): Promise<void> {
    this.#lastFetchMs = this.#now();
    this.setKeySet(await this.#fetch());
  }

  /** Replaces the key set. Keys that are not ES256/EdDSA signing keys of the matching type are ignored. */
  setKeySet(jwks: JSONWebKeySet): void {
    const keys = new Map<string, VerifyKey>();
    for (const jwk of Array.isArray(jwks?.keys) ? jwks.keys : []) {
      const k = importKey(jwk);
      if (k && typeof jwk.kid === "string") keys.set(jwk.kid, k);
    }
    this.#keys = keys;
    this.#loaded = true;
  }

  /** Stops following the revocation view's key-set changes. */
  close(): void {
    this.#unsubscribe?.();
  }

  /**
   * Verifies a token for one call. Never throws on a hostile token or proof.
   *
   * @throws TypeError when `requiredScopes` is not a list of strings or holds a malformed scope (a caller error, not the token's)
   */
  async verify(token: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    requiredObject(options, "options");
    const required = optionalStringList(options.requiredScopes, "options.requiredScopes").map((s) => {
      const p = parseScope(s);
      if (!p) throw new TypeError(`malformed required scope: ${s.slice(0, 128)}`);
      return p;
    });
    try {
      return await this.#verify(token, required, options);
    } catch {
      // Defence in depth: whatever slipped past the checks above is a refusal, not a crash.
      return fail("MALFORMED", "the token could not be checked");
    }
  }

  async #verify(token: string, required: readonly Scope[], options: VerifyOptions): Promise<VerifyResult> {
    if (typeof token !== "string" || token.length === 0 || token.length > MAX_TOKEN_LENGTH) return fail("MALFORMED", "not a token of acceptable length");
    const parts = token.split(".");
    if (parts.length !== 3 || !SEGMENT.test(parts[0]!) || !SEGMENT.test(parts[1]!)) return fail("MALFORMED", "not a compact JWS");
    const header = decodeJson(parts[0]!);
    if (!header) return fail("MALFORMED", "the header is not a JSON object");
    const alg = header.alg;
    if (alg !== "ES256" && alg !== "EdDSA") return fail("ALGORITHM_NOT_ALLOWED", "alg must be ES256 or EdDSA");
    if (header.typ !== TOKEN_TYPE) return fail("WRONG_TYPE", `typ must be ${TOKEN_TYPE}`);
    if (header.crit !== undefined) return fail("MALFORMED", "crit is not supported");
    if (typeof header.kid !== "string") return fail("UNKNOWN_KEY", "no kid");
    const key = await this.#key(header.kid);
    if (!key) return fail("UNKNOWN_KEY", "kid names no key of the broker");
    // Pinned: the key's own algorithm, whatever the header says.
    if (alg !== key.alg) return fail("ALGORITHM_NOT_ALLOWED", "alg is not the key's algorithm");
    if (!verifySignature(token, key)) return fail("BAD_SIGNATURE", "the signature does not verify");
    const claims = parseClaims(decodeJson(parts[1]!));
    if (!claims) return fail("MALFORMED", "claims are missing or of the wrong type");

    const now = this.#now();
    if (claims.issuer !== this.#opts.issuer) return fail("WRONG_ISSUER", "iss is not the configured issuer", claims);
    if (now >= claims.expiresAtMs + this.#leewayMs) return fail("EXPIRED", "exp has passed", claims);
    if (now + this.#leewayMs < claims.notBeforeMs) return fail("NOT_YET_VALID", "nbf is in the future", claims);
    if (!claims.audiences.includes(this.#opts.audience)) return fail("WRONG_AUDIENCE", `not for ${this.#opts.audience}`, claims);
    const granted = claims.scopes.map(parseScope).filter((s): s is Scope => s !== null);
    const missing = required.filter((r) => !granted.some((g) => covers(g, r)));
    if (missing.length > 0) return fail("INSUFFICIENT_SCOPE", `not covered: ${missing.map(formatScope).join(" ")}`, claims);

    const fresh = this.#opts.revocations.freshAtMs;
    if (fresh === null || now - fresh > this.#maxStalenessMs) return fail("STALE", "the revocation view is older than allowed", claims);
    if (this.#opts.revocations.isRevoked(claims)) return fail("REVOKED", "the token, an ancestor, its agent, chain, task or app was revoked", claims);

    if (claims.keyThumbprint !== null) {
      if (options.proof === undefined || options.proof === "") return fail("PROOF_REQUIRED", "the token is key-bound; send a proof of possession", claims);
      // A resource server that forgot to say which call this is cannot check a proof: refuse.
      if (options.htm === undefined) return fail("PROOF_INVALID", "the verifier was not told the call's htm", claims);
      const problem = await this.#checkProof(options.proof, token, claims.keyThumbprint, options.htm, now);
      if (problem) return fail(problem === "replayed" ? "PROOF_REPLAYED" : "PROOF_INVALID", `proof: ${problem}`, claims);
    }
    return { ok: true, claims };
  }

  /** The key for `kid`, refetching the key set (at most once per keyRefetchIntervalMs) when unknown. */
  async #key(kid: string): Promise<VerifyKey | undefined> {
    const known = this.#keys.get(kid);
    if (known) return known;
    if (this.#loaded && this.#now() - this.#lastFetchMs < this.#refetchMs) return undefined;
    if (!this.#fetching) {
      this.#fetching = this.loadKeys()
        .catch(() => {
          // Keep the keys we have; the next unknown kid after the interval tries again.
        })
        .finally(() => {
          this.#fetching = null;
        });
    }
    await this.#fetching;
    return this.#keys.get(kid);
  }

  /** Checks a proof of possession (after RFC 9449, as the broker does); returns the problem, or null when valid. */
  async #checkProof(proof: string, token: string, thumbprint: string, htm: string, now: number): Promise<string | null> {
    const parts = proof.split(".");
    if (proof.length > MAX_PROOF_LENGTH || parts.length !== 3 || !SEGMENT.test(parts[0]!) || !SEGMENT.test(parts[1]!)) return "not a compact JWS";
    const header = decodeJson(parts[0]!);
    const claims = decodeJson(parts[1]!);
    if (!header || !claims) return "not a compact JWS";
    if (header.typ !== PROOF_TYPE) return `typ must be ${PROOF_TYPE}`;
    if (header.alg !== "ES256" && header.alg !== "EdDSA") return "alg must be ES256 or EdDSA";
    const jwk = header.jwk as JWK | undefined;
    if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk) || "d" in jwk) return "the header must carry the public jwk";
    const key = importKey({ ...jwk, alg: header.alg });
    if (!key) return "jwk is not a valid public key for alg";
    if (jwkThumbprint(jwk) !== thumbprint) return "signed by a key other than the token's";
    if (!verifySignature(proof, key)) return "bad signature";
    if (claims.htm !== htm) return "made for another method";
    if (claims.ath !== tokenHash(token)) return "made for another token";
    if (typeof claims.iat !== "number" || !Number.isFinite(claims.iat)) return "iat is missing";
    const issuedAtMs = claims.iat * 1000;
    if (Math.abs(now - issuedAtMs) > this.#proofWindowMs) return "stale or future iat";
    if (typeof claims.jti !== "string" || claims.jti.length < 16 || claims.jti.length > 128) return "jti must be 16 to 128 characters";
    return this.#remember(`${thumbprint}.${claims.jti}`, issuedAtMs + this.#proofWindowMs, now);
  }

  /** Records a proof as used until `untilMs`; "replayed" if seen, a problem if the cache is full. */
  #remember(id: string, untilMs: number, now: number): string | null {
    const seen = this.#seenProofs.get(id);
    if (seen !== undefined && seen >= now) return "replayed";
    // Windows are all the same length, so the oldest entries come first.
    for (const [k, until] of this.#seenProofs) {
      if (until >= now) break;
      this.#seenProofs.delete(k);
    }
    if (this.#seenProofs.size >= this.#replayCacheSize) {
      for (const [k, until] of this.#seenProofs) if (until < now) this.#seenProofs.delete(k);
      // Fail closed: forgetting a live proof would let it be replayed.
      if (this.#seenProofs.size >= this.#replayCacheSize) return "too many recent proofs to track; retry";
    }
    this.#seenProofs.delete(id);
    this.#seenProofs.set(id, untilMs);
    return null;
  }
}

function nonNegative(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0) throw new TypeError(`${name} must be a non-negative number`);
  return v;
}

function decodeJson(segment: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(Buffer.from(segment, "base64url").toString("utf8")) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** A public ES256 (EC P-256) or EdDSA (Ed25519) key with its `alg`; null for anything else. */
function importKey(jwk: JWK): VerifyKey | null {
  if (typeof jwk !== "object" || jwk === null || "d" in jwk) return null;
  if (jwk.use !== undefined && jwk.use !== "sig") return null;
  const { x, y } = jwk;
  if (typeof x !== "string") return null;
  let pub: JWK;
  let alg: Algorithm;
  if (jwk.alg === "ES256" && jwk.kty === "EC" && jwk.crv === "P-256" && typeof y === "string") [alg, pub] = ["ES256", { kty: "EC", crv: "P-256", x, y }];
  else if (jwk.alg === "EdDSA" && jwk.kty === "OKP" && jwk.crv === "Ed25519") [alg, pub] = ["EdDSA", { kty: "OKP", crv: "Ed25519", x }];
  else return null;
  try {
    return { alg, key: createPublicKey({ key: pub as import("node:crypto").JsonWebKey, format: "jwk" }) };
  } catch {
    return null;
  }
}

/** RFC 7638 SHA-256 thumbprint of an EC or OKP public key: the required members, in lexical order. */
function jwkThumbprint(jwk: JWK): string {
  const members = jwk.kty === "EC" ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash("sha256").update(JSON.stringify(members), "utf8").digest("base64url");
}

function verifySignature(jws: string, k: VerifyKey): boolean {
  const dot = jws.lastIndexOf(".");
  const sigText = jws.slice(dot + 1);
  if (!SIGNATURE.test(sigText)) return false;
  const data = Buffer.from(jws.slice(0, dot));
  const sig = Buffer.from(sigText, "base64url");
  // The broker signs ES256 low-S only: the high-S twin is a malleated copy, refused.
  if (k.alg === "ES256" && isHighS(sig)) return false;
  try {
    return k.alg === "ES256" ? cryptoVerify("sha256", data, { key: k.key, dsaEncoding: "ieee-p1363" }, sig) : cryptoVerify(null, data, k.key, sig);
  } catch {
    return false;
  }
}

const isString = (v: unknown): v is string => typeof v === "string" && v.length > 0;
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v) && v > 0;

/** The claims as the broker signs them (server/crypto/tokens.ts), or null when any is missing or mistyped. */
function parseClaims(p: Record<string, unknown> | null): VerifiedClaims | null {
  if (!p) return null;
  if (!isString(p.iss) || !isString(p.sub) || !isString(p.jti) || !isString(p.client_id) || !isString(p.task_id)) return null;
  if (!isString(p.scope) || !isTime(p.iat) || !isTime(p.nbf) || !isTime(p.exp)) return null;
  const aud = typeof p.aud === "string" ? [p.aud] : p.aud;
  if (!Array.isArray(aud) || aud.length === 0 || !aud.every(isString)) return null;
  if (p.orchestration_id !== undefined && !isString(p.orchestration_id)) return null;
  if (p.human !== undefined && !isString(p.human)) return null;
  if (p.rnw !== undefined && !isString(p.rnw)) return null;
  // Delegated tokens always carry root_iat; a renewed root token carries it too.
  if (p.root_iat !== undefined && !isTime(p.root_iat)) return null;
  const lineage: LineageFacts[] = [];
  if (p.lineage !== undefined) {
    if (!Array.isArray(p.lineage) || !isTime(p.root_iat)) return null;
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
  let approval: ApprovalFacts | null = null;
  if (p.apr !== undefined) {
    const { id, by } = (typeof p.apr === "object" && p.apr !== null ? p.apr : {}) as { id?: unknown; by?: unknown };
    if (!isString(id) || !Array.isArray(by) || !by.every(isString)) return null;
    approval = { approvalId: id, approverIds: by as string[] };
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
    audiences: aud as string[],
    issuer: p.iss,
    issuedAtMs,
    notBeforeMs: p.nbf * 1000,
    expiresAtMs: p.exp * 1000,
    lineage,
    depth: lineage.length,
    rootIssuedAtMs: p.root_iat !== undefined ? Math.round(p.root_iat * 1000) : issuedAtMs,
    keyThumbprint,
    approval,
    renewedFromTokenId: p.rnw ?? null,
  };
}

/** A scope `action:resource:identifier` split on its first two colons (DESIGN §3); `*` as a segment means any value. */
interface Scope {
  readonly action: string;
  readonly resource: string;
  readonly identifier: string;
}

function parseScope(text: string): Scope | null {
  const first = text.indexOf(":");
  const second = first < 0 ? -1 : text.indexOf(":", first + 1);
  if (first <= 0 || second <= first + 1 || second === text.length - 1) return null;
  return { action: text.slice(0, first), resource: text.slice(first + 1, second), identifier: text.slice(second + 1) };
}

const formatScope = (s: Scope): string => `${s.action}:${s.resource}:${s.identifier}`;

/** `granted` covers `requested` when each of its segments is `*` or equal; a requested `*` only by `*`. */
const segmentCovers = (granted: string, requested: string): boolean => granted === "*" || granted === requested;
const covers = (g: Scope, r: Scope): boolean =>
  segmentCovers(g.action, r.action) && segmentCovers(g.resource, r.resource) && segmentCovers(g.identifier, r.identifier);
