// The broker computes RFC 7638 thumbprints itself (cnf.jkt, proof keys);
// they must equal an independent implementation's (jose) for every key.

import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";
import { describe, expect, it } from "vitest";
import { jwkThumbprint, parseAgentKey } from "../../server/crypto/agent-keys.js";

describe("jwkThumbprint", () => {
  for (const alg of ["ES256", "EdDSA"] as const) {
    it(`matches jose for 25 fresh ${alg} keys, whatever extra members the JWK carries`, async () => {
      for (let i = 0; i < 25; i++) {
        const { publicKey } = await generateKeyPair(alg, { extractable: true });
        const jwk = { ...(await exportJWK(publicKey)), kid: `k${i}`, use: "sig", alg };
        const expected = await calculateJwkThumbprint(jwk, "sha256");
        expect(jwkThumbprint(jwk)).toBe(expected);
        expect((await parseAgentKey(JSON.stringify(jwk))).thumbprint).toBe(expected);
      }
    });
  }
});
