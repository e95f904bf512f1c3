// An agent's key pair and its proofs of possession, built with jose from the
// shape documented on DelegateRequest in broker.proto — not with the broker's
// own code, so the tests check the documented contract.

import { Metadata } from "@grpc/grpc-js";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey } from "jose";
import { createHash, randomBytes } from "node:crypto";
import { toLowS } from "./low-s.js";

export const DELEGATE = "/baton.v1.BrokerService/Delegate";
export const REVOKE = "/baton.v1.BrokerService/Revoke";

export interface ProofOptions {
  readonly method?: string;
  /** The token the proof claims to be for (default: the one presented). */
  readonly forToken?: string;
  readonly iatSeconds?: number;
  readonly jti?: string;
  readonly typ?: string;
}

export class TestAgentKey {
  private constructor(
    private readonly privateKey: CryptoKey,
    readonly publicJwk: Record<string, unknown>,
  ) {}

  static async generate(): Promise<TestAgentKey> {
    const { privateKey, publicKey } = await generateKeyPair("ES256");
    const jwk = await exportJWK(publicKey);
    return new TestAgentKey(privateKey, { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
  }

  /** The JSON to pass as agent_public_key_jwk. */
  get jwkJson(): string {
    return JSON.stringify(this.publicJwk);
  }

  async proof(token: string, o: ProofOptions = {}): Promise<string> {
    const signed = await new SignJWT({
      htm: o.method ?? DELEGATE,
      ath: createHash("sha256").update(o.forToken ?? token).digest("base64url"),
      jti: o.jti ?? randomBytes(16).toString("base64url"),
    })
      .setProtectedHeader({ alg: "ES256", typ: o.typ ?? "baton-proof+jwt", jwk: this.publicJwk })
      .setIssuedAt(o.iatSeconds ?? Math.floor(Date.now() / 1000))
      .sign(this.privateKey);
    return toLowS(signed);
  }
}

/** `authorization: Bearer token`, with `baton-proof` when a proof is given. */
export function agentMd(token: string, proof?: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  if (proof !== undefined) md.set("baton-proof", proof);
  return md;
}
