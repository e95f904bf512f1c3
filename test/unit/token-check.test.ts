// The verified-token cache (service/token-check.ts) never changes a verdict:
// for any sequence of checks, clock advances, revocations and key-ring
// changes (a key dropped, a key added, the same keys reloaded), a checker
// that remembers verified tokens answers exactly as one that verifies every
// time, including for tampered copies of a remembered token. Only VALID
// tokens are remembered, at most as many as configured.

import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { generateSigningKey, KeyRing, type LoadedKey, loadKey } from "../../server/crypto/keyring.js";
import { MasterKey } from "../../server/crypto/master-key.js";
import { signToken } from "../../server/crypto/tokens.js";
import type { TokenClaims } from "../../server/domain/tokens.js";
import { rootClaims, TEST_ISSUER as ISSUER } from "../helpers/claims.js";
import type { KeyManager } from "../../server/service/keys.js";
import type { RevocationState } from "../../server/service/revocation-state.js";
import { TokenChecker } from "../../server/service/token-check.js";

const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const master = MasterKey.fromBase64(MasterKey.generate());

const claims = (i: number, lifetimeMs: number, over: Partial<TokenClaims> = {}): TokenClaims =>
  rootClaims(T0, { tokenId: `tok_${i}`, agentId: `spiffe://baton.test/app/app_x/task/t${i}/agent/a${i}`, taskId: `t${i}`, expiresAtMs: T0 + lifetimeMs, ...over });

/** One character changed, in the payload or the signature. */
const tamper = (token: string, at: number): string => {
  const i = at % token.length;
  return token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
};

let k1: LoadedKey;
let k2: LoadedKey;
let tokens: string[];

beforeAll(async () => {
  k1 = loadKey(await generateSigningKey("ES256", master, "active", new Date(T0)), master);
  k2 = loadKey(await generateSigningKey("ES256", master, "active", new Date(T0)), master);
  const signed = [
    await signToken(claims(0, 300_000), k1),
    await signToken(claims(1, 3_000), k1), // expires during a run
    await signToken(claims(2, 300_000, { notBeforeMs: T0 + 4_000 }), k1), // becomes valid during a run
    await signToken(claims(3, 300_000), k2), // only some rings hold k2
    await signToken(claims(4, 300_000, { issuer: "https://other.test" }), k1),
  ];
  tokens = [...signed, tamper(signed[0]!, 40), tamper(signed[0]!, signed[0]!.length - 10), tamper(signed[3]!, 200)];
});

interface World {
  ring: KeyRing;
  now: number;
  readonly revoked: Set<string>;
}

function checker(world: World, remember: number): TokenChecker {
  const keys = { get ring() { return world.ring; }, reloadIfStale: async () => world.ring } as unknown as KeyManager;
  const revocations = { isRevoked: (c: TokenClaims) => world.revoked.has(c.tokenId) } as unknown as RevocationState;
  return new TokenChecker(keys, revocations, { issuer: ISSUER, skewMs: 1_000, now: () => world.now, verifiedTokenCache: remember });
}

type Step =
  | { readonly op: "check"; readonly token: number }
  | { readonly op: "advance"; readonly ms: number }
  | { readonly op: "revoke"; readonly token: number }
  | { readonly op: "ring"; readonly which: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constant("check" as const), token: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 2_500 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("revoke" as const), token: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("ring" as const), which: fc.nat(3) }) },
);

describe("verified-token cache", () => {
  it("answers exactly as verifying every time, whatever the clock, revocations and key ring do", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 4 }), async (steps, remember) => {
        // The rings: k1 alone, k2 alone (k1 dropped), both, and k1 alone again as a new ring (a reload).
        const rings = () => [new KeyRing([k1]), new KeyRing([k2]), new KeyRing([k1, k2]), new KeyRing([k1])];
        const world: World = { ring: rings()[0]!, now: T0 + 500, revoked: new Set() };
        const cached = checker(world, remember);
        const plain = checker(world, 0);
        for (const s of steps) {
          if (s.op === "check") {
            const token = tokens[s.token]!;
            const [a, b] = [await cached.check(token), await plain.check(token)];
            expect(a).toEqual(b);
            expect(cached.remembered).toBeLessThanOrEqual(remember);
          } else if (s.op === "advance") world.now += s.ms;
          else if (s.op === "revoke") world.revoked.add(`tok_${s.token}`);
          else world.ring = rings()[s.which]!;
        }
        expect(plain.remembered).toBe(0);
      }),
      { numRuns: 1000 },
    );
  });

  it("remembers only valid tokens: tampered, expired, wrong-issuer and unknown-key ones take no place", async () => {
    const world: World = { ring: new KeyRing([k1]), now: T0 + 500, revoked: new Set() };
    const c = checker(world, 10);
    expect((await c.check(tokens[5]!)).status).not.toBe("VALID");
    expect((await c.check(tokens[6]!)).status).not.toBe("VALID");
    expect((await c.check(tokens[4]!)).status).toBe("WRONG_ISSUER");
    expect((await c.check(tokens[3]!)).status).toBe("UNKNOWN_KEY");
    expect(c.remembered).toBe(0);
    expect((await c.check(tokens[0]!)).status).toBe("VALID");
    expect((await c.check(tokens[1]!)).status).toBe("VALID");
    expect(c.remembered).toBe(2);
    // Remembered, then expired: still EXPIRED; revoked: REVOKED.
    world.now = T0 + 10_000;
    expect((await c.check(tokens[1]!)).status).toBe("EXPIRED");
    world.revoked.add("tok_0");
    expect((await c.check(tokens[0]!)).status).toBe("REVOKED");
  });

  it("forgets everything when the key ring changes: a token whose key is no longer published is UNKNOWN_KEY", async () => {
    const world: World = { ring: new KeyRing([k1]), now: T0 + 500, revoked: new Set() };
    const c = checker(world, 10);
    expect((await c.check(tokens[0]!)).status).toBe("VALID");
    expect(c.remembered).toBe(1);
    world.ring = new KeyRing([k2]);
    expect((await c.check(tokens[0]!)).status).toBe("UNKNOWN_KEY");
    expect((await c.check(tokens[3]!)).status).toBe("VALID");
    expect(c.remembered).toBe(1);
  });
});
