// Credentials from the `authorization` metadata (see broker.proto).

import type { Metadata } from "@grpc/grpc-js";
import type { Credentials } from "../service/principals.js";

const MAX_AUTHORIZATION_LENGTH = 16 * 1024;

export function credentialsFrom(metadata: Metadata): Credentials {
  const values = metadata.get("authorization");
  if (values.length === 0) return { kind: "none" };
  if (values.length > 1) return { kind: "malformed" };
  const raw = values[0];
  if (typeof raw !== "string" || raw.length > MAX_AUTHORIZATION_LENGTH) return { kind: "malformed" };
  const space = raw.indexOf(" ");
  const scheme = raw.slice(0, space).toLowerCase();
  const value = raw.slice(space + 1).trim();
  if (space < 0 || value === "") return { kind: "malformed" };
  if (scheme === "bearer") {
    const proofs = metadata.get("baton-proof");
    if (proofs.length > 1) return { kind: "malformed" };
    const proof = proofs[0];
    return { kind: "bearer", token: value, proof: typeof proof === "string" && proof !== "" ? proof : null };
  }
  if (scheme === "basic") {
    const decoded = Buffer.from(value, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon <= 0) return { kind: "malformed" };
    return { kind: "basic", clientId: decoded.slice(0, colon), clientSecret: decoded.slice(colon + 1) };
  }
  return { kind: "malformed" };
}
