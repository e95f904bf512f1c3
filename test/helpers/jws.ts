// A compact JWS with any header and payload, signed the way the broker signs
// (server/crypto/jws.ts): for tests that forge tokens the broker would never
// issue (a foreign kid, a wrong typ, bad claims) and check they are refused.

import type { KeyObject } from "node:crypto";
import { signBytes, signingInput } from "../../server/crypto/jws.js";
import type { SigningAlgorithm } from "../../server/crypto/keyring.js";

export function signCompact(header: object, payload: Uint8Array | string, key: KeyObject, alg: SigningAlgorithm): string {
  const input = signingInput(header, payload);
  return `${input}.${signBytes(Buffer.from(input), key, alg).toString("base64url")}`;
}
