// Approvers: named humans who decide approvals (query functions only).

import type { Queryable } from "./db.js";

export interface ApproverRecord {
  readonly approverId: string;
  readonly name: string;
  readonly secretHash: Buffer;
  readonly groups: readonly string[];
  readonly disabled: boolean;
  readonly createTime: Date;
  readonly updateTime: Date;
}

interface Row {
  approver_id: string;
  name: string;
  secret_hash: Buffer;
  groups: string[];
  disabled: boolean;
  create_time: Date;
  update_time: Date;
}

const COLUMNS = "approver_id, name, secret_hash, groups, disabled, create_time, update_time";

const fromRow = (r: Row): ApproverRecord => ({
  approverId: r.approver_id,
  name: r.name,
  secretHash: r.secret_hash,
  groups: r.groups,
  disabled: r.disabled,
  createTime: r.create_time,
  updateTime: r.update_time,
});

/** Inserts an approver; returns false when the name is taken. */
export async function insertApprover(db: Queryable, a: ApproverRecord): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO approvers (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
    [a.approverId, a.name, a.secretHash, a.groups, a.disabled, a.createTime, a.updateTime],
  );
  return res.rowCount === 1;
}

export async function getApprover(db: Queryable, id: string, forUpdate = false): Promise<ApproverRecord | null> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM approvers WHERE approver_id = $1${forUpdate ? " FOR UPDATE" : ""}`, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Approvers with id > afterId, ordered by id. */
export async function listApprovers(db: Queryable, afterId: string, limit: number): Promise<ApproverRecord[]> {
  const { rows } = await db.query<Row>(`SELECT ${COLUMNS} FROM approvers WHERE approver_id > $1 ORDER BY approver_id LIMIT $2`, [afterId, limit]);
  return rows.map(fromRow);
}

export async function disableApprover(db: Queryable, id: string, at: Date): Promise<void> {
  await db.query("UPDATE approvers SET disabled = true, update_time = $2 WHERE approver_id = $1", [id, at]);
}
