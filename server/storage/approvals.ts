// Approvals and their decisions (query functions only). Every write
// notifies APPROVALS_CHANNEL with the approval id, delivered on commit, so
// every replica's WatchApproval streams see the change.

import type { ApprovalBinding, ApprovalState } from "../domain/approvals.js";
import type { Queryable } from "./db.js";

export const APPROVALS_CHANNEL = "baton_approvals";

export interface ApprovalDecisionRecord {
  readonly approverId: string;
  readonly approverName: string;
  readonly approved: boolean;
  readonly reason: string;
  readonly decideTime: Date;
}

export interface ApprovalRecord extends ApprovalBinding {
  readonly approvalId: string;
  readonly seq: bigint;
  readonly state: ApprovalState;
  readonly scopesNeedingApproval: readonly string[];
  readonly approvalsRequired: number;
  readonly approverGroup: string;
  readonly createTime: Date;
  readonly expireTime: Date;
  readonly useTime: Date | null;
  readonly tokenId: string | null;
  /** In the order they were made. */
  readonly decisions: readonly ApprovalDecisionRecord[];
}

interface Row {
  approval_id: string;
  seq: string;
  state: ApprovalState;
  request_kind: "issue" | "delegate";
  app_id: string;
  requester: string;
  parent_token_id: string | null;
  task_id: string;
  orchestration_id: string | null;
  human_principal: string | null;
  scopes: string[];
  scopes_needing_approval: string[];
  audiences: string[];
  ttl_seconds: string | null;
  key_thumbprint: string | null;
  approvals_required: number;
  approver_group: string;
  create_time: Date;
  expire_time: Date;
  use_time: Date | null;
  token_id: string | null;
  decisions: { approver_id: string; approver_name: string; approved: boolean; reason: string; decide_time: string }[];
}

// Decisions come along as one JSON array per approval, in decision order.
const SELECT = `SELECT a.*, COALESCE((
    SELECT json_agg(json_build_object('approver_id', d.approver_id, 'approver_name', d.approver_name, 'approved', d.approved,
      'reason', d.reason, 'decide_time', d.decide_time) ORDER BY d.seq)
    FROM approval_decisions d WHERE d.approval_id = a.approval_id), '[]') AS decisions
  FROM approvals a`;

const fromRow = (r: Row): ApprovalRecord => ({
  approvalId: r.approval_id,
  seq: BigInt(r.seq),
  state: r.state,
  requestKind: r.request_kind,
  appId: r.app_id,
  requester: r.requester,
  parentTokenId: r.parent_token_id,
  taskId: r.task_id,
  orchestrationId: r.orchestration_id,
  humanPrincipal: r.human_principal,
  scopes: r.scopes,
  scopesNeedingApproval: r.scopes_needing_approval,
  audiences: r.audiences,
  ttlSeconds: r.ttl_seconds === null ? null : Number(r.ttl_seconds),
  keyThumbprint: r.key_thumbprint,
  approvalsRequired: r.approvals_required,
  approverGroup: r.approver_group,
  createTime: r.create_time,
  expireTime: r.expire_time,
  useTime: r.use_time,
  tokenId: r.token_id,
  decisions: r.decisions.map((d) => ({
    approverId: d.approver_id,
    approverName: d.approver_name,
    approved: d.approved,
    reason: d.reason,
    decideTime: new Date(d.decide_time),
  })),
});

async function notifyApproval(db: Queryable, approvalId: string): Promise<void> {
  await db.query("SELECT pg_notify($1, $2)", [APPROVALS_CHANNEL, approvalId]);
}

export type NewApproval = Omit<ApprovalRecord, "seq" | "decisions" | "useTime" | "tokenId" | "state">;

