// Claim `apr` (issue 8): a token minted under an approval carries the
// approval id and its approvers; the claim round-trips, is covered by the
// signature, and a malformed one makes the token MALFORMED. A token without
// it decodes with no approval.

import { beforeAll, describe, expect, it } from "vitest";
import { signCompact } from "../helpers/jws.js";
import { generateSigningKey, KeyRing, type LoadedKey, loadKey } from "../../server/crypto/keyring.js";
import { MasterKey } from "../../server/crypto/master-key.js";
import { signToken, TOKEN_TYPE, verifyToken } from "../../server/crypto/tokens.js";
import type { TokenClaims } from "../../server/domain/tokens.js";
import { rootClaims, TEST_ISSUER as ISSUER } from "../helpers/claims.js";

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const master = MasterKey.fromBase64(MasterKey.generate());
let key: LoadedKey;
let ring: KeyRing;

const claims = (over: Partial<TokenClaims> = {}): TokenClaims =>
  rootClaims(T0, { humanPrincipal: "dr-who", scopes: ["write:prescriptions:P-1042"], audiences: ["ehr-api"], ...over });
const opts = { issuer: ISSUER, nowMs: T0 + 1000, leewayMs: 0 };

beforeAll(async () => {
  key = await loadKey(await generateSigningKey("ES256", master, "active", new Date(T0)), master);
  ring = new KeyRing([key]);
});

describe("claim apr", () => {
  it("round-trips the approval id and approvers, in order", async () => {
    const c = claims({ approval: { approvalId: "apr_X", approverIds: ["apv_B", "apv_A"] } });
    const token = await signToken(c, key);
    const payload = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
    expect(payload.apr).toEqual({ id: "apr_X", by: ["apv_B", "apv_A"] });
    const v = await verifyToken(token, ring, opts);
    expect(v.status).toBe("VALID");
    expect(v.claims?.approval).toEqual({ approvalId: "apr_X", approverIds: ["apv_B", "apv_A"] });
  });

  it("is absent from a token minted without approval", async () => {
    const token = await signToken(claims(), key);
    expect(JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8"))).not.toHaveProperty("apr");
    const v = await verifyToken(token, ring, opts);
    expect(v.claims?.approval ?? null).toBeNull();
  });

  it("makes a properly signed token with a malformed apr MALFORMED", async () => {
    const base = JSON.parse(Buffer.from((await signToken(claims(), key)).split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
    for (const apr of [null, "apr_X", { id: "" , by: [] }, { id: "apr_X" }, { id: "apr_X", by: [1] }, { id: 5, by: [] }]) {
      const t = signCompact({ alg: "ES256", typ: TOKEN_TYPE, kid: key.stored.keyId }, JSON.stringify({ ...base, apr }), key.privateKey!, "ES256");
      expect((await verifyToken(t, ring, opts)).status, JSON.stringify(apr)).toBe("MALFORMED");
    }
  });
});
