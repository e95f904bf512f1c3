// Credentials from the `authorization` metadata (see broker.proto).

import type { Metadata } from "@grpc/grpc-js";
import { InvalidRequestError } from "../domain/errors.js";
import type { Credentials } from "../service/principals.js";

/** Longer than any Baton token (a few KB at the maximum delegation depth), client credentials or operator credential. */
export const MAX_CREDENTIAL_LENGTH = 16 * 1024;

/**
 * Refuses an over-long credential as a malformed request (INVALID_ARGUMENT,
 * INVALID_REQUEST, field `authorization`) rather than as wrong credentials:
 * no Baton credential is that long, and retrying it cannot help.
 */
export function credentialsFrom(metadata: Metadata): Credentials {
  const values = metadata.get("authorization");
  if (values.length === 0) return { kind: "none" };
  // Repeated headers: which one counts would be a guess (see grpc-server.ts).
  if (values.length > 1) return { kind: "malformed" };
  const raw = values[0];
  if (typeof raw !== "string") return { kind: "malformed" };
  const space = raw.indexOf(" ");
  const value = raw.slice(space + 1).trim();
  if (value.length > MAX_CREDENTIAL_LENGTH) {
    throw new InvalidRequestError("authorization", `the credential is longer than ${MAX_CREDENTIAL_LENGTH} characters`);
  }
  const scheme = raw.slice(0, space).toLowerCase();
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
