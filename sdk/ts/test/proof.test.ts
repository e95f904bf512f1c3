// Unit tests of AgentKey and the proofs it signs: the exact shape the broker
// expects (proto/baton/v1/broker.proto, DelegateRequest), checked with jose
// as an independent decoder and verifier.

import { createHash, generateKeyPairSync } from "node:crypto";
import { inspect } from "node:util";
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, importJWK, jwtVerify, type JWK } from "jose";
import { describe, expect, it } from "vitest";
import { isLowS } from "../../../test/helpers/low-s.js";
import { AgentKey, PROOF_TYPE, type AgentKeyAlgorithm } from "../src/index.js";

const DELEGATE = "/baton.v1.BrokerService/Delegate";
const TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

describe.each<AgentKeyAlgorithm>(["ES256", "EdDSA"])("an %s agent key", (alg) => {
  it("signs a proof with exactly the documented header and claims", async () => {
    const key = await AgentKey.generate(alg);
    const before = Math.floor(Date.now() / 1000);
    const proof = await key.createProof(DELEGATE, TOKEN);
    const after = Math.floor(Date.now() / 1000);

    const header = decodeProtectedHeader(proof);
    expect(Object.keys(header).sort()).toEqual(["alg", "jwk", "typ"]);
    expect(header.typ).toBe(PROOF_TYPE);
    expect(header.typ).toBe("baton-proof+jwt");
    expect(header.alg).toBe(alg);
    expect(header.jwk).toEqual(JSON.parse(key.publicJwk));
    expect(header.jwk).not.toHaveProperty("d");
    expect(header.jwk).toMatchObject(alg === "ES256" ? { kty: "EC", crv: "P-256" } : { kty: "OKP", crv: "Ed25519" });

    const claims = decodeJwt(proof);
    expect(Object.keys(claims).sort()).toEqual(["ath", "htm", "iat", "jti"]);
    expect(claims.htm).toBe(DELEGATE);
    expect(claims.ath).toBe(createHash("sha256").update(TOKEN).digest("base64url"));
    expect(claims.iat).toBeGreaterThanOrEqual(before);
    expect(claims.iat).toBeLessThanOrEqual(after);
    expect(Number.isInteger(claims.iat)).toBe(true);
    expect(typeof claims.jti).toBe("string");
    expect((claims.jti as string).length).toBeGreaterThanOrEqual(16);
    expect((claims.jti as string).length).toBeLessThanOrEqual(128);
  });

  it("signs with the key in its header, which jose verifies", async () => {
    const key = await AgentKey.generate(alg);
    const proof = await key.createProof(DELEGATE, TOKEN);
    const publicKey = await importJWK(decodeProtectedHeader(proof).jwk as JWK, alg);
    const { payload } = await jwtVerify(proof, publicKey, { typ: PROOF_TYPE, algorithms: [alg] });
    expect(payload.htm).toBe(DELEGATE);
    // Another key's public part does not verify it.
    const other = await importJWK(JSON.parse((await AgentKey.generate(alg)).publicJwk) as JWK, alg);
    await expect(jwtVerify(proof, other, { algorithms: [alg] })).rejects.toThrow();
  });

  it("gives every proof a fresh jti", async () => {
    const key = await AgentKey.generate(alg);
    const jtis = new Set<unknown>();
    for (let i = 0; i < 20; i++) jtis.add(decodeJwt(await key.createProof(DELEGATE, TOKEN)).jti);
    expect(jtis.size).toBe(20);
  });

  it("has the RFC 7638 thumbprint jose computes for its public JWK", async () => {
    const key = await AgentKey.generate(alg);
    const jwk = JSON.parse(key.publicJwk) as JWK;
    expect(key.thumbprint).toBe(await calculateJwkThumbprint(jwk, "sha256"));
    expect(key.thumbprint).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Object.keys(jwk).sort()).toEqual(alg === "ES256" ? ["crv", "kty", "x", "y"] : ["crv", "kty", "x"]);
  });

  it("exports and re-imports its private key with the same identity", async () => {
    const key = await AgentKey.generate(alg);
    const again = await AgentKey.fromPrivateKey(key.exportPrivateJwk());
    expect(again.algorithm).toBe(alg);
    expect(again.thumbprint).toBe(key.thumbprint);
    expect(again.publicJwk).toBe(key.publicJwk);
    const publicKey = await importJWK(JSON.parse(key.publicJwk) as JWK, alg);
    await expect(jwtVerify(await again.createProof(DELEGATE, TOKEN), publicKey)).resolves.toBeDefined();
  });

  it("never shows its private part in JSON or inspect", async () => {
    const key = await AgentKey.generate(alg);
    const d = key.exportPrivateJwk().d!;
    expect(d.length).toBeGreaterThan(20);
    expect(JSON.stringify(key)).not.toContain(d);
    expect(inspect(key, { showHidden: true, depth: 10 })).not.toContain(d);
    expect(JSON.parse(JSON.stringify(key))).toEqual({ algorithm: alg, publicJwk: key.publicJwk, thumbprint: key.thumbprint });
  });
});

describe("ES256 proofs", () => {
  it("are all signed low-S (s <= n/2), the only form the broker accepts, and still verify", async () => {
    const key = await AgentKey.generate("ES256");
    const publicKey = await importJWK(JSON.parse(key.publicJwk) as JWK, "ES256");
    // Without normalisation half the signatures are high-S: 200 all low by chance is 2^-200.
    for (let i = 0; i < 200; i++) {
      const proof = await key.createProof(DELEGATE, TOKEN);
      expect(isLowS(proof), `proof ${i}`).toBe(true);
      await expect(jwtVerify(proof, publicKey, { algorithms: ["ES256"] })).resolves.toBeDefined();
    }
  });
});

describe("AgentKey defaults and imports", () => {
  it("is ES256 by default", async () => {
    expect((await AgentKey.generate()).algorithm).toBe("ES256");
  });

  it("imports a node:crypto private KeyObject", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const key = await AgentKey.fromPrivateKey(privateKey);
    const jwk = publicKey.export({ format: "jwk" });
    expect(JSON.parse(key.publicJwk)).toEqual({ kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y });
  });

  it.each([
    ["a public JWK", async () => AgentKey.fromPrivateKey(JSON.parse((await AgentKey.generate()).publicJwk) as JWK)],
    ["a public KeyObject", async () => AgentKey.fromPrivateKey(generateKeyPairSync("ed25519").publicKey)],
    ["a P-384 key", async () => AgentKey.fromPrivateKey(generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey)],
    ["an RSA key", async () => AgentKey.fromPrivateKey(generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey)],
    ["a broken JWK", async () => AgentKey.fromPrivateKey({ kty: "EC", crv: "P-256", x: "AA", y: "AA", d: "AA" })],
    ["an unknown algorithm", async () => AgentKey.generate("RS256" as AgentKeyAlgorithm)],
  ])("refuses %s", async (_name, run) => {
    await expect(run()).rejects.toBeInstanceOf(TypeError);
  });
});
