// Retention queries: the pruner's lock, expired grants, pruned audit events
// (query functions only; the policy is in service/retention.ts).

import { type AuditEvent, appendAudit, type ChainPoint } from "./audit.js";
import type { Queryable, Tx } from "./db.js";

const LOCK_KEY = 0x626174726574; // "batret": one pruner at a time across replicas

/** Takes the pruner's session lock on this connection; false when another replica holds it. */
export async function tryRetentionLock(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [LOCK_KEY]);
  return rows[0]!.ok;
}

export async function releaseRetentionLock(db: Queryable): Promise<void> {
  await db.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]);
}

/**
 * Deletes up to `limit` grants that expired before `before` and have no
 * child left, oldest first; returns how many. A parent goes only after all
 * its children did (a later batch), so every stored grant keeps its whole
 * ancestry: the root of any live chain stays for chain revocation, and a
 * live token's expired ancestors stay too. Rows another pruner or a
 * delegation has locked are skipped, not waited for.
 */
export async function deleteExpiredGrants(db: Queryable, before: Date, limit: number): Promise<number> {
  const res = await db.query(
    // = ANY(ARRAY(...)): the batch is looked up by primary key, where an
    // IN (...) plan may hash-join against a scan of the whole table.
    `DELETE FROM grants WHERE token_id = ANY(ARRAY(
       SELECT g.token_id FROM grants g
       WHERE g.expire_time < $1 AND NOT EXISTS (SELECT 1 FROM grants c WHERE c.parent_token_id = g.token_id)
       ORDER BY g.expire_time LIMIT $2 FOR UPDATE SKIP LOCKED))`,
    [before, limit],
  );
  return res.rowCount ?? 0;
}

/**
 * Deletes up to `limit` approvals whose window closed before `before`,
 * oldest first, with their decisions; returns how many. Past its window an
 * approval can no longer be decided or used (a token minted under it
 * carries the approval in its own claims), and the audit trail keeps every
 * request, decision and use.
 */
export async function deleteClosedApprovals(db: Queryable, before: Date, limit: number): Promise<number> {
  const res = await db.query(
    `DELETE FROM approvals WHERE approval_id = ANY(ARRAY(
       SELECT approval_id FROM approvals WHERE expire_time < $1 ORDER BY expire_time LIMIT $2 FOR UPDATE SKIP LOCKED))`,
    [before, limit],
  );
  return res.rowCount ?? 0;
}

/**
 * Deletes the audit events after `anchor` up to and including `through`,
 * moves the anchor to `through` and records the pruning as an event of the
 * chain, in one transaction. False (and nothing done) when the anchor moved
 * meanwhile.
 */
export async function pruneAuditThrough(tx: Tx, anchor: ChainPoint, through: ChainPoint, record: AuditEvent): Promise<boolean> {
  const moved = await tx.query(
    "UPDATE audit_anchor SET seq = $2, hash = $3, prune_time = now() WHERE id = 1 AND seq = $1",
    [anchor.seq.toString(), through.seq.toString(), through.hash],
  );
  if (moved.rowCount !== 1) return false;
  await tx.query("DELETE FROM audit_events WHERE seq > $1 AND seq <= $2", [anchor.seq.toString(), through.seq.toString()]);
  await appendAudit(tx, [record]);
  return true;
}
