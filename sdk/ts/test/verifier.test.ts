// TokenVerifier against a real broker (test/helpers/broker.ts): valid tokens
// and their claims; released tokens and tokens whose ancestor was released
// refused once the stream brings the revocation; wrong audience, issuer,
// scope; expired, not yet valid, tampered, alg none / HS256 / mismatched alg,
// unknown key; proofs of possession (required, valid, replayed, for another
// call, token or key, out of window, replay cache full); key rotation
// followed through KeySetChanged; STALE once the stream has been down past
// the bound; and hostile strings never throwing.

import { createHmac } from "node:crypto";
import fc from "fast-check";
import type { JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, createApp, operatorMd, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import { isLowS, twinSignature } from "../../../test/helpers/low-s.js";
import { TestAgentKey } from "../../../test/helpers/agent-key.js";
import {
  AgentKey,
  BrokerClient,
  RevocationSubscriber,
  TokenVerifier,
  type AppCredentials,
  type IssueRequest,
  type TokenVerifierOptions,
  type VerifyResult,
} from "../src/index.js";

const ISSUER = "https://baton.local";
const HTM = "GET /records/P-1";

async function eventually(fn: () => Promise<boolean> | boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const reasonOf = (r: VerifyResult): string => (r.ok ? "OK" : r.reason);
const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");
const parts = (token: string): [Record<string, unknown>, Record<string, unknown>, string] => {
  const [h, p, s] = token.split(".") as [string, string, string];
  return [JSON.parse(Buffer.from(h, "base64url").toString()), JSON.parse(Buffer.from(p, "base64url").toString()), s];
};

describe("with a live stream", () => {
  let b: TestBroker;
  let app: AppCredentials;
  let client: BrokerClient;
  let subscriber: RevocationSubscriber;
  let verifier: TokenVerifier;
  const verifiers: TokenVerifier[] = [];
  const another = (o: Partial<TokenVerifierOptions> = {}): TokenVerifier => {
    const v = new TokenVerifier({ audience: "ehr-api", issuer: ISSUER, keys: client, revocations: subscriber, maxStalenessMs: 5000, ...o });
    verifiers.push(v);
    return v;
  };
  const issue = (req: Partial<IssueRequest> = {}) =>
    client.issue(app, { taskId: "task-1", scopes: ["read:records:*"], audiences: ["ehr-api"], humanPrincipal: "user:alice", ...req });

  beforeAll(async () => {
    b = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
    const a = await createApp(b, { ceiling: ["read:records:*", "write:prescriptions:*"], audiences: ["ehr-api", "billing-api"] });
    app = { clientId: a.appId, clientSecret: a.secret };
    client = new BrokerClient(b.address);
    subscriber = new RevocationSubscriber({ target: b.address, caller: app, backoffBaseMs: 50, backoffMaxMs: 500 });
    subscriber.start();
    await subscriber.ready();
    verifier = another();
  });
  afterAll(async () => {
    for (const v of verifiers) v.close();
    subscriber?.close();
    client?.close();
    await b?.stop();
  });

  it("accepts a valid token and returns its claims, lineage included", async () => {
    const root = await issue({ orchestrationId: "run-7" });
    const child = await client.delegate(root.credential, { scopes: ["read:records:P-1"] });
    const r = await verifier.verify(child.accessToken, { requiredScopes: ["read:records:P-1"] });
    expect(reasonOf(r)).toBe("OK");
    if (!r.ok) return;
    expect(r.claims).toMatchObject({
      tokenId: child.claims.tokenId,
      agentId: child.claims.agentId,
      appId: app.clientId,
      taskId: "task-1",
      orchestrationId: "run-7",
      humanPrincipal: "user:alice",
      scopes: ["read:records:P-1"],
      audiences: ["ehr-api"],
      issuer: ISSUER,
      depth: 1,
      keyThumbprint: null,
      lineage: [{ tokenId: root.claims.tokenId, agentId: root.claims.agentId }],
    });
    expect(r.claims.rootIssuedAtMs).toBe(root.claims.issueTime!.getTime());
    expect(r.claims.expiresAtMs).toBe(child.claims.expireTime!.getTime());
  });

  it("checks required scopes by coverage: wildcards in the token cover, not the other way round", async () => {
    const t = await issue({ scopes: ["read:records:*"] });
    expect(reasonOf(await verifier.verify(t.accessToken, { requiredScopes: ["read:records:P-7", "read:records:x:y"] }))).toBe("OK");
    expect(reasonOf(await verifier.verify(t.accessToken, { requiredScopes: ["write:prescriptions:P-1"] }))).toBe("INSUFFICIENT_SCOPE");
    const narrow = await issue({ scopes: ["read:records:P-1"] });
    expect(reasonOf(await verifier.verify(narrow.accessToken, { requiredScopes: ["read:records:*"] }))).toBe("INSUFFICIENT_SCOPE");
    await expect(verifier.verify(t.accessToken, { requiredScopes: ["read:records"] })).rejects.toThrow(TypeError);
  });

  it("refuses a released token once the revocation arrives on the stream", async () => {
    const t = await issue();
    expect(reasonOf(await verifier.verify(t.accessToken))).toBe("OK");
    await client.release(t.credential);
    await eventually(async () => reasonOf(await verifier.verify(t.accessToken)) === "REVOKED", 5000, "REVOKED");
  });

  it("refuses a token whose delegation parent was released", async () => {
    const parent = await issue();
    const child = await client.delegate(parent.credential, { scopes: ["read:records:P-1"] });
    const grandchild = await client.delegate(child.credential, { scopes: ["read:records:P-1"] });
    await client.release(parent.credential);
    await eventually(async () => reasonOf(await verifier.verify(grandchild.accessToken)) === "REVOKED", 5000, "REVOKED");
    expect(reasonOf(await verifier.verify(child.accessToken))).toBe("REVOKED");
  });

  it("refuses a token for another audience, from another issuer, expired, or not yet valid", async () => {
    const billing = await issue({ audiences: ["billing-api"] });
    expect(reasonOf(await verifier.verify(billing.accessToken))).toBe("WRONG_AUDIENCE");
    const t = await issue();
    expect(reasonOf(await another({ issuer: "https://other.example" }).verify(t.accessToken))).toBe("WRONG_ISSUER");
    expect(reasonOf(await another({ now: () => Date.now() - 120_000, leewayMs: 0 }).verify(t.accessToken))).toBe("NOT_YET_VALID");
    const short = await issue({ ttlSeconds: 1 });
    const strict = another({ leewayMs: 0 });
    await eventually(async () => reasonOf(await strict.verify(short.accessToken)) === "EXPIRED", 5000, "EXPIRED");
  });

  it("allows 5 s of clock skew on exp by default, and the leeway configured otherwise", async () => {
    const t = await issue({ ttlSeconds: 60 });
    const exp = t.claims.expireTime!.getTime();
    // Verifier clocks set past exp; a fresh view regardless, so that only exp decides.
    const at = (ms: number, o: Partial<TokenVerifierOptions> = {}) => another({ now: () => exp + ms, maxStalenessMs: 3_600_000, ...o });
    expect(reasonOf(await at(10_000).verify(t.accessToken))).toBe("EXPIRED");
    expect(reasonOf(await at(10_000, { leewayMs: 30_000 }).verify(t.accessToken))).toBe("OK");
    expect(reasonOf(await at(4_000).verify(t.accessToken))).toBe("OK");
    expect(reasonOf(await at(5_000).verify(t.accessToken))).toBe("EXPIRED");
    expect(reasonOf(await at(0, { leewayMs: 0 }).verify(t.accessToken))).toBe("EXPIRED");
  });

  it("keeps the proof iat window at 30 s by default, apart from the exp leeway", async () => {
    const key = await TestAgentKey.generate();
    const t = await issue({ agentPublicKeyJwk: key.jwkJson });
    const proofAt = (secondsAgo: number) => key.proof(t.accessToken, { method: HTM, iatSeconds: Math.floor(Date.now() / 1000) - secondsAgo });
    expect(reasonOf(await verifier.verify(t.accessToken, { proof: await proofAt(15), htm: HTM }))).toBe("OK");
    expect(reasonOf(await verifier.verify(t.accessToken, { proof: await proofAt(40), htm: HTM }))).toBe("PROOF_INVALID");
    expect(reasonOf(await another({ proofWindowMs: 5_000 }).verify(t.accessToken, { proof: await proofAt(15), htm: HTM }))).toBe("PROOF_INVALID");
  });

  it("refuses tampered tokens, alg none, HS256 and an alg other than the key's, and unknown keys", async () => {
    const t = await issue();
    const [header, payload, sig] = parts(t.accessToken);
    const forged = `${b64(header)}.${b64({ ...payload, scope: "write:*:*" })}.${sig}`;
    expect(reasonOf(await verifier.verify(forged))).toBe("BAD_SIGNATURE");
    const flipped = `${t.accessToken.slice(0, -3)}${sig.slice(-3, -2) === "A" ? "B" : "A"}${sig.slice(-2)}`;
    expect(reasonOf(await verifier.verify(flipped))).toBe("BAD_SIGNATURE");
    // The same signature bytes, spelled with the unused trailing bits set.
    const last = sig.at(-1)!;
    const noncanonical = `${t.accessToken.slice(0, -1)}${String.fromCharCode(last.charCodeAt(0) + 1)}`;
    expect(reasonOf(await verifier.verify(noncanonical))).toBe("BAD_SIGNATURE");

    const none = `${b64({ ...header, alg: "none" })}.${b64(payload)}.`;
    expect(reasonOf(await verifier.verify(none))).toBe("ALGORITHM_NOT_ALLOWED");
    // HS256 keyed with the public key, the classic key-confusion forgery.
    const jwks = await client.getKeySet();
    const publicKey = JSON.stringify(jwks.keys.find((k) => k.kid === header.kid));
    const hsInput = `${b64({ ...header, alg: "HS256" })}.${b64(payload)}`;
    const hs = `${hsInput}.${createHmac("sha256", publicKey).update(hsInput).digest("base64url")}`;
    expect(reasonOf(await verifier.verify(hs))).toBe("ALGORITHM_NOT_ALLOWED");
    const otherAlg = `${b64({ ...header, alg: header.alg === "ES256" ? "EdDSA" : "ES256" })}.${b64(payload)}.${sig}`;
    expect(reasonOf(await verifier.verify(otherAlg))).toBe("ALGORITHM_NOT_ALLOWED");
    expect(reasonOf(await verifier.verify(`${b64({ ...header, typ: "JWT" })}.${b64(payload)}.${sig}`))).toBe("WRONG_TYPE");
    expect(reasonOf(await verifier.verify(`${b64({ ...header, kid: "no-such-key" })}.${b64(payload)}.${sig}`))).toBe("UNKNOWN_KEY");
    for (const junk of ["", "a.b", "a.b.c", "x".repeat(20_000), `${b64([1])}.${b64(payload)}.${sig}`]) {
      expect(reasonOf(await verifier.verify(junk))).toBe("MALFORMED");
    }
  });

  it("refuses the high-S twin of a broker-issued ES256 token (BAD_SIGNATURE) and of a proof (PROOF_INVALID)", async () => {
    const key = await AgentKey.generate("ES256");
    // Several tokens and proofs: each twin is a signature that verifies mathematically.
    for (let i = 0; i < 5; i++) {
      const t = await issue();
      expect(parts(t.accessToken)[0].alg).toBe("ES256");
      expect(isLowS(t.accessToken)).toBe(true);
      expect(reasonOf(await verifier.verify(twinSignature(t.accessToken)))).toBe("BAD_SIGNATURE");
      expect(reasonOf(await verifier.verify(t.accessToken))).toBe("OK");

      const bound = await issue({ agentKey: key });
      const proof = await key.createProof(HTM, bound.accessToken);
      const twin = await verifier.verify(bound.accessToken, { proof: twinSignature(proof), htm: HTM });
      expect(reasonOf(twin)).toBe("PROOF_INVALID");
      expect(twin.ok ? "" : twin.detail).toBe("proof: bad signature");
      // The refused twin took no place in the replay cache: the proof itself still passes.
      expect(reasonOf(await verifier.verify(bound.accessToken, { proof, htm: HTM }))).toBe("OK");
    }
  });

  it("never throws on hostile strings", async () => {
    const segment = fc.oneof(fc.string(), fc.base64String().map((s) => s.replace(/=+$/, "")), fc.jsonValue().map(b64));
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.tuple(segment, segment, segment).map((p) => p.join("."))), async (token) => {
        const r = await verifier.verify(token, { proof: token, htm: HTM });
        expect(r.ok).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("needs a valid, fresh, unused proof for a key-bound token", async () => {
    const key = await AgentKey.generate();
    const t = await issue({ agentKey: key });
    const other = await issue({ agentKey: key });
    expect(reasonOf(await verifier.verify(t.accessToken, { htm: HTM }))).toBe("PROOF_REQUIRED");

    const proof = await key.createProof(HTM, t.accessToken);
    const ok = await verifier.verify(t.accessToken, { proof, htm: HTM });
    expect(reasonOf(ok)).toBe("OK");
    expect(ok.ok && ok.claims.keyThumbprint).toBe(key.thumbprint);
    expect(reasonOf(await verifier.verify(t.accessToken, { proof, htm: HTM }))).toBe("PROOF_REPLAYED");

    expect(reasonOf(await verifier.verify(t.accessToken, { proof: await key.createProof("POST /records/P-1", t.accessToken), htm: HTM }))).toBe("PROOF_INVALID");
    expect(reasonOf(await verifier.verify(t.accessToken, { proof: await key.createProof(HTM, other.accessToken), htm: HTM }))).toBe("PROOF_INVALID");
    const stranger = await AgentKey.generate("EdDSA");
    expect(reasonOf(await verifier.verify(t.accessToken, { proof: await stranger.createProof(HTM, t.accessToken), htm: HTM }))).toBe("PROOF_INVALID");
    expect(reasonOf(await verifier.verify(t.accessToken, { proof: await key.createProof(HTM, t.accessToken) }))).toBe("PROOF_INVALID");
    expect(reasonOf(await verifier.verify(t.accessToken, { proof: "not.a.proof", htm: HTM }))).toBe("PROOF_INVALID");

    // iat three seconds away from the verifier's clock, with a one-second window.
    const skewed = another({ now: () => Date.now() + 3000, proofWindowMs: 1000, maxStalenessMs: 10_000 });
    expect(reasonOf(await skewed.verify(t.accessToken, { proof: await key.createProof(HTM, t.accessToken), htm: HTM }))).toBe("PROOF_INVALID");

    // A full replay cache refuses new proofs rather than forget live ones.
    const small = another({ replayCacheSize: 2 });
    for (let i = 0; i < 2; i++) expect(reasonOf(await small.verify(t.accessToken, { proof: await key.createProof(HTM, t.accessToken), htm: HTM }))).toBe("OK");
    expect(reasonOf(await small.verify(t.accessToken, { proof: await key.createProof(HTM, t.accessToken), htm: HTM }))).toBe("PROOF_INVALID");
  });

  it("follows key rotation through KeySetChanged, without refetching", async () => {
    let fetches = 0;
    const v = another({
      keys: async () => {
        fetches += 1;
        return client.getKeySet();
      },
      keyRefetchIntervalMs: 3_600_000,
    });
    expect(reasonOf(await v.verify((await issue()).accessToken))).toBe("OK");
    expect(fetches).toBe(1);
    const seen: JSONWebKeySet[] = [];
    const off = subscriber.onKeySet((jwks) => seen.push(jwks));
    try {
      type Rotated = { next?: { keyId: string } };
      const first = (await call(b.admin.rotateSigningKey, b.admin, {}, operatorMd())) as Rotated;
      const published = first.next!.keyId;
      // The key that will sign after the next rotation was not in the set fetched above.
      await eventually(() => seen.some((s) => s.keys.some((k) => k.kid === published)), 5000, "KeySetChanged with the new next key");
      await call(b.admin.rotateSigningKey, b.admin, {}, operatorMd());
      const t = await issue();
      expect(parts(t.accessToken)[0].kid).toBe(published);
      expect(reasonOf(await v.verify(t.accessToken))).toBe("OK");
      expect(fetches).toBe(1);
    } finally {
      off();
    }
  });
});

describe("with the stream down", () => {
  it("refuses everything with STALE once the view is older than the bound", async () => {
    const b = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
    const a = await createApp(b);
    const app = { clientId: a.appId, clientSecret: a.secret };
    const client = new BrokerClient(b.address);
    const subscriber = new RevocationSubscriber({ target: b.address, caller: app, backoffBaseMs: 50, backoffMaxMs: 500 });
    try {
      subscriber.start();
      await subscriber.ready();
      const verifier = new TokenVerifier({ audience: "ehr-api", issuer: ISSUER, keys: client, revocations: subscriber, maxStalenessMs: 1500 });
      const t1 = await client.issue(app, { taskId: "t", scopes: ["read:records:*"], audiences: ["ehr-api"] });
      const t2 = await client.issue(app, { taskId: "t", scopes: ["read:records:*"], audiences: ["ehr-api"] });
      // Up and checkpointing: fresh for longer than the bound.
      await new Promise((r) => setTimeout(r, 2000));
      expect(reasonOf(await verifier.verify(t1.accessToken))).toBe("OK");

      await b.broker.stop();
      await eventually(async () => reasonOf(await verifier.verify(t1.accessToken)) === "STALE", 10_000, "STALE");
      expect(reasonOf(await verifier.verify(t2.accessToken))).toBe("STALE");
      verifier.close();
    } finally {
      subscriber.close();
      client.close();
      await b.stop();
    }
  });
});
