// Agent public keys (JWK) given at issuance: checked to be a real public key
// of an allowed type, and reduced to their RFC 7638 thumbprint (`cnf.jkt`).

import type { JWK } from "jose";
import { createHash, createPublicKey, type JsonWebKey } from "node:crypto";
import { InvalidRequestError } from "../domain/errors.js";
import { MAX_JWK_LENGTH } from "../domain/limits.js";

export interface AgentKey {
  readonly jwk: JWK;
  readonly thumbprint: string;
  readonly algorithm: "ES256" | "EdDSA";
}

const FIELD = "agent_public_key_jwk";

/** RFC 7638 SHA-256 thumbprint of an EC P-256 or OKP Ed25519 public key. */
export function jwkThumbprint(jwk: { kty?: unknown; crv?: unknown; x?: unknown; y?: unknown }): string {
  // The required members only, in lexicographic order, no whitespace.
  const canonical =
    jwk.kty === "EC"
      ? JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
      : JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x });
  return createHash("sha256").update(canonical).digest("base64url");
}

export async function parseAgentKey(text: string): Promise<AgentKey> {
  if (text.length > MAX_JWK_LENGTH) throw new InvalidRequestError(FIELD, `must be at most ${MAX_JWK_LENGTH} characters`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new InvalidRequestError(FIELD, "must be a JSON Web Key (JSON object)");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new InvalidRequestError(FIELD, "must be a JSON Web Key (JSON object)");
  }
  const j = raw as Record<string, unknown>;
  if ("d" in j) throw new InvalidRequestError(FIELD, "must be a public key: never send the private part");
  let jwk: JWK;
  let algorithm: AgentKey["algorithm"];
  if (j.kty === "EC" && j.crv === "P-256" && typeof j.x === "string" && typeof j.y === "string") {
    jwk = { kty: "EC", crv: "P-256", x: j.x, y: j.y };
    algorithm = "ES256";
  } else if (j.kty === "OKP" && j.crv === "Ed25519" && typeof j.x === "string") {
    jwk = { kty: "OKP", crv: "Ed25519", x: j.x };
    algorithm = "EdDSA";
  } else {
    throw new InvalidRequestError(FIELD, "must be an EC P-256 or OKP Ed25519 public key");
  }
  try {
    // Parsing checks the point is on the curve (and the length for Ed25519).
    createPublicKey({ key: jwk as JsonWebKey, format: "jwk" });
  } catch {
    throw new InvalidRequestError(FIELD, "is not a valid public key");
  }
  return { jwk, thumbprint: jwkThumbprint(jwk), algorithm };
}
