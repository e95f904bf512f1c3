// The claims a renewed token adds (issue 8): `rnw` names the token it
// replaced, and `root_iat` keeps the start of its chain even without a
// lineage (a renewed root), so task and app revocations still cover it.
// Both round-trip; a mistyped one is MALFORMED; tokens that were not renewed
// carry neither.

import { beforeAll, describe, expect, it } from "vitest";
import { signCompact } from "../helpers/jws.js";
import { generateSigningKey, KeyRing, type LoadedKey, loadKey } from "../../server/crypto/keyring.js";
import { MasterKey } from "../../server/crypto/master-key.js";
import { signToken, TOKEN_TYPE, verifyToken } from "../../server/crypto/tokens.js";
import type { TokenClaims } from "../../server/domain/tokens.js";
import { rootClaims, TEST_ISSUER as ISSUER } from "../helpers/claims.js";

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0) + 456;
const master = MasterKey.fromBase64(MasterKey.generate());
let key: LoadedKey;
let ring: KeyRing;

beforeAll(async () => {
  key = await loadKey(await generateSigningKey("ES256", master, "active", new Date(T0)), master);
  ring = new KeyRing([key]);
});

const claims = (over: Partial<TokenClaims> = {}): TokenClaims => rootClaims(T0, { tokenId: "tok_new", ...over });

const opts = { issuer: ISSUER, nowMs: T0 + 1000, leewayMs: 0 };
const payloadOf = (t: string) => JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;

describe("renewed token claims", () => {
  it("a renewed root carries rnw and root_iat, and both read back", async () => {
    const c = claims({ renewedFromTokenId: "tok_old", rootIssuedAtMs: T0 - 3_600_123 });
    const t = await signToken(c, key);
    expect(payloadOf(t)).toMatchObject({ rnw: "tok_old", root_iat: (T0 - 3_600_123) / 1000 });
    expect(payloadOf(t).lineage).toBeUndefined();
    const v = await verifyToken(t, ring, opts);
    expect(v.status).toBe("VALID");
    expect(v.claims).toEqual(c);
  });

  it("an issued token carries neither", async () => {
    const t = await signToken(claims(), key);
    expect(payloadOf(t).rnw).toBeUndefined();
    expect(payloadOf(t).root_iat).toBeUndefined();
    const v = await verifyToken(t, ring, opts);
    expect(v.claims).toEqual(claims());
    expect(v.claims!.renewedFromTokenId).toBeUndefined();
  });

  it("a mistyped rnw or root_iat is MALFORMED", async () => {
    const base = payloadOf(await signToken(claims(), key));
    for (const bad of [{ rnw: "" }, { rnw: 7 }, { rnw: ["x"] }, { root_iat: "x" }, { root_iat: -1 }, { root_iat: 1e300 }]) {
      const t = signCompact({ alg: "ES256", typ: TOKEN_TYPE, kid: key.stored.keyId }, JSON.stringify({ ...base, ...bad }), key.privateKey!, "ES256");
      expect((await verifyToken(t, ring, opts)).status, JSON.stringify(bad)).toBe("MALFORMED");
    }
  });
});
