// Proof of possession for key-bound tokens (server/crypto/proofs.ts, after
// DPoP). Proofs are built here with jose's SignJWT straight from the
// documented shape — header typ "baton-proof+jwt", alg ES256/EdDSA, jwk = the
// public key; claims htm, ath = base64url(SHA-256(token)), iat, jti — so the
// tests also check that shape independently. A proof made with the bound key
// for the right method and token verifies; anything else (wrong method,
// other token, other key, stale or future iat, missing or short jti, wrong
// typ, alg none, a private `d` in the header jwk, garbage) is a
// ProofInvalidError, never some other exception.

import fc from "fast-check";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { createHash, generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { PROOF_TYPE, tokenHash, verifyProof } from "../../server/crypto/proofs.js";
import { ProofInvalidError } from "../../server/domain/errors.js";
import { isLowS, toLowS, twinSignature } from "../helpers/low-s.js";

type Alg = "ES256" | "EdDSA";
type Pair = Awaited<ReturnType<typeof generateKeyPair>>;

const METHOD = "/baton.v1.BrokerService/Delegate";
const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ0b2sifQ.c2lnbmF0dXJl-the-bound-token";
const NOW_MS = 1_900_000_000_000;
const WINDOW_MS = 60_000;
const JTI = "proof-jti-0123456789abcdef";

interface Agent {
  readonly alg: Alg;
  readonly pair: Pair;
  readonly jwk: JWK;
  readonly thumbprint: string;
}

async function makeAgent(alg: Alg): Promise<Agent> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(pair.publicKey);
  return { alg, pair, jwk, thumbprint: await calculateJwkThumbprint(jwk, "sha256") };
}

/** ath computed independently of the code under test. */
const ath = (token: string): string => createHash("sha256").update(token).digest("base64url");

interface ProofSpec {
  htm?: string;
  token?: string;
  iatSeconds?: number;
  jti?: string | undefined;
  typ?: string;
  jwk?: JWK;
  signer?: Pair["privateKey"];
}

async function proof(agent: Agent, spec: ProofSpec = {}): Promise<string> {
  const claims: Record<string, unknown> = { htm: spec.htm ?? METHOD, ath: ath(spec.token ?? TOKEN) };
  if (!("jti" in spec)) claims.jti = JTI;
  else if (spec.jti !== undefined) claims.jti = spec.jti;
  const signed = await new SignJWT(claims)
    .setProtectedHeader({ alg: agent.alg, typ: spec.typ ?? PROOF_TYPE, jwk: spec.jwk ?? agent.jwk })
    .setIssuedAt(spec.iatSeconds ?? NOW_MS / 1000)
    .sign(spec.signer ?? agent.pair.privateKey);
  return agent.alg === "ES256" ? toLowS(signed) : signed;
}

const check = (agent: Agent, over: Partial<Parameters<typeof verifyProof>[1]> = {}) => ({
  method: METHOD,
  token: TOKEN,
  thumbprint: agent.thumbprint,
  nowMs: NOW_MS,
  windowMs: WINDOW_MS,
  ...over,
});

async function rejection(p: string, c: Parameters<typeof verifyProof>[1]): Promise<ProofInvalidError> {
  try {
    await verifyProof(p, c);
  } catch (err) {
    expect(err).toBeInstanceOf(ProofInvalidError);
    expect((err as ProofInvalidError).reason).toBe("PROOF_INVALID");
    return err as ProofInvalidError;
  }
  throw new Error("verifyProof accepted the proof");
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");

let es: Agent;
let ed: Agent;
let other: Agent;

beforeAll(async () => {
  es = await makeAgent("ES256");
  ed = await makeAgent("EdDSA");
  other = await makeAgent("ES256");
});

describe("verifyProof accepts", () => {
  it("a proof made with the bound key for this method and token (ES256 and EdDSA)", async () => {
    for (const agent of [es, ed]) {
      const v = await verifyProof(await proof(agent), check(agent));
      expect(v).toEqual({ jti: JTI, issuedAtMs: NOW_MS });
    }
  });

  it("tokenHash is base64url(SHA-256(token)), the documented ath", () => {
    fc.assert(
      fc.property(fc.string(), (t) => {
        expect(tokenHash(t)).toBe(ath(t));
      }),
    );
  });

  it("any iat within the window either side of now", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: -WINDOW_MS / 1000, max: WINDOW_MS / 1000 }), async (offsetS) => {
        const v = await verifyProof(await proof(es, { iatSeconds: NOW_MS / 1000 + offsetS }), check(es));
        expect(v.issuedAtMs).toBe(NOW_MS + offsetS * 1000);
      }),
      { numRuns: 50 },
    );
  });
});

