// An agent's key pair and the proofs of possession it signs.
//
// A token issued or delegated with `agent_public_key_jwk` is bound to that
// key (`cnf.jkt`, its RFC 7638 thumbprint), and every call made with the
// token must carry a fresh proof in the `baton-proof` metadata, after DPoP
// (RFC 9449): a JWT signed by the key with
//
//   header: typ "baton-proof+jwt", alg ES256 or EdDSA, jwk = the public key
//   claims: htm = the full gRPC method ("/baton.v1.BrokerService/Delegate"),
//           ath = base64url(SHA-256(token)), iat (seconds), jti (unique)
//
// The broker accepts each proof once, for that method and token only, within
// a few seconds of its iat (server/crypto/proofs.ts), so a proof is made
// right before each call and never reused. An ES256 proof must be low-S
// (low-s.ts); jose returns either form, so its signature is normalised.

import { createHash, generateKeyPair, KeyObject, randomBytes, createPrivateKey, createPublicKey } from "node:crypto";
import { promisify } from "node:util";
import { calculateJwkThumbprint, SignJWT, type JWK } from "jose";
import { requiredString } from "./args.js";
import { toLowS } from "./low-s.js";

/** The algorithms an agent key may use: ES256 (EC P-256, the default) or EdDSA (Ed25519). */
export type AgentKeyAlgorithm = "ES256" | "EdDSA";

/** The `typ` header of a proof of possession. */
export const PROOF_TYPE = "baton-proof+jwt";

/** The metadata key that carries a proof of possession. */
export const PROOF_METADATA_KEY = "baton-proof";

const generateKeyPairAsync = promisify(generateKeyPair);

/** base64url(SHA-256(token)): the `ath` claim binding a proof to one token. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("base64url");
}

function algorithmOf(key: KeyObject): AgentKeyAlgorithm {
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return "ES256";
  if (key.asymmetricKeyType === "ed25519") return "EdDSA";
  throw new TypeError("an agent key must be an EC P-256 or Ed25519 private key");
}

/** The public JWK with only its required members, as RFC 7638 thumbprints and the broker expect. */
function publicJwkOf(privateKey: KeyObject, algorithm: AgentKeyAlgorithm): JWK {
  const j = createPublicKey(privateKey).export({ format: "jwk" });
  return algorithm === "ES256" ? { kty: "EC", crv: "P-256", x: j.x!, y: j.y! } : { kty: "OKP", crv: "Ed25519", x: j.x! };
}

/**
 * An agent's key pair. Pass {@link AgentKey.publicJwk} as `agentKey` (or
 * `agent_public_key_jwk`) when issuing or delegating to bind the token to it,
 * and keep the AgentKey beside the token (an {@link AgentCredential}) so the
 * client can prove possession on every call.
 *
 * The private key stays inside this object: it is not an enumerable
 * property, and neither JSON.stringify nor util.inspect shows it. Use
 * {@link AgentKey.exportPrivateJwk} to persist it deliberately.
 */
export class AgentKey {
  /** The signing algorithm, ES256 or EdDSA. */
  readonly algorithm: AgentKeyAlgorithm;
  /** The public key as a JWK JSON string: what `agent_public_key_jwk` takes. */
  readonly publicJwk: string;
  /** The RFC 7638 SHA-256 thumbprint of the public key, as the token's `cnf.jkt` will carry it. */
  readonly thumbprint: string;
  readonly #privateKey: KeyObject;
  readonly #publicJwk: JWK;

  private constructor(privateKey: KeyObject, algorithm: AgentKeyAlgorithm, publicJwk: JWK, thumbprint: string) {
    this.#privateKey = privateKey;
    this.#publicJwk = publicJwk;
    this.algorithm = algorithm;
    this.publicJwk = JSON.stringify(publicJwk);
    this.thumbprint = thumbprint;
  }

  /** Generates a new key pair; ES256 unless `algorithm` says EdDSA. */
  static async generate(algorithm: AgentKeyAlgorithm = "ES256"): Promise<AgentKey> {
    if (algorithm === "ES256") return AgentKey.fromPrivateKey((await generateKeyPairAsync("ec", { namedCurve: "P-256" })).privateKey);
    if (algorithm === "EdDSA") return AgentKey.fromPrivateKey((await generateKeyPairAsync("ed25519")).privateKey);
    throw new TypeError(`unsupported agent key algorithm: ${String(algorithm)}`);
  }

  /**
   * Imports an existing private key: a node:crypto KeyObject (for a PEM, use
   * `createPrivateKey(pem)`) or a private JWK as {@link AgentKey.exportPrivateJwk}
   * returns it. EC P-256 and Ed25519 only.
   */
  static async fromPrivateKey(key: KeyObject | JWK): Promise<AgentKey> {
    let privateKey: KeyObject;
    if (key instanceof KeyObject) {
      privateKey = key;
    } else {
      if (typeof key.d !== "string") throw new TypeError("a private JWK (with `d`) is required");
      try {
        privateKey = createPrivateKey({ key: key as import("node:crypto").JsonWebKey, format: "jwk" });
      } catch {
        throw new TypeError("not a valid private JWK");
      }
    }
    if (privateKey.type !== "private") throw new TypeError("a private key is required");
    const algorithm = algorithmOf(privateKey);
    const publicJwk = publicJwkOf(privateKey, algorithm);
    return new AgentKey(privateKey, algorithm, publicJwk, await calculateJwkThumbprint(publicJwk, "sha256"));
  }

  /** The private key as a JWK, to store it (as a secret) and import it later. */
  exportPrivateJwk(): JWK {
    return this.#privateKey.export({ format: "jwk" }) as JWK;
  }

  /**
   * Signs a proof of possession for one call.
   *
   * @param method - the full gRPC method path, for example `/baton.v1.BrokerService/Delegate`
   * @param token - the key-bound token the call authenticates with
   * @returns the proof, for the `baton-proof` metadata
   */
  async createProof(method: string, token: string): Promise<string> {
    requiredString(method, "method");
    requiredString(token, "token");
    const jws = await new SignJWT({ htm: method, ath: tokenHash(token) })
      .setProtectedHeader({ typ: PROOF_TYPE, alg: this.algorithm, jwk: { ...this.#publicJwk } })
      .setIssuedAt()
      // 18 random bytes: 24 base64url characters, within the broker's 16 to 128.
      .setJti(randomBytes(18).toString("base64url"))
      .sign(this.#privateKey);
    if (this.algorithm !== "ES256") return jws;
    const dot = jws.lastIndexOf(".");
    return `${jws.slice(0, dot + 1)}${toLowS(Buffer.from(jws.slice(dot + 1), "base64url")).toString("base64url")}`;
  }

  /** The public parts only. */
  toJSON(): { algorithm: AgentKeyAlgorithm; publicJwk: string; thumbprint: string } {
    return { algorithm: this.algorithm, publicJwk: this.publicJwk, thumbprint: this.thumbprint };
  }
}
