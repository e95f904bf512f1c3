// Proof of possession for key-bound tokens, after DPoP (RFC 9449) adapted to
// gRPC metadata (`baton-proof`). A proof is a JWT signed by the agent's key:
//
//   header: typ "baton-proof+jwt", alg ES256 or EdDSA, jwk = the public key
//   claims: htm = full gRPC method ("/baton.v1.BrokerService/Delegate"),
//           ath = base64url(SHA-256(token)), iat (seconds), jti (unique)
//
// It proves the caller holds the private key the token is bound to (cnf.jkt)
// and binds that proof to one method, one token and one moment. Replay is the
// caller's to check with `jti` (see service/proofs.ts).

import type { JWK } from "jose";
import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { jwkThumbprint } from "./agent-keys.js";
import { ProofInvalidError } from "../domain/errors.js";
import { verifyCompact } from "./jws.js";

export const PROOF_TYPE = "baton-proof+jwt";
const MAX_PROOF_LENGTH = 4096;

/** Parsed agent public keys by thumbprint: the same agent proves many times. */
const keyCache = new Map<string, KeyObject>();
const KEY_CACHE_SIZE = 10_000;

export interface ProofCheck {
  readonly method: string;
  readonly token: string;
  /** The token's cnf.jkt. */
  readonly thumbprint: string;
  readonly nowMs: number;
  /** How far iat may be from now. */
  readonly windowMs: number;
}

export interface VerifiedProof {
  readonly jti: string;
  readonly issuedAtMs: number;
}

export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("base64url");
}

function part(text: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** Verifies a proof; throws ProofInvalidError saying what is wrong. */
export async function verifyProof(proof: string, c: ProofCheck): Promise<VerifiedProof> {
  const parts = proof.split(".");
  if (proof.length > MAX_PROOF_LENGTH || parts.length !== 3) throw new ProofInvalidError("not a compact JWS");
  const header = part(parts[0]!);
  const claims = part(parts[1]!);
  if (!header || !claims) throw new ProofInvalidError("not a compact JWS");
  if (header.typ !== PROOF_TYPE) throw new ProofInvalidError(`typ must be ${PROOF_TYPE}`);
  const alg = header.alg;
  if (alg !== "ES256" && alg !== "EdDSA") throw new ProofInvalidError("alg must be ES256 or EdDSA");
  const jwk = header.jwk as JWK | undefined;
  if (typeof jwk !== "object" || jwk === null || "d" in jwk) throw new ProofInvalidError("header must carry the public jwk");
  const expectedKty = alg === "ES256" ? { kty: "EC", crv: "P-256" } : { kty: "OKP", crv: "Ed25519" };
  if (jwk.kty !== expectedKty.kty || jwk.crv !== expectedKty.crv) throw new ProofInvalidError("jwk does not match alg");
  const publicJwk: JWK = alg === "ES256" ? { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y } : { kty: "OKP", crv: "Ed25519", x: jwk.x };
  if (typeof publicJwk.x !== "string" || (alg === "ES256" && typeof publicJwk.y !== "string")) {
    throw new ProofInvalidError("jwk is not a valid public key");
  }
  // Only the key the token is bound to is ever parsed.
  const thumbprint = jwkThumbprint(publicJwk);
  if (thumbprint !== c.thumbprint) throw new ProofInvalidError("signed by a key other than the one the token is bound to");
  let key = keyCache.get(thumbprint);
  if (!key) {
    try {
      key = createPublicKey({ key: publicJwk as import("node:crypto").JsonWebKey, format: "jwk" });
    } catch {
      throw new ProofInvalidError("jwk is not a valid public key");
    }
    if (keyCache.size >= KEY_CACHE_SIZE) keyCache.clear();
    keyCache.set(thumbprint, key);
  }
  if (!verifyCompact(proof, key, alg)) throw new ProofInvalidError("bad signature");
  if (claims.htm !== c.method) throw new ProofInvalidError("made for another method");
  if (claims.ath !== tokenHash(c.token)) throw new ProofInvalidError("made for another token");
  if (typeof claims.iat !== "number" || !Number.isFinite(claims.iat)) throw new ProofInvalidError("iat is missing");
  const issuedAtMs = claims.iat * 1000;
  if (Math.abs(c.nowMs - issuedAtMs) > c.windowMs) throw new ProofInvalidError("stale or future iat");
  if (typeof claims.jti !== "string" || claims.jti.length < 16 || claims.jti.length > 128) {
    throw new ProofInvalidError("jti must be 16 to 128 characters");
  }
  return { jti: claims.jti, issuedAtMs };
}
