// Revocations, each with a cursor in commit order (query functions only).

import type { Revocation, RevocationTarget } from "../domain/revocations.js";
import type { Queryable, Tx } from "./db.js";

interface Row {
  cursor: string;
  target: RevocationTarget;
  target_id: string;
  app_id: string;
  revoke_time: Date;
  expire_time: Date;
}

const fromRow = (r: Row): Revocation => ({
  cursor: BigInt(r.cursor),
  target: r.target,
  id: r.target_id,
  appId: r.app_id,
  revokedAtMs: r.revoke_time.getTime(),
  expiresAtMs: r.expire_time.getTime(),
});

/**
 * Stores a revocation. Must run inside a transaction: the cursor row stays
 * locked until commit, so concurrent revokers commit in cursor order.
 */
export async function insertRevocation(tx: Tx, r: Omit<Revocation, "cursor">, reason: string | null): Promise<Revocation> {
  const c = await tx.query<{ value: string }>("UPDATE revocation_cursor SET value = value + 1 WHERE id = 1 RETURNING value");
  const cursor = BigInt(c.rows[0]!.value);
  await tx.query(
    "INSERT INTO revocations (cursor, target, target_id, app_id, revoke_time, expire_time, reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    [cursor.toString(), r.target, r.id, r.appId, new Date(r.revokedAtMs), new Date(r.expiresAtMs), reason],
  );
  return { ...r, cursor };
}

/** Revocations that may still match a live token at `nowMs`, in cursor order. */
export async function liveRevocations(db: Queryable, nowMs: number): Promise<Revocation[]> {
  const { rows } = await db.query<Row>(
    "SELECT cursor, target, target_id, app_id, revoke_time, expire_time FROM revocations WHERE expire_time >= $1 ORDER BY cursor",
    [new Date(nowMs)],
  );
  return rows.map(fromRow);
}

/** Revocations after `cursor`, in cursor order. */
export async function revocationsAfter(db: Queryable, cursor: bigint, limit: number): Promise<Revocation[]> {
  const { rows } = await db.query<Row>(
    "SELECT cursor, target, target_id, app_id, revoke_time, expire_time FROM revocations WHERE cursor > $1 ORDER BY cursor LIMIT $2",
    [cursor.toString(), limit],
  );
  return rows.map(fromRow);
}

/** Deletes revocations that expired before `beforeMs`; returns how many. */
export async function deleteExpiredRevocations(db: Queryable, beforeMs: number): Promise<number> {
  const res = await db.query("DELETE FROM revocations WHERE expire_time < $1", [new Date(beforeMs)]);
  return res.rowCount ?? 0;
}
