// Operator use cases for approvers: named humans who decide approvals for
// their groups. Every change is audited in its own transaction.

import { MAX_DECISION_REASON, requireGroupName } from "../domain/approvals.js";
import { AlreadyExistsError, InvalidRequestError, NotFoundError } from "../domain/errors.js";
import { optionalText } from "../domain/limits.js";
import { APPROVER_ID, hashSecret, newApproverId, newClientSecret } from "../crypto/secrets.js";
import { withdrawPendingDecisions } from "../storage/approvals.js";
import { type ApproverRecord, disableApprover, getApprover, insertApprover, listApprovers } from "../storage/approvers.js";
import { appendAudit } from "../storage/audit.js";
import { type Db, withTransaction } from "../storage/db.js";
import { pageOf, pageRequest } from "./paging.js";

export const MAX_APPROVER_GROUPS = 16;
const NAME = /^[A-Za-z0-9._-]{1,64}$/;

export class ApproverAdmin {
  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {}

  async create(input: { name: string; groups: readonly string[] }, requestId: string): Promise<{ approver: ApproverRecord; clientSecret: string }> {
    if (!NAME.test(input.name)) throw new InvalidRequestError("name", "must be 1 to 64 characters from A-Z a-z 0-9 . _ -");
    if (input.groups.length === 0 || input.groups.length > MAX_APPROVER_GROUPS) {
      throw new InvalidRequestError("groups", `must name 1 to ${MAX_APPROVER_GROUPS} groups`);
    }
    const groups = [...new Set(input.groups.map((g) => requireGroupName("groups", g)))].sort();
    const clientSecret = newClientSecret();
    const t = new Date(this.now());
    const approver: ApproverRecord = {
      approverId: newApproverId(),
      name: input.name,
      secretHash: hashSecret(clientSecret),
      groups,
      disabled: false,
      createTime: t,
      updateTime: t,
    };
    await withTransaction(this.db, async (tx) => {
      if (!(await insertApprover(tx, approver))) throw new AlreadyExistsError("approver", "name");
      await appendAudit(tx, [
        { kind: "approver.created", time: t, appId: null, requestId, actor: "operator", data: { approver_id: approver.approverId, name: approver.name, groups } },
      ]);
    });
    return { approver, clientSecret };
  }

  async list(pageSize: number, pageToken: string): Promise<{ approvers: ApproverRecord[]; nextPageToken: string }> {
    const { size, after } = pageRequest(pageSize, pageToken, APPROVER_ID);
    const { page, nextPageToken } = pageOf(await listApprovers(this.db, after, size + 1), size, (a) => a.approverId);
    return { approvers: page, nextPageToken };
  }

  /** Disables it; its approvals on approvals still pending are withdrawn in the same transaction. */
  async disable(id: string, reason: string, requestId: string): Promise<ApproverRecord> {
    if (!APPROVER_ID.test(id)) throw new NotFoundError("approver");
    const why = optionalText("reason", reason, MAX_DECISION_REASON);
    return withTransaction(this.db, async (tx) => {
      const old = await getApprover(tx, id, true);
      if (!old) throw new NotFoundError("approver");
      const t = new Date(this.now());
      await disableApprover(tx, id, t);
      const withdrawn = await withdrawPendingDecisions(tx, id);
      await appendAudit(tx, [
        { kind: "approver.disabled", time: t, appId: null, requestId, actor: "operator", data: { approver_id: id, reason: why, withdrawn_approval_ids: withdrawn } },
      ]);
      return { ...old, disabled: true, updateTime: t };
    });
  }
}
