// Baton tokens against hostile input (DESIGN §2). With a real KeyRing
// (generateSigningKey + loadKey, as the key manager builds it), a signed
// token verifies and its claims round-trip; any standard JWT library can
// verify it from the published key set; and every forgery or malformation
// — alg none, HS256 keyed with the public key, unknown kid, wrong typ,
// truncation, a tampered claim, another key's signature, crit headers,
// expiry and not-before with and without leeway, wrong issuer, garbage —
// gets the specific invalid status and never throws. Finally: changing any
// one character of a valid token never leaves it VALID.

import fc from "fast-check";
import { createLocalJWKSet, jwtVerify } from "jose";
import { createHmac, generateKeyPairSync, sign as nodeSign } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { signCompact } from "../helpers/jws.js";
import { generateSigningKey, KeyRing, type LoadedKey, loadKey, type SigningAlgorithm } from "../../server/crypto/keyring.js";
import { MasterKey } from "../../server/crypto/master-key.js";
import { signToken, TOKEN_TYPE, verifyToken } from "../../server/crypto/tokens.js";
import type { TokenClaims, TokenStatus } from "../../server/domain/tokens.js";
import { isLowS, twinSignature } from "../helpers/low-s.js";

const ISSUER = "https://baton.test";
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0) + 123; // ms precision on purpose

const master = MasterKey.fromBase64(MasterKey.generate());

async function makeKey(alg: SigningAlgorithm, state: "active" | "next" = "active"): Promise<LoadedKey> {
  return loadKey(await generateSigningKey(alg, master, state, new Date(T0)), master);
}

function baseClaims(over: Partial<TokenClaims> = {}): TokenClaims {
  return {
    tokenId: "tok_0123456789abcdef",
    agentId: "spiffe://baton.test/app/app_x/task/t1/agent/a1",
    appId: "app_x",
    taskId: "t1",
    orchestrationId: null,
    humanPrincipal: null,
    scopes: ["read:data:x", "write:db:*"],
    audiences: ["billing-api"],
    issuer: ISSUER,
    issuedAtMs: T0,
    notBeforeMs: Math.floor(T0 / 1000) * 1000,
    expiresAtMs: Math.floor(T0 / 1000) * 1000 + 300_000,
    lineage: [],
    rootIssuedAtMs: T0,
    keyThumbprint: null,
    ...over,
  };
}

const opts = (over: Partial<{ issuer: string; nowMs: number; leewayMs: number }> = {}) => ({
  issuer: ISSUER,
  nowMs: T0 + 1_000,
  leewayMs: 30_000,
  ...over,
});

const b64 = (v: unknown): string => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const parts = (token: string): [string, string, string] => token.split(".") as [string, string, string];
const decodePart = (p: string): Record<string, unknown> => JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as Record<string, unknown>;

let es: LoadedKey;
let ed: LoadedKey;
let stranger: LoadedKey; // same algorithm, not in the ring
let ring: KeyRing;
let valid: string;

beforeAll(async () => {
  es = await makeKey("ES256");
  ed = await makeKey("EdDSA", "next");
  stranger = await makeKey("ES256");
  ring = new KeyRing([es, ed]);
  valid = await signToken(baseClaims(), es);
});

async function statusOf(token: string, o = opts()): Promise<TokenStatus> {
  return (await verifyToken(token, ring, o)).status;
}

