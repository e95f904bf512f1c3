// ES256 signatures in their one accepted form. jose signs with a random S;
// Baton accepts only the low-S twin (s <= n/2) of a P-256 signature, so the
// test helpers that sign with jose normalise here, written apart from the
// broker's own code so the tests check the rule independently.

const N = BigInt("0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");

/** The other valid signature of the same input: s replaced by n - s. */
export function twinSignature(compact: string): string {
  const dot = compact.lastIndexOf(".");
  const sig = Buffer.from(compact.slice(dot + 1), "base64url");
  const s = BigInt(`0x${sig.subarray(32).toString("hex")}`);
  const twin = Buffer.concat([sig.subarray(0, 32), Buffer.from((N - s).toString(16).padStart(64, "0"), "hex")]);
  return `${compact.slice(0, dot + 1)}${twin.toString("base64url")}`;
}

export function isLowS(compact: string): boolean {
  const sig = Buffer.from(compact.slice(compact.lastIndexOf(".") + 1), "base64url");
  return BigInt(`0x${sig.subarray(32).toString("hex")}`) <= N / 2n;
}

/** A compact ES256 JWS with its signature in low-S form. */
export function toLowS(compact: string): string {
  return isLowS(compact) ? compact : twinSignature(compact);
}
