// Compact JWS with node:crypto directly. jose (v6) signs and verifies through
// WebCrypto, whose per-call overhead was ~30% of the broker's CPU on the
// issuance path (a V8 profile of the broker, now `LOAD_PROFILE`); this does the same two
// operations for the two algorithms Baton allows. The algorithm is always
// the key's own, never read from the token.

import { type KeyObject, sign, verify } from "node:crypto";
import type { SigningAlgorithm } from "./keyring.js";

const ES256 = { dsaEncoding: "ieee-p1363" } as const;

// The order of P-256, and half of it. An ECDSA signature (r, s) has a twin
// (r, n - s) that verifies just as well; Baton signs only the low-S form
// (s <= n/2) and refuses the other, so a token or proof has exactly one
// string form (no malleated copy slips past a replay or revocation check
// keyed on the string).
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_N = P256_N >> 1n;

const P256_HALF_N_BYTES = Buffer.from(P256_HALF_N.toString(16).padStart(64, "0"), "hex");

const toBigInt = (b: Uint8Array): bigint => BigInt(`0x${Buffer.from(b).toString("hex") || "0"}`);

/** True when the s half of a 64-byte P-256 signature is in the upper half of the group. */
export function isHighS(sig: Uint8Array): boolean {
  return Buffer.compare(sig.subarray(32, 64), P256_HALF_N_BYTES) > 0;
}

/** The low-S twin of a 64-byte P-256 signature (the same bytes when already low). */
export function lowS(sig: Buffer): Buffer {
  if (!isHighS(sig)) return sig;
  const out = Buffer.from(sig);
  Buffer.from((P256_N - toBigInt(sig.subarray(32, 64))).toString(16).padStart(64, "0"), "hex").copy(out, 32);
  return out;
}

/** The part of a compact JWS that is signed: base64url(header) "." base64url(payload). */
export function signingInput(header: object, payload: Uint8Array | string): string {
  return `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(payload).toString("base64url")}`;
}

/** The signature over `data`, as a JWS carries it (P-256: r || s, low S). */
export function signBytes(data: Uint8Array, key: KeyObject, alg: SigningAlgorithm): Buffer {
  return alg === "ES256" ? lowS(sign("sha256", data, { key, ...ES256 })) : sign(null, data, key);
}

/** The payload bytes when the signature verifies with `key` under `alg`; null otherwise. */
export function verifyCompact(token: string, key: KeyObject, alg: SigningAlgorithm): Buffer | null {
  const dot1 = token.indexOf(".");
  const dot2 = token.lastIndexOf(".");
  if (dot1 <= 0 || dot2 === dot1) return null;
  // P-256 signatures are exactly 64 bytes (r || s), Ed25519 likewise: 86
  // base64url characters, the last one with its two unused bits zero.
  // Node's decoder is lenient ('+', '=', stray bits), so only the one
  // canonical spelling is accepted: a token has exactly one string form.
  const sigText = token.slice(dot2 + 1);
  if (!/^[A-Za-z0-9_-]{85}[AQgw]$/.test(sigText)) return null;
  const data = Buffer.from(token.slice(0, dot2));
  const sig = Buffer.from(sigText, "base64url");
  if (alg === "ES256" && isHighS(sig)) return null;
  try {
    const ok = alg === "ES256" ? verify("sha256", data, { key, ...ES256 }, sig) : verify(null, data, key, sig);
    return ok ? Buffer.from(token.slice(dot1 + 1, dot2), "base64url") : null;
  } catch {
    return null;
  }
}
