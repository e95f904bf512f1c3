// Apps: registered orchestrators with their ceilings (query functions only).

import type { ApprovalRule } from "../domain/approvals.js";
import type { Queryable } from "./db.js";

/** Notified (on commit) when an app or resource server is written: replicas catch their view up. */
export const PRINCIPALS_CHANNEL = "baton_principals";

/** Queues the notification in the writing transaction; PostgreSQL delivers it on commit. */
export async function notifyPrincipalChanged(db: Queryable, id: string): Promise<void> {
  await db.query("SELECT pg_notify($1, $2)", [PRINCIPALS_CHANNEL, id]);
}

export interface AppRecord {
  readonly appId: string;
  readonly name: string;
  readonly secretHash: Buffer;
  readonly scopeCeiling: readonly string[];
  readonly audiences: readonly string[];
  readonly maxTtlSeconds: number;
  readonly maxDelegationDepth: number;
  readonly disabled: boolean;
  readonly createTime: Date;
  readonly updateTime: Date;
  /** The app's own rate limit (requests per second per replica); 0: the broker's default. */
  readonly ratePerSecond: number;
  /** The app's own burst; 0: the broker's default. */
  readonly rateBurst: number;
  /** Checked rules (domain/approvals.ts); empty: nothing needs approval. */
  readonly approvalPolicy: readonly ApprovalRule[];
  /** How long a task may keep renewing its tokens, from its first token; null: the broker's default. */
  readonly maxTaskSeconds: number | null;
}

interface Row {
  app_id: string;
  name: string;
  secret_hash: Buffer;
  scope_ceiling: string[];
  audiences: string[];
  max_ttl_seconds: number;
  max_delegation_depth: number;
  disabled: boolean;
  create_time: Date;
  update_time: Date;
  rate_per_second: number;
  rate_burst: number;
  approval_policy: PolicyJson[];
  max_task_seconds: number | null;
}

/** A rule as stored in apps.approval_policy (jsonb). */
interface PolicyJson {
  pattern: string;
  scope_class: ApprovalRule["scopeClass"];
  approvals_required: number;
  approver_group: string | null;
}

const policyToJson = (p: readonly ApprovalRule[]): string =>
  JSON.stringify(p.map((r): PolicyJson => ({ pattern: r.pattern, scope_class: r.scopeClass, approvals_required: r.approvalsRequired, approver_group: r.approverGroup })));

const COLUMNS =
  "app_id, name, secret_hash, scope_ceiling, audiences, max_ttl_seconds, max_delegation_depth, disabled, create_time, update_time, rate_per_second, rate_burst, approval_policy, max_task_seconds";

function fromRow(r: Row): AppRecord {
  return {
    appId: r.app_id,
    name: r.name,
    secretHash: r.secret_hash,
    scopeCeiling: r.scope_ceiling,
    audiences: r.audiences,
    maxTtlSeconds: r.max_ttl_seconds,
    maxDelegationDepth: r.max_delegation_depth,
    disabled: r.disabled,
    createTime: r.create_time,
    updateTime: r.update_time,
    ratePerSecond: r.rate_per_second,
    rateBurst: r.rate_burst,
    approvalPolicy: r.approval_policy.map((j) => ({ pattern: j.pattern, scopeClass: j.scope_class, approvalsRequired: j.approvals_required, approverGroup: j.approver_group })),
    maxTaskSeconds: r.max_task_seconds,
  };
}

/** Inserts an app; returns false when the name is taken. */
export async function insertApp(db: Queryable, a: AppRecord): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO apps (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT (name) DO NOTHING`,
    [a.appId, a.name, a.secretHash, a.scopeCeiling, a.audiences, a.maxTtlSeconds, a.maxDelegationDepth, a.disabled, a.createTime, a.updateTime, a.ratePerSecond, a.rateBurst, policyToJson(a.approvalPolicy), a.maxTaskSeconds],
  );
  if (res.rowCount !== 1) return false;
  await notifyPrincipalChanged(db, a.appId);
  return true;
}

/** The app; `lock` locks its row until the transaction ends. */
export async function getApp(db: Queryable, appId: string, lock: "" | "FOR UPDATE" | "FOR SHARE" = ""): Promise<AppRecord | null> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM apps WHERE app_id = $1 ${lock}`, [appId]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Apps with id > afterId, ordered by id. */
export async function listApps(db: Queryable, afterId: string, limit: number): Promise<AppRecord[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM apps WHERE app_id > $1 ORDER BY app_id LIMIT $2`, [afterId, limit]);
  return rows.map(fromRow);
}

/** Writes every mutable field; returns false when the new name is taken by another app. */
export async function updateApp(db: Queryable, a: AppRecord): Promise<boolean> {
  const res = await db.query(
    `UPDATE apps SET name = $2, secret_hash = $3, scope_ceiling = $4, audiences = $5, max_ttl_seconds = $6,
       max_delegation_depth = $7, disabled = $8, update_time = $9, rate_per_second = $10, rate_burst = $11, approval_policy = $12,
       max_task_seconds = $13
     WHERE app_id = $1 AND NOT EXISTS (SELECT 1 FROM apps o WHERE o.name = $2 AND o.app_id <> $1)`,
    [a.appId, a.name, a.secretHash, a.scopeCeiling, a.audiences, a.maxTtlSeconds, a.maxDelegationDepth, a.disabled, a.updateTime, a.ratePerSecond, a.rateBurst, policyToJson(a.approvalPolicy), a.maxTaskSeconds],
  );
  if (res.rowCount !== 1) return false;
  await notifyPrincipalChanged(db, a.appId);
  return true;
}

/**
 * Apps written after change `afterSeq` (every app for -1), in change order,
 * and the last change seen. Change order is commit order (migration 0007).
 */
export async function appsChangedSince(db: Queryable, afterSeq: bigint): Promise<{ apps: AppRecord[]; lastSeq: bigint }> {
  const { rows } = await db.query<Row & { change_seq: string }>(
    `SELECT ${COLUMNS}, change_seq FROM apps WHERE change_seq > $1 ORDER BY change_seq`,
    [afterSeq.toString()],
  );
  return { apps: rows.map(fromRow), lastSeq: rows.length > 0 ? BigInt(rows.at(-1)!.change_seq) : afterSeq };
}
