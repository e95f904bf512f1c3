// Revocations, each with a cursor in commit order (query functions only).

import type { RevocationTarget, StoredRevocation } from "../domain/revocations.js";
import { type AuditEvent, payloadPartsAround } from "./audit.js";
import { type Db, type Queryable, type Tx, withTransaction } from "./db.js";

/** The channel that wakes replicas when a revocation commits (payload: cursor). */
export const REVOCATIONS_CHANNEL = "baton_revocations";

interface Row {
  cursor: string;
  target: RevocationTarget;
  target_id: string;
  app_id: string;
  revoke_time: Date;
  expire_time: Date;
  audiences: string[];
}

const fromRow = (r: Row): StoredRevocation => ({
  cursor: BigInt(r.cursor),
  target: r.target,
  id: r.target_id,
  appId: r.app_id,
  revokedAtMs: r.revoke_time.getTime(),
  expiresAtMs: r.expire_time.getTime(),
  audiences: r.audiences,
});

const COLUMNS = "cursor, target, target_id, app_id, revoke_time, expire_time, audiences";

/** A revocation to store and the reason recorded with it. */
export interface NewRevocation {
  readonly revocation: Omit<StoredRevocation, "cursor">;
  readonly reason: string | null;
}

// Revocations as unnest parameters from $1 to $8. Audience lists differ in
// length, and a SQL array cannot be ragged: they travel as JSON.
const INSERT_REVOCATIONS = `INSERT INTO revocations (cursor, target, target_id, app_id, revoke_time, expire_time, reason, audiences)
     SELECT u.cursor, u.target, u.target_id, u.app_id, u.revoke_time, u.expire_time, u.reason,
            ARRAY(SELECT jsonb_array_elements_text(u.audiences))
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::text[], $8::jsonb[])
       AS u(cursor, target, target_id, app_id, revoke_time, expire_time, reason, audiences)`;

function revocationParams(stored: readonly StoredRevocation[], rs: readonly NewRevocation[]): unknown[] {
  return [stored.map((r) => r.cursor.toString()), ...revocationColumns(stored, rs)];
}

/** Every column but the cursor, as arrays (the cursor is PostgreSQL's to assign in baton_append_revocations). */
function revocationColumns(stored: readonly StoredRevocation[], rs: readonly NewRevocation[]): unknown[] {
  return [
    stored.map((r) => r.target),
    stored.map((r) => r.id),
    stored.map((r) => r.appId),
    stored.map((r) => new Date(r.revokedAtMs)),
    stored.map((r) => new Date(r.expiresAtMs)),
    rs.map((n) => n.reason),
    // Audience lists differ in length, and a SQL array cannot be ragged.
    stored.map((r) => JSON.stringify(r.audiences)),
  ];
}

/** The revocations with the cursors that follow `cursor`, in order. */
export const numberedAfter = (cursor: bigint, rs: readonly NewRevocation[]): StoredRevocation[] =>
  rs.map((n, i) => ({ ...n.revocation, cursor: cursor + BigInt(i + 1) }));

/** An app read from memory, at the version (its update_time) a revocation was worked out from. */
export interface AppVersion {
  readonly appId: string;
  readonly updateTime: Date;
}

/**
 * Stores revocations with their audit events in one statement, which is its
 * own transaction, or nothing: one round trip instead of a transaction of
 * eight (BEGIN, cursor, revocations, NOTIFY, head lock, events, head,
 * COMMIT). PostgreSQL numbers them from the cursor and chains their events
 * (event i is revocation i's and names its cursor in `data.cursor`) where
 * the head is (baton_append_revocations, migration 0011), and notifies
 * replicas at commit; nothing is guessed, so other writers and replicas
 * cost nothing. Only if every app in `apps` is still at that version (a
 * task or app revocation was worked out from the in-memory view: its
 * audiences and expiry hold only if the app did not change since); else
 * null, having stored nothing: the caller works its revocations out again.
 * Locks in the order every writer takes them: the apps (shared, so a
 * concurrent change waits for this commit), the cursor row, the audit head.
 */
export async function insertRevocationsChained(
  db: Queryable,
  rs: readonly NewRevocation[],
  apps: readonly AppVersion[],
  events: readonly AuditEvent[],
): Promise<StoredRevocation[] | null> {
  const parts = events.map((e) => payloadPartsAround(e, "cursor"));
  const stored = numberedAfter(0n, rs); // the cursors come back from PostgreSQL
  const n = 8; // the first parameter after the revocations'
  const { rows } = await db.query<{ first: string | null }>({
    name: "revocations-chained",
    text: `WITH held AS (
       SELECT count(*) = cardinality($${n + 7}::text[]) AS yes FROM (
         SELECT 1 FROM apps JOIN unnest($${n + 7}::text[], $${n + 8}::timestamptz[]) AS v(a, t) ON apps.app_id = v.a AND apps.update_time = v.t
         FOR SHARE OF apps) s
     ),
     -- Run once (a CTE with a volatile function is not inlined), after the apps' locks, only when they hold.
     r AS (
       SELECT baton_append_revocations($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[], $7::jsonb[],
         $${n}::timestamptz[], $${n + 1}::text[], $${n + 2}::text[], $${n + 3}::text[], $${n + 4}::text[], $${n + 5}::text[], $${n + 6}::text[]) AS first
       WHERE (SELECT yes FROM held)
     )
     SELECT (SELECT first FROM r) AS first`,
    values: [
      ...revocationColumns(stored, rs),
      events.map((e) => e.time),
      events.map((e) => e.kind),
      events.map((e) => e.appId),
      events.map((e) => e.requestId),
      parts.map((p) => p.beforeValue),
      parts.map((p) => p.beforeSeq),
      parts.map((p) => p.afterSeq),
      apps.map((a) => a.appId),
      apps.map((a) => a.updateTime),
    ],
  });
  const first = rows[0]?.first;
  return first === null || first === undefined ? null : numberedAfter(BigInt(first) - 1n, rs);
}

