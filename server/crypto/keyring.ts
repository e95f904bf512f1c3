// Signing keys in memory: generation, decryption of stored keys, the key set
// (JWKS) every verifier uses.

import { calculateJwkThumbprint, type JWK } from "jose";
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import type { MasterKey } from "./master-key.js";

export type SigningAlgorithm = "ES256" | "EdDSA";
export const ALLOWED_ALGORITHMS: readonly SigningAlgorithm[] = ["ES256", "EdDSA"];

export type KeyState = "next" | "active" | "retired";

/** A key as stored (private part sealed under the master key). */
export interface StoredKey {
  readonly keyId: string;
  readonly algorithm: SigningAlgorithm;
  readonly state: KeyState;
  readonly publicJwk: string;
  readonly privateKeyEnc: Buffer;
  readonly createTime: Date;
  readonly activateTime: Date | null;
  readonly retireTime: Date | null;
  readonly expireTime: Date | null;
}

export interface LoadedKey {
  readonly stored: StoredKey;
  readonly publicKey: KeyObject;
  /** Present for the active and next keys only. */
  readonly privateKey: KeyObject | null;
  readonly jwk: JWK;
}

/** A fresh key pair; the key id is the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(
  algorithm: SigningAlgorithm,
  master: MasterKey,
  state: "next" | "active",
  now: Date,
): Promise<StoredKey> {
  const pair =
    algorithm === "ES256" ? generateKeyPairSync("ec", { namedCurve: "P-256" }) : generateKeyPairSync("ed25519");
  const jwk = pair.publicKey.export({ format: "jwk" }) as JWK;
  const keyId = await calculateJwkThumbprint(jwk, "sha256");
  const der = pair.privateKey.export({ format: "der", type: "pkcs8" });
  return {
    keyId,
    algorithm,
    state,
    publicJwk: JSON.stringify({ ...jwk, kid: keyId, alg: algorithm, use: "sig" }),
    privateKeyEnc: master.encrypt(der, keyId),
    createTime: now,
    activateTime: state === "active" ? now : null,
    retireTime: null,
    expireTime: null,
  };
}

export function loadKey(stored: StoredKey, master: MasterKey): LoadedKey {
  const jwk = JSON.parse(stored.publicJwk) as JWK;
  const publicKey = createPublicKey({ key: jwk as import("node:crypto").JsonWebKey, format: "jwk" });
  const privateKey =
    stored.state === "retired"
      ? null
      : createPrivateKey({ key: master.decrypt(stored.privateKeyEnc, stored.keyId), format: "der", type: "pkcs8" });
  return { stored, publicKey, privateKey, jwk };
}

/** The keys one broker knows, by id, with the one that signs. */
export class KeyRing {
  private readonly byId: ReadonlyMap<string, LoadedKey>;
  readonly active: LoadedKey;
  readonly jwksJson: string;

  constructor(readonly keys: readonly LoadedKey[]) {
    this.byId = new Map(keys.map((k) => [k.stored.keyId, k]));
    const active = keys.find((k) => k.stored.state === "active");
    if (!active) throw new Error("key ring has no active key");
    this.active = active;
    this.jwksJson = JSON.stringify({ keys: keys.map((k) => k.jwk) });
  }

  get(keyId: string): LoadedKey | undefined {
    return this.byId.get(keyId);
  }
}