export async function insertApproval(db: Queryable, a: NewApproval): Promise<void> {
  await db.query(
    `INSERT INTO approvals (approval_id, state, request_kind, app_id, requester, parent_token_id, task_id, orchestration_id,
       human_principal, scopes, scopes_needing_approval, audiences, ttl_seconds, key_thumbprint, approvals_required,
       approver_group, create_time, expire_time)
     VALUES ($1, 'PENDING', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
    [
      a.approvalId, a.requestKind, a.appId, a.requester, a.parentTokenId, a.taskId, a.orchestrationId, a.humanPrincipal,
      a.scopes, a.scopesNeedingApproval, a.audiences, a.ttlSeconds, a.keyThumbprint, a.approvalsRequired, a.approverGroup,
      a.createTime, a.expireTime,
    ],
  );
  await notifyApproval(db, a.approvalId);
}

export async function getApproval(db: Queryable, id: string, forUpdate = false): Promise<ApprovalRecord | null> {
  // FOR UPDATE OF a: the decisions subquery is not locked, the approval row is.
  const { rows } = await db.query<Row>(`${SELECT} WHERE a.approval_id = $1${forUpdate ? " FOR UPDATE OF a" : ""}`, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

export interface ApprovalFilter {
  /** null: any state. */
  readonly state: ApprovalState | null;
  /** null: any app. */
  readonly appId: string | null;
  /** null: any group (the operator). */
  readonly groups: readonly string[] | null;
}

/** Approvals with seq < beforeSeq (null: from the newest), newest first. */
export async function listApprovals(db: Queryable, f: ApprovalFilter, beforeSeq: bigint | null, limit: number): Promise<ApprovalRecord[]> {
  const { rows } = await db.query<Row>(
    `${SELECT} WHERE ($1::bigint IS NULL OR a.seq < $1) AND ($2::text IS NULL OR a.state = $2)
       AND ($3::text IS NULL OR a.app_id = $3) AND ($4::text[] IS NULL OR a.approver_group = ANY($4))
     ORDER BY a.seq DESC LIMIT $5`,
    [beforeSeq?.toString() ?? null, f.state, f.appId, f.groups, limit],
  );
  return rows.map(fromRow);
}

/**
 * Marks EXPIRED the live approvals (pending, or approved and unused) past
 * their window, of `ids` (null: all); returns them, each once: a second
 * sweep finds them no longer live.
 */
export async function expireDue(db: Queryable, now: Date, ids: readonly string[] | null): Promise<ApprovalRecord[]> {
  const { rows } = await db.query<{ approval_id: string }>(
    `UPDATE approvals SET state = 'EXPIRED'
     WHERE state IN ('PENDING', 'APPROVED') AND expire_time <= $1 AND ($2::text[] IS NULL OR approval_id = ANY($2))
     RETURNING approval_id`,
    [now, ids],
  );
  const out: ApprovalRecord[] = [];
  for (const r of rows) {
    await notifyApproval(db, r.approval_id);
    out.push((await getApproval(db, r.approval_id))!);
  }
  return out;
}

export async function insertDecision(db: Queryable, approvalId: string, d: ApprovalDecisionRecord): Promise<void> {
  await db.query(
    "INSERT INTO approval_decisions (approval_id, approver_id, approver_name, approved, reason, decide_time) VALUES ($1, $2, $3, $4, $5, $6)",
    [approvalId, d.approverId, d.approverName, d.approved, d.reason, d.decideTime],
  );
  await notifyApproval(db, approvalId);
}

export async function setApprovalState(db: Queryable, approvalId: string, state: ApprovalState): Promise<void> {
  await db.query("UPDATE approvals SET state = $2 WHERE approval_id = $1", [approvalId, state]);
  await notifyApproval(db, approvalId);
}

/** Marks it used by `tokenId`; the caller holds the row lock and has checked it is APPROVED and unexpired. */
export async function markApprovalUsed(db: Queryable, approvalId: string, tokenId: string, at: Date): Promise<void> {
  await db.query("UPDATE approvals SET state = 'USED', token_id = $2, use_time = $3 WHERE approval_id = $1", [approvalId, tokenId, at]);
  await notifyApproval(db, approvalId);
}

/** Deletes an approver's decisions on approvals still pending; returns their ids. */
export async function withdrawPendingDecisions(db: Queryable, approverId: string): Promise<string[]> {
  const { rows } = await db.query<{ approval_id: string }>(
    `DELETE FROM approval_decisions d USING approvals a
     WHERE d.approval_id = a.approval_id AND a.state = 'PENDING' AND d.approver_id = $1 RETURNING d.approval_id`,
    [approverId],
  );
  for (const r of rows) await notifyApproval(db, r.approval_id);
  return rows.map((r) => r.approval_id);
}
