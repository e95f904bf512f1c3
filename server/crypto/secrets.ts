// Client secrets and random ids. A client secret is 256 random bits, shown
// once, stored as SHA-256 and compared in constant time.

import { createHash, randomBytes, randomFillSync, timingSafeEqual } from "node:crypto";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** `n` random base62 characters (rejection sampling: no modulo bias). */
export function randomBase62(n: number): string {
  let out = "";
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248) out += BASE62[b % 62];
      if (out.length === n) break;
    }
  }
  return out;
}

// Ids are drawn from a pool refilled 256 at a time: one call into the CSPRNG
// per 256 ids instead of one per id (two per Issue, on the hot path). Each
// id's bytes are used once, and a refill overwrites the whole pool.
const ID_BYTES = 16;
const idPool = Buffer.alloc(ID_BYTES * 256);
let idNext = idPool.length;

/** 128 random bits, base64url: token ids and agent-id suffixes. */
export function randomId(): string {
  if (idNext === idPool.length) {
    randomFillSync(idPool);
    idNext = 0;
  }
  const id = idPool.toString("base64url", idNext, idNext + ID_BYTES);
  idNext += ID_BYTES;
  return id;
}

/** What newAppId makes, and what a resource server id looks like: anything else names nothing. */
export const APP_ID = /^app_[0-9A-Za-z]{22}$/;
export const RESOURCE_SERVER_ID = /^rs_[0-9A-Za-z]{22}$/;
export const APPROVER_ID = /^apv_[0-9A-Za-z]{22}$/;
export const APPROVAL_ID = /^apr_[0-9A-Za-z]{22}$/;

export const newApproverId = (): string => `apv_${randomBase62(22)}`;
export const newApprovalId = (): string => `apr_${randomBase62(22)}`;

export function newAppId(): string {
  return `app_${randomBase62(22)}`;
}

export function newClientSecret(): string {
  return `bsec_${randomBytes(32).toString("base64url")}`;
}

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/** Constant-time: compares fixed-length hashes, never the secrets themselves. */
export function secretMatches(secret: string, storedHash: Buffer): boolean {
  const h = hashSecret(secret);
  return h.length === storedHash.length && timingSafeEqual(h, storedHash);
}