describe("valid tokens", () => {
  it("verify and round-trip every claim, for ES256 and EdDSA keys, at any delegation depth", async () => {
    const id = fc.stringMatching(/^[A-Za-z0-9_-]{1,24}$/);
    const claimsArb = fc.record({
      tokenId: id,
      agentId: id.map((s) => `spiffe://baton.test/agent/${s}`),
      taskId: id,
      orchestrationId: fc.option(id, { nil: null }),
      humanPrincipal: fc.option(fc.string({ minLength: 1, maxLength: 40 }), { nil: null }),
      scopes: fc.uniqueArray(fc.constantFrom("read:data:x", "write:db:*", "*:*:*", "a:b:c:d"), { minLength: 1 }).map((s) => s.sort()),
      audiences: fc.uniqueArray(fc.constantFrom("billing-api", "crm", "https://rs.example/x"), { minLength: 1 }).map((s) => s.sort()),
      issuedMs: fc.integer({ min: 0, max: 10_000_000 }),
      ttlS: fc.integer({ min: 1, max: 86_400 }),
      lineage: fc.array(fc.record({ tokenId: id, agentId: id }), { maxLength: 5 }),
      rootBackMs: fc.integer({ min: 0, max: 1_000_000 }),
      keyThumbprint: fc.option(fc.stringMatching(/^[A-Za-z0-9_-]{43}$/), { nil: null }),
      useEd: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(claimsArb, async (c) => {
        const issuedAtMs = T0 + c.issuedMs;
        const nbf = Math.floor(issuedAtMs / 1000) * 1000;
        const claims = baseClaims({
          tokenId: c.tokenId,
          agentId: c.agentId,
          taskId: c.taskId,
          orchestrationId: c.orchestrationId,
          humanPrincipal: c.humanPrincipal,
          scopes: c.scopes,
          audiences: c.audiences,
          issuedAtMs,
          notBeforeMs: nbf,
          expiresAtMs: nbf + c.ttlS * 1000,
          lineage: c.lineage,
          rootIssuedAtMs: c.lineage.length > 0 ? issuedAtMs - c.rootBackMs : issuedAtMs,
          keyThumbprint: c.keyThumbprint,
        });
        const token = await signToken(claims, c.useEd ? ed : es);
        const v = await verifyToken(token, ring, opts({ nowMs: issuedAtMs }));
        expect(v.status).toBe("VALID");
        // Millisecond iat/root_iat survive (task and app revocations compare them to the millisecond).
        expect(v.claims).toEqual(claims);
        expect(token.length).toBeLessThan(4096);
      }),
      { numRuns: 150 },
    );
  });

  it("verify with a standard JWT library from the published key set (typ, iss, aud, alg pinned)", async () => {
    const jwks = createLocalJWKSet(JSON.parse(ring.jwksJson) as Parameters<typeof createLocalJWKSet>[0]);
    for (const key of [es, ed]) {
      const token = await signToken(baseClaims(), key);
      const { payload, protectedHeader } = await jwtVerify(token, jwks, {
        issuer: ISSUER,
        audience: "billing-api",
        typ: TOKEN_TYPE,
        algorithms: [key.stored.algorithm],
        currentDate: new Date(T0 + 1_000),
      });
      expect(protectedHeader.kid).toBe(key.stored.keyId);
      expect(payload.jti).toBe("tok_0123456789abcdef");
      expect(payload.scope).toBe("read:data:x write:db:*");
    }
  });

  it("a retired key still verifies what it signed but can no longer sign", async () => {
    const stored = await generateSigningKey("ES256", master, "active", new Date(T0));
    const signer = loadKey(stored, master);
    const token = await signToken(baseClaims(), signer);
    const retired = loadKey({ ...stored, state: "retired", retireTime: new Date(T0) }, master);
    expect(retired.privateKey).toBeNull();
    await expect(signToken(baseClaims(), retired)).rejects.toThrow();
    const rotated = new KeyRing([es, retired]);
    expect((await verifyToken(token, rotated, opts())).status).toBe("VALID");
  });

  it("verifyToken does not judge audience (the caller does): the audiences come back exactly as signed", async () => {
    const token = await signToken(baseClaims({ audiences: ["billing-api"] }), es);
    const v = await verifyToken(token, ring, opts());
    expect(v.status).toBe("VALID");
    expect(v.claims?.audiences).toEqual(["billing-api"]);
    expect(v.claims?.audiences).not.toContain("crm-api");
  });
});

describe("forged and malformed tokens get the right status", () => {
  it("alg none (empty signature, and with a real signature kept) is ALGORITHM_NOT_ALLOWED", async () => {
    const [, p, s] = parts(valid);
    const none = b64({ alg: "none", typ: TOKEN_TYPE, kid: es.stored.keyId });
    expect(await statusOf(`${none}.${p}.`)).toBe("ALGORITHM_NOT_ALLOWED");
    expect(await statusOf(`${none}.${p}.${s}`)).toBe("ALGORITHM_NOT_ALLOWED");
    expect(await statusOf(`${b64({ alg: "NONE", typ: TOKEN_TYPE, kid: es.stored.keyId })}.${p}.`)).toBe("ALGORITHM_NOT_ALLOWED");
  });

  it("HS256 keyed with the public key's bytes (key confusion) is ALGORITHM_NOT_ALLOWED", async () => {
    const [, p] = parts(valid);
    const secrets = [
      es.publicKey.export({ format: "pem", type: "spki" }) as string,
      es.publicKey.export({ format: "der", type: "spki" }),
      es.stored.publicJwk,
    ];
    for (const secret of secrets) {
      const h = b64({ alg: "HS256", typ: TOKEN_TYPE, kid: es.stored.keyId });
      const sig = createHmac("sha256", secret).update(`${h}.${p}`).digest("base64url");
      expect(await statusOf(`${h}.${p}.${sig}`)).toBe("ALGORITHM_NOT_ALLOWED");
    }
  });

  it("an allowed algorithm that is not the key's own (EdDSA header on an ES256 kid) is ALGORITHM_NOT_ALLOWED", async () => {
    const edPair = generateKeyPairSync("ed25519");
    const payload = Buffer.from(parts(valid)[1], "base64url");
    const forged = signCompact({ alg: "EdDSA", typ: TOKEN_TYPE, kid: es.stored.keyId }, payload, edPair.privateKey, "EdDSA");
    expect(await statusOf(forged)).toBe("ALGORITHM_NOT_ALLOWED");
  });

  it("an unknown or missing kid is UNKNOWN_KEY", async () => {
    const payload = Buffer.from(parts(valid)[1], "base64url");
    expect(await statusOf(signCompact({ alg: "ES256", typ: TOKEN_TYPE, kid: stranger.stored.keyId }, payload, stranger.privateKey!, "ES256"))).toBe("UNKNOWN_KEY");
    expect(await statusOf(signCompact({ alg: "ES256", typ: TOKEN_TYPE }, payload, es.privateKey!, "ES256"))).toBe("UNKNOWN_KEY");
    expect(await statusOf(signCompact({ alg: "ES256", typ: TOKEN_TYPE, kid: 7 }, payload, es.privateKey!, "ES256"))).toBe("UNKNOWN_KEY");
  });

  it("a wrong or missing typ is WRONG_TYPE even when properly signed", async () => {
    const payload = Buffer.from(parts(valid)[1], "base64url");
    for (const typ of ["JWT", "baton-proof+jwt", "AT+JWT", undefined]) {
      const t = signCompact({ alg: "ES256", typ, kid: es.stored.keyId }, payload, es.privateKey!, "ES256");
      expect(await statusOf(t)).toBe("WRONG_TYPE");
    }
  });

  it("a crit header is refused (MALFORMED)", async () => {
    const payload = Buffer.from(parts(valid)[1], "base64url");
    const t = signCompact({ alg: "ES256", typ: TOKEN_TYPE, kid: es.stored.keyId, crit: ["exp"] }, payload, es.privateKey!, "ES256");
    expect(await statusOf(t)).toBe("MALFORMED");
  });

  it("every truncation of a valid token is invalid", async () => {
    for (let n = 0; n < valid.length; n++) {
      const s = await statusOf(valid.slice(0, n));
      expect(s, `prefix of length ${n}`).not.toBe("VALID");
    }
  });

  it("a tampered claim with the original signature is BAD_SIGNATURE", async () => {
    const [h, p, s] = parts(valid);
    const claims = decodePart(p);
    const tampered: Record<string, unknown>[] = [
      { ...claims, scope: "*:*:*" },
      { ...claims, exp: (claims.exp as number) + 86_400 },
      { ...claims, aud: ["crm-api"] },
      { ...claims, sub: "spiffe://baton.test/other" },
      { ...claims, task_id: "another-task" },
      { ...claims, cnf: { jkt: "attacker-key-thumbprint" } },
    ];
    for (const c of tampered) expect(await statusOf(`${h}.${b64(c)}.${s}`)).toBe("BAD_SIGNATURE");
  });

  it("a signature from another key under this ring's kid is BAD_SIGNATURE", async () => {
    const payload = Buffer.from(parts(valid)[1], "base64url");
    const t = signCompact({ alg: "ES256", typ: TOKEN_TYPE, kid: es.stored.keyId }, payload, stranger.privateKey!, "ES256");
    expect(await statusOf(t)).toBe("BAD_SIGNATURE");
    // And the signature part of another valid token, spliced on.
    const other = await signToken(baseClaims({ tokenId: "tok_other_000000000" }), es);
    const [h, p] = parts(valid);
    expect(await statusOf(`${h}.${p}.${parts(other)[2]}`)).toBe("BAD_SIGNATURE");
    // A DER-encoded ES256 signature (wrong encoding for JWS) is not accepted either.
    const der = nodeSign("sha256", Buffer.from(`${h}.${p}`), es.privateKey!).toString("base64url");
    expect(await statusOf(`${h}.${p}.${der}`)).toBe("BAD_SIGNATURE");
  });

  it("properly signed but missing or mistyped claims is MALFORMED", async () => {
    const claims = decodePart(parts(valid)[1]);
    const bad: unknown[] = [
      { ...claims, jti: undefined },
      { ...claims, jti: "" },
      { ...claims, exp: "soon" },
      { ...claims, aud: "billing-api" },
      { ...claims, aud: [] },
      { ...claims, scope: "" },
      { ...claims, lineage: [{ jti: "x" }], root_iat: 1 },
      { ...claims, lineage: [{ jti: "x", sub: "y" }] }, // no root_iat
      { ...claims, cnf: {} },
      // Beyond year 9999: no Date or protobuf Timestamp can carry them.
      { ...claims, exp: 1e300 },
      { ...claims, exp: 253_402_300_800 },
      { ...claims, iat: 1e300 },
      { ...claims, nbf: 1e300 },
      { ...claims, lineage: [{ jti: "x", sub: "y" }], root_iat: 1e300 },
      [claims],
      "just a string",
    ];
    for (const c of bad) {
      const t = signCompact({ alg: "ES256", typ: TOKEN_TYPE, kid: es.stored.keyId }, JSON.stringify(c), es.privateKey!, "ES256");
      expect(await statusOf(t), JSON.stringify(c).slice(0, 80)).toBe("MALFORMED");
    }
  });

  it("a wrong issuer is WRONG_ISSUER (with the claims, since the signature verified)", async () => {
    const v = await verifyToken(valid, ring, opts({ issuer: "https://evil.test" }));
    expect(v.status).toBe("WRONG_ISSUER");
    expect(v.claims?.tokenId).toBe("tok_0123456789abcdef");
  });

  it("expiry and not-before honour the leeway exactly", async () => {
    const c = baseClaims();
    for (const leewayMs of [0, 30_000]) {
      expect(await statusOf(valid, opts({ leewayMs, nowMs: c.expiresAtMs + leewayMs - 1 }))).toBe("VALID");
      expect(await statusOf(valid, opts({ leewayMs, nowMs: c.expiresAtMs + leewayMs }))).toBe("EXPIRED");
      expect(await statusOf(valid, opts({ leewayMs, nowMs: c.expiresAtMs + leewayMs + 3_600_000 }))).toBe("EXPIRED");
      expect(await statusOf(valid, opts({ leewayMs, nowMs: c.notBeforeMs - leewayMs }))).toBe("VALID");
      expect(await statusOf(valid, opts({ leewayMs, nowMs: c.notBeforeMs - leewayMs - 1 }))).toBe("NOT_YET_VALID");
    }
    // Within the leeway is only a small grace: the design's default is 30 s.
    expect(await statusOf(valid, opts({ leewayMs: 30_000, nowMs: c.expiresAtMs + 31_000 }))).toBe("EXPIRED");
  });

  it("over-long tokens are MALFORMED without being parsed", async () => {
    expect(await statusOf(`${valid}${"A".repeat(17 * 1024)}`)).toBe("MALFORMED");
  });

  it("garbage never throws and is never VALID", async () => {
    const allowed = new Set<TokenStatus>(["MALFORMED", "ALGORITHM_NOT_ALLOWED", "UNKNOWN_KEY", "BAD_SIGNATURE", "WRONG_TYPE"]);
    const [h, p] = parts(valid);
    const garbage = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ unit: fc.constantFrom(..."AZaz09-_.=+/ "), maxLength: 200 }),
      fc.tuple(fc.string(), fc.string(), fc.string()).map((xs) => xs.join(".")),
      fc.jsonValue().map((v) => `${b64(v)}.${p}.${"A".repeat(86)}`),
      fc.jsonValue().map((v) => `${h}.${b64(v)}.${"A".repeat(86)}`),
    );
    await fc.assert(
      fc.asyncProperty(garbage, async (g) => {
        const v = await verifyToken(g, ring, opts());
        expect(allowed.has(v.status), `${v.status} for ${g.slice(0, 60)}`).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("one-character mutations", () => {
  const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.";

  it("changing any one character of a valid token never yields VALID", async () => {
    // Any position, with extra weight on the signature and its last character (edge of the encoding).
    const position = fc.oneof(fc.nat(), fc.integer({ min: valid.length - 86, max: valid.length - 1 }), fc.constant(valid.length - 1));
    await fc.assert(
      fc.asyncProperty(position, fc.constantFrom(...ALPHABET), async (pos, ch) => {
        const i = pos % valid.length;
        fc.pre(valid[i] !== ch);
        const mutated = valid.slice(0, i) + ch + valid.slice(i + 1);
        expect(await statusOf(mutated), `position ${i}: ${valid[i]} -> ${ch}`).not.toBe("VALID");
      }),
      { numRuns: 2000 },
    );
  });

  it("ES256 tokens are signed low-S, and the high-S twin of a signature is BAD_SIGNATURE", async () => {
    // Each signature is high-S with probability 1/2: 40 signings miss the
    // normalisation with probability 2^-40.
    for (let n = 0; n < 40; n++) {
      const t = await signToken(baseClaims({ tokenId: `tok_low_s_${n}` }), es);
      expect(isLowS(t), `token ${n}`).toBe(true);
      expect(await statusOf(t)).toBe("VALID");
      expect(await statusOf(twinSignature(t))).toBe("BAD_SIGNATURE");
    }
  });

  it("the signature is read as canonical base64url: a different signature string is not the same signature", async () => {
    const [h, p, s] = parts(valid);
    // 64 bytes are 86 base64url characters; the last one carries 4 unused bits.
    const last = s.at(-1)!;
    const sibling = ALPHABET[(ALPHABET.indexOf(last) ^ 1) & 63]!; // differs only in an unused bit
    expect.soft(await statusOf(`${h}.${p}.${s.slice(0, -1)}${sibling}`), "last signature character's unused bits").not.toBe("VALID");
    // '-' and '_' are base64url; '+' and '/' belong to the other alphabet.
    // Sign until the signature holds one of them (each of 86 characters does with probability 1/32).
    let other = valid;
    for (let n = 0; !/[-_]/.test(parts(other)[2]); n++) other = await signToken(baseClaims({ tokenId: `tok_alphabet_${n}` }), es);
    const [h2, p2, s2] = parts(other);
    const std = s2.replaceAll("-", "+").replaceAll("_", "/");
    expect(std).not.toBe(s2);
    expect.soft(await statusOf(`${h2}.${p2}.${std}`), "standard-alphabet signature").not.toBe("VALID");
    expect.soft(await statusOf(`${h}.${p}.${s}==`), "padded signature").not.toBe("VALID");
  });
});
