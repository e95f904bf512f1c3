// Accepted proof ids (query functions only).

import type { Queryable } from "./db.js";

export interface ProofUse {
  readonly jtiHash: Buffer;
  readonly expireTime: Date;
}

/**
 * Records proof ids in one statement; answers, for each, whether it was new.
 * A repeat within the batch counts as used (the first one wins).
 */
export async function useProofs(db: Queryable, uses: readonly ProofUse[]): Promise<boolean[]> {
  const { rows } = await db.query<{ jti_hash: Buffer }>(
    `INSERT INTO used_proofs (jti_hash, expire_time)
     SELECT * FROM unnest($1::bytea[], $2::timestamptz[]) ON CONFLICT DO NOTHING RETURNING jti_hash`,
    [uses.map((u) => u.jtiHash), uses.map((u) => u.expireTime)],
  );
  const fresh = new Set(rows.map((r) => r.jti_hash.toString("hex")));
  return uses.map((u) => fresh.delete(u.jtiHash.toString("hex")));
}

export async function deleteExpiredProofs(db: Queryable, before: Date): Promise<number> {
  const res = await db.query("DELETE FROM used_proofs WHERE expire_time < $1", [before]);
  return res.rowCount ?? 0;
}
