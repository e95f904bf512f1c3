// ES256 signatures in their one accepted form. An ECDSA signature (r, s) has
// a twin (r, n - s) that verifies just as well; Baton signs only the low-S
// form (s <= n/2) and refuses the other, so a token or proof has a single
// string form (no malleated copy slips past a replay or revocation check
// keyed on the string). The broker refuses a high-S proof as PROOF_INVALID.

/** The order of the P-256 group. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const P256_HALF_N = P256_N >> 1n;

const sOf = (sig: Uint8Array): bigint => BigInt(`0x${Buffer.from(sig.subarray(32, 64)).toString("hex") || "0"}`);

/** True when the s half of a 64-byte P-256 signature (r || s) is above n/2. */
export function isHighS(sig: Uint8Array): boolean {
  return sOf(sig) > P256_HALF_N;
}

/** The low-S form of a 64-byte P-256 signature (r || s): s replaced by n - s when above n/2. */
export function toLowS(sig: Uint8Array): Buffer {
  const s = sOf(sig);
  const out = Buffer.from(sig);
  if (s > P256_HALF_N) Buffer.from((P256_N - s).toString(16).padStart(64, "0"), "hex").copy(out, 32);
  return out;
}