/**
 * Stores revocations with consecutive cursors, in order. Must run inside a
 * transaction: the cursor row stays locked until commit, so concurrent
 * revokers commit in cursor order. One counter update and one insert however
 * many there are: a group commit pays for the lock once.
 */
export async function insertRevocations(tx: Tx, rs: readonly NewRevocation[]): Promise<StoredRevocation[]> {
  if (rs.length === 0) return [];
  const c = await tx.query<{ value: string }>("UPDATE revocation_cursor SET value = value + $1 WHERE id = 1 RETURNING value", [rs.length]);
  const stored = numberedAfter(BigInt(c.rows[0]!.value) - BigInt(rs.length), rs);
  await tx.query(INSERT_REVOCATIONS, revocationParams(stored, rs));
  // Delivered at commit, to every replica listening: a wake-up only (the
  // table stays the truth), so one per transaction is enough.
  await tx.query("SELECT pg_notify($1, $2)", [REVOCATIONS_CHANNEL, stored[stored.length - 1]!.cursor.toString()]);
  return stored;
}

/** What a revocation can match in a token (see domain/revocations.ts). */
export interface RevocableFacts {
  readonly tokenId: string;
  readonly agentId: string;
  readonly appId: string;
  readonly taskId: string;
  readonly lineage: readonly { readonly tokenId: string; readonly agentId: string }[];
  readonly rootIssuedAtMs: number;
}

/**
 * Whether a revocation with a cursor below `beforeCursor`, still live at
 * `nowMs`, matches the token: the rule of RevocationSet.isRevoked, read from
 * the table. Called after insertRevocations took the cursor row's lock, it
 * sees every revocation committed before, by any replica, even one this
 * replica's set has not caught up with yet.
 */
export async function revokedBefore(tx: Tx, t: RevocableFacts, beforeCursor: bigint, nowMs: number): Promise<boolean> {
  const root = t.lineage[0]?.tokenId ?? t.tokenId;
  const { rows } = await tx.query(
    `SELECT 1 FROM revocations WHERE cursor < $1 AND expire_time >= $2 AND (
       (target = 'token' AND target_id = ANY($3::text[]))
       OR (target = 'agent' AND target_id = ANY($4::text[]))
       OR (target = 'chain' AND target_id = $5)
       OR (target = 'task' AND app_id = $6 AND target_id = $7 AND revoke_time >= $8)
       OR (target = 'app' AND app_id = $6 AND revoke_time >= $8)
     ) LIMIT 1`,
    [
      beforeCursor.toString(),
      new Date(nowMs),
      [t.tokenId, ...t.lineage.map((e) => e.tokenId)],
      [t.agentId, ...t.lineage.map((e) => e.agentId)],
      root,
      t.appId,
      t.taskId,
      new Date(t.rootIssuedAtMs),
    ],
  );
  return rows.length > 0;
}

/** Stores one revocation (see insertRevocations). */
export async function insertRevocation(tx: Tx, r: Omit<StoredRevocation, "cursor">, reason: string | null): Promise<StoredRevocation> {
  return (await insertRevocations(tx, [{ revocation: r, reason }]))[0]!;
}

/** Revocations that may still match a live token at `nowMs`, in cursor order. */
export async function liveRevocations(db: Queryable, nowMs: number): Promise<StoredRevocation[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM revocations WHERE expire_time >= $1 ORDER BY cursor`,
    [new Date(nowMs)],
  );
  return rows.map(fromRow);
}

/** Revocations after `cursor`, in cursor order. */
export async function revocationsAfter(db: Queryable, cursor: bigint, limit: number): Promise<StoredRevocation[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM revocations WHERE cursor > $1 ORDER BY cursor LIMIT $2`,
    [cursor.toString(), limit],
  );
  return rows.map(fromRow);
}

/**
 * Deletes revocations that expired before `beforeMs` and raises the stream's
 * replay floor past them, in one statement; returns how many were deleted.
 */
export async function deleteExpiredRevocations(db: Queryable, beforeMs: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `WITH d AS (DELETE FROM revocations WHERE expire_time < $1 RETURNING cursor)
     UPDATE revocation_cursor SET pruned_through = GREATEST(pruned_through, COALESCE((SELECT max(cursor) FROM d), 0))
     WHERE id = 1 RETURNING (SELECT count(*) FROM d) AS n`,
    [new Date(beforeMs)],
  );
  return Number(rows[0]?.n ?? 0);
}

export interface CursorBounds {
  /** The newest committed cursor. */
  readonly latest: bigint;
  /** Revocations up to here may have been deleted: resuming below it loses events. */
  readonly prunedThrough: bigint;
}

export async function cursorBounds(db: Queryable): Promise<CursorBounds> {
  const { rows } = await db.query<{ value: string; pruned_through: string }>("SELECT value, pruned_through FROM revocation_cursor WHERE id = 1");
  return { latest: BigInt(rows[0]!.value), prunedThrough: BigInt(rows[0]!.pruned_through) };
}

/**
 * Every revocation that may still match a live token, and the cursor they
 * are complete up to, read in one snapshot.
 */
export async function revocationSnapshot(db: Db, nowMs: number): Promise<{ revocations: StoredRevocation[]; cursor: bigint }> {
  return withTransaction(
    db,
    async (tx) => {
      const bounds = await cursorBounds(tx);
      return { revocations: await liveRevocations(tx, nowMs), cursor: bounds.latest };
    },
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
  );
}
