// Accepted proof ids (query functions only).

import type { Queryable } from "./db.js";

/** Records a proof id; false when it was already used. */
export async function useProof(db: Queryable, jtiHash: Buffer, expireTime: Date): Promise<boolean> {
  const res = await db.query("INSERT INTO used_proofs (jti_hash, expire_time) VALUES ($1, $2) ON CONFLICT DO NOTHING", [jtiHash, expireTime]);
  return res.rowCount === 1;
}

export async function deleteExpiredProofs(db: Queryable, before: Date): Promise<number> {
  const res = await db.query("DELETE FROM used_proofs WHERE expire_time < $1", [before]);
  return res.rowCount ?? 0;
}