describe("verifyProof refuses with ProofInvalidError", () => {
  it("a proof for another method", async () => {
    const e = await rejection(await proof(es, { htm: "/baton.v1.BrokerService/Revoke" }), check(es));
    expect(e.message).toMatch(/method/);
  });

  it("a proof for another token (ath)", async () => {
    const e = await rejection(await proof(es, { token: `${TOKEN}x` }), check(es));
    expect(e.message).toMatch(/token/);
  });

  it("a proof by a key other than the bound one (thumbprint), whichever jwk it carries", async () => {
    // Honest header, other key: the thumbprint does not match the token's cnf.jkt.
    expect((await rejection(await proof(other), check(es))).message).toMatch(/key other/);
    // The bound key's jwk in the header, signed by another key: the signature fails.
    expect((await rejection(await proof(es, { signer: other.pair.privateKey }), check(es))).message).toMatch(/signature/);
    // The EdDSA key's proof against an ES256-bound token.
    await rejection(await proof(ed), check(es));
  });

  it("the high-S twin of a valid ES256 proof (signature malleability)", async () => {
    for (let n = 0; n < 20; n++) {
      const p = await proof(es, { jti: `${JTI}-${n}` });
      expect(isLowS(p)).toBe(true);
      await verifyProof(p, check(es));
      const e = await rejection(twinSignature(p), check(es));
      expect(e.message).toMatch(/signature/);
    }
  });

  it("a stale or future iat (outside the window)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: WINDOW_MS / 1000 + 1, max: 10 * 86_400 }), fc.boolean(), async (offsetS, future) => {
        const iat = NOW_MS / 1000 + (future ? offsetS : -offsetS);
        const e = await rejection(await proof(es, { iatSeconds: iat }), check(es));
        expect(e.message).toMatch(/iat/);
      }),
      { numRuns: 50 },
    );
  });

  it("a missing, short or over-long jti", async () => {
    for (const jti of [undefined, "", "short", "x".repeat(15), "x".repeat(129)]) {
      const e = await rejection(await proof(es, { jti }), check(es));
      expect(e.message).toMatch(/jti/);
    }
    expect((await verifyProof(await proof(es, { jti: "x".repeat(16) }), check(es))).jti).toBe("x".repeat(16));
  });

  it("a wrong typ (including the access-token typ)", async () => {
    for (const typ of ["at+jwt", "JWT", "dpop+jwt", "BATON-PROOF+JWT"]) {
      await rejection(await proof(es, { typ }), check(es));
    }
  });

  it("alg none, HS256 and an alg that does not match the jwk", async () => {
    const claims = { htm: METHOD, ath: ath(TOKEN), iat: NOW_MS / 1000, jti: JTI };
    const none = `${b64({ alg: "none", typ: PROOF_TYPE, jwk: es.jwk })}.${b64(claims)}.`;
    expect((await rejection(none, check(es))).message).toMatch(/alg/);
    const hs = `${b64({ alg: "HS256", typ: PROOF_TYPE, jwk: es.jwk })}.${b64(claims)}.${"A".repeat(43)}`;
    await rejection(hs, check(es));
    // EdDSA header around an EC jwk.
    const mismatched = `${b64({ alg: "EdDSA", typ: PROOF_TYPE, jwk: es.jwk })}.${b64(claims)}.${"A".repeat(86)}`;
    expect((await rejection(mismatched, check(es))).message).toMatch(/jwk/);
  });

  it("a private `d` in the header jwk, even when everything else is right", async () => {
    const priv = await exportJWK(es.pair.privateKey);
    expect(priv.d).toBeDefined();
    const claims = { htm: METHOD, ath: ath(TOKEN), iat: NOW_MS / 1000, jti: JTI };
    const input = `${b64({ alg: "ES256", typ: PROOF_TYPE, jwk: priv })}.${b64(claims)}`;
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" }); // any signature; must be refused before it matters
    const sig = nodeSign("sha256", Buffer.from(input), { key: privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url");
    expect((await rejection(`${input}.${sig}`, check(es))).message).toMatch(/public jwk/);
    // jose itself, asked to embed the private jwk.
    await rejection(await proof(es, { jwk: priv }), check(es));
  });

  it("a header without a jwk, or a jwk that is not a key", async () => {
    const claims = { htm: METHOD, ath: ath(TOKEN), iat: NOW_MS / 1000, jti: JTI };
    for (const jwk of [undefined, null, "key", { kty: "EC", crv: "P-256" }, { kty: "EC", crv: "P-256", x: "AAAA", y: "AAAA" }]) {
      await rejection(`${b64({ alg: "ES256", typ: PROOF_TYPE, jwk })}.${b64(claims)}.${"A".repeat(86)}`, check(es));
    }
  });

  it("a tampered claim under the original signature", async () => {
    const [h, , s] = (await proof(es)).split(".");
    const forged = { htm: METHOD, ath: ath(TOKEN), iat: NOW_MS / 1000, jti: "another-jti-0123456789" };
    expect((await rejection(`${h}.${b64(forged)}.${s}`, check(es))).message).toMatch(/signature/);
  });

  it("any garbage, and never with another kind of error", async () => {
    const good = await proof(es);
    const garbage = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.tuple(fc.string(), fc.string(), fc.string()).map((xs) => xs.join(".")),
      fc.jsonValue().map((v) => `${b64(v)}.${b64(v)}.${"A".repeat(86)}`),
      fc.integer({ min: 0, max: good.length - 1 }).map((n) => good.slice(0, n)),
      fc.constant("x".repeat(5000)),
    );
    await fc.assert(
      fc.asyncProperty(garbage, async (g) => {
        await rejection(g, check(es));
      }),
      { numRuns: 500 },
    );
  });
});
