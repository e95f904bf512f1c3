// Human approval of what an app's policy holds back (issue 8).
//
// Issue and Delegate call `gate`: a request whose scopes need approval and
// that names none stores a pending approval, bound to the request, and is
// refused with APPROVAL_REQUIRED; a request naming one is checked against it
// and, once minted, uses it up in the grant's own transaction (`use`), so
// two concurrent requests under one approval mint once. Approvers of the
// rule's group approve or deny; the requester polls or watches. An approval
// past its window is EXPIRED: marked lazily when read, audited once.
// Every state change is written with its audit event in one transaction.

import {
  type ApprovalBinding,
  approvalNeeded,
  type ApprovalRule,
  type ApprovalState,
  bindingMismatch,
  MAX_DECISION_REASON,
} from "../domain/approvals.js";
import {
  ApprovalNotPendingError,
  ApprovalRequiredError,
  ApprovalUnusableError,
  ApproverNotEligibleError,
  InvalidRequestError,
  NotFoundError,
  NotPermittedError,
} from "../domain/errors.js";
import { optionalText } from "../domain/limits.js";
import type { LineageEntry, TokenApproval } from "../domain/tokens.js";
import { APP_ID, APPROVAL_ID, newApprovalId } from "../crypto/secrets.js";
import {
  type ApprovalFilter,
  type ApprovalRecord,
  expireDue,
  getApproval,
  insertApproval,
  insertDecision,
  listApprovals,
  markApprovalUsed,
  setApprovalState,
} from "../storage/approvals.js";
import { appendAudit, type AuditEvent } from "../storage/audit.js";
import { type Db, type Tx, withTransaction } from "../storage/db.js";
import { lineageData, type RequestContext } from "./minter.js";
import { actorOf, type Principal } from "./principals.js";

export interface ApprovalSettings {
  /** How long an approval may wait for a decision, and then for its use. */
  readonly windowSeconds: number;
  readonly now: () => number;
}

/** The audit facts of an approval, with the data keys every issue-8 event shares. */
function approvalData(a: ApprovalRecord, result: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    approval_id: a.approvalId,
    approval_result: result,
    request_kind: a.requestKind,
    requester: a.requester,
    parent_token_id: a.parentTokenId,
    task_id: a.taskId,
    orchestration_id: a.orchestrationId,
    human: a.humanPrincipal,
    scopes: a.scopes,
    scopes_needing_approval: a.scopesNeedingApproval,
    audiences: a.audiences,
    ttl_seconds: a.ttlSeconds,
    approvals_required: a.approvalsRequired,
    approver_group: a.approverGroup,
    expire_time: a.expireTime.toISOString(),
    ...extra,
  };
}

const PAGE_DEFAULT = 100;
const PAGE_MAX = 1000;

export class Approvals {
  constructor(
    private readonly db: Db,
    private readonly settings: ApprovalSettings,
  ) {}

  /**
   * Decides whether a request (already within every other limit) may be
   * minted: null when its scopes need no approval and it names none; the
   * approval to record in the token when it names a usable one. Otherwise
   * throws: APPROVAL_REQUIRED (after storing a pending approval), or why the
   * named approval cannot be used.
   */
  async gate(
    policy: readonly ApprovalRule[],
    binding: ApprovalBinding,
    approvalId: string,
    lineage: readonly LineageEntry[],
    caller: Principal,
    ctx: RequestContext,
  ): Promise<TokenApproval | null> {
    if (approvalId !== "") return this.usable(approvalId, binding);
    const need = approvalNeeded(policy, binding.scopes);
    if (need === null) return null;
    const nowMs = this.settings.now();
    const a: ApprovalRecord = {
      ...binding,
      approvalId: newApprovalId(),
      seq: 0n,
      state: "PENDING",
      scopesNeedingApproval: need.scopes,
      approvalsRequired: need.approvalsRequired,
      approverGroup: need.approverGroup,
      createTime: new Date(nowMs),
      expireTime: new Date(nowMs + this.settings.windowSeconds * 1000),
      useTime: null,
      tokenId: null,
      decisions: [],
    };
    await withTransaction(this.db, async (tx) => {
      await insertApproval(tx, a);
      await appendAudit(tx, [
        {
          kind: "approval.requested",
          time: a.createTime,
          appId: a.appId,
          requestId: ctx.requestId,
          actor: actorOf(caller),
          data: approvalData(a, "pending", {
            agent_id: caller.kind === "agent" ? caller.claims.agentId : null,
            lineage: lineageData(lineage),
          }),
        },
      ]);
    });
    throw new ApprovalRequiredError(a.approvalId, a.approvalsRequired, a.approverGroup, a.expireTime);
  }

  /** The named approval, if this request may be minted under it (checked again, locked, in `use`). */
  private async usable(approvalId: string, binding: ApprovalBinding): Promise<TokenApproval> {
    if (!APPROVAL_ID.test(approvalId)) throw new InvalidRequestError("approval_id", "is not an approval id (apr_...)");
    const a = await this.load(approvalId);
    if (!a) throw new NotFoundError("approval");
    // The binding first: nothing about another request's approval is told.
    const field = bindingMismatch(a, binding);
    if (field !== null) throw new ApprovalUnusableError("APPROVAL_MISMATCH", approvalId, field);
    refuseUnlessApproved(a);
    return approvalOf(a);
  }

  /**
   * In the mint transaction, before the grant is inserted: locks the
   * approval, checks it is still approved and unexpired, and marks it used
   * by `tokenId`. Returns the audit event of its use.
   */
  async use(tx: Tx, approvalId: string, tokenId: string, agentId: string, caller: Principal, ctx: RequestContext): Promise<AuditEvent> {
    const a = await getApproval(tx, approvalId, true);
    if (!a) throw new NotFoundError("approval");
    const nowMs = this.settings.now();
    // Expired since the check: refused here; the next read marks it.
    if (a.state === "APPROVED" && a.expireTime.getTime() <= nowMs) throw new ApprovalUnusableError("APPROVAL_EXPIRED", approvalId);
    refuseUnlessApproved(a);
    const t = new Date(nowMs);
    await markApprovalUsed(tx, approvalId, tokenId, t);
    return {
      kind: "approval.used",
      time: t,
      appId: a.appId,
      requestId: ctx.requestId,
      actor: actorOf(caller),
      data: approvalData(a, "used", { token_id: tokenId, agent_id: agentId, approver_ids: approvalOf(a).approverIds }),
    };
  }

  /** One approval, after marking it expired if its window has passed; null when unknown. */
  private async load(approvalId: string): Promise<ApprovalRecord | null> {
    await this.expire([approvalId]);
    return getApproval(this.db, approvalId);
  }

  /** Marks EXPIRED the live approvals past their window (of `ids`; null: all), each with its audit event, once. */
  private async expire(ids: readonly string[] | null): Promise<void> {
    const now = new Date(this.settings.now());
    await withTransaction(this.db, async (tx) => {
      const expired = await expireDue(tx, now, ids);
      await appendAudit(
        tx,
        expired.map((a) => ({ kind: "approval.expired", time: now, appId: a.appId, requestId: null, actor: "broker", data: approvalData(a, "expired") })),
      );
    });
  }

  // ---- ApprovalService ----------------------------------------------------

  /** Approvers see their groups' approvals, the operator all; newest first. */
  async list(
    caller: Principal,
    input: { state: ApprovalState | null; appId: string; pageSize: number; pageToken: string },
  ): Promise<{ approvals: ApprovalRecord[]; nextPageToken: string }> {
    let groups: readonly string[] | null;
    if (caller.kind === "operator") groups = null;
    else if (caller.kind === "approver") groups = caller.approver.groups;
    else throw new NotPermittedError("only approvers and the operator may list approvals");
    const size = input.pageSize === 0 ? PAGE_DEFAULT : input.pageSize;
    if (size > PAGE_MAX) throw new InvalidRequestError("page_size", `must be at most ${PAGE_MAX}`);
    let before: bigint | null = null;
    if (input.pageToken !== "") {
      const text = Buffer.from(input.pageToken, "base64url").toString("utf8");
      if (!/^[1-9][0-9]{0,18}$/.test(text)) throw new InvalidRequestError("page_token", "is not a token from a previous page");
      before = BigInt(text);
    }
    if (input.appId !== "" && !APP_ID.test(input.appId)) throw new InvalidRequestError("app_id", "is not an app id");
    await this.expire(null);
    const filter: ApprovalFilter = { state: input.state, appId: input.appId || null, groups };
    const rows = await listApprovals(this.db, filter, before, size + 1);
    const page = rows.slice(0, size);
    const nextPageToken = rows.length > size ? Buffer.from(page.at(-1)!.seq.toString()).toString("base64url") : "";
    return { approvals: page, nextPageToken };
  }

  /** One approval the caller may see; NOT_FOUND otherwise, as for an unknown id. */
  async get(caller: Principal, approvalId: string): Promise<ApprovalRecord> {
    if (!APPROVAL_ID.test(approvalId)) throw new NotFoundError("approval");
    const a = await this.load(approvalId);
    if (!a || !mayRead(caller, a)) throw new NotFoundError("approval");
    return a;
  }

  /** The approval's state now, for a watch: null once it is gone. */
  async current(approvalId: string): Promise<ApprovalRecord | null> {
    return this.load(approvalId);
  }

  approve(caller: Principal, approvalId: string, reason: string, ctx: RequestContext): Promise<ApprovalRecord> {
    return this.decide(caller, approvalId, reason, true, ctx);
  }

  deny(caller: Principal, approvalId: string, reason: string, ctx: RequestContext): Promise<ApprovalRecord> {
    return this.decide(caller, approvalId, reason, false, ctx);
  }

  private async decide(caller: Principal, approvalId: string, reason: string, approved: boolean, ctx: RequestContext): Promise<ApprovalRecord> {
    // Approvals come from named people: not an app, not the operator.
    if (caller.kind !== "approver") throw new NotPermittedError("only an approver may approve or deny");
    const approver = caller.approver;
    if (reason === "") throw new InvalidRequestError("reason", "is required");
    const why = optionalText("reason", reason, MAX_DECISION_REASON)!;
    if (!APPROVAL_ID.test(approvalId)) throw new NotFoundError("approval");
    await this.expire([approvalId]);
    await withTransaction(this.db, async (tx) => {
      const a = await getApproval(tx, approvalId, true);
      if (!a) throw new NotFoundError("approval");
      if (!approver.groups.includes(a.approverGroup)) throw new ApproverNotEligibleError();
      if (a.state !== "PENDING") throw new ApprovalNotPendingError(approvalId, a.state);
      if (a.decisions.some((d) => d.approverId === approver.approverId)) throw new ApprovalNotPendingError(approvalId, a.state, true);
      const t = new Date(this.settings.now());
      await insertDecision(tx, approvalId, { approverId: approver.approverId, approverName: approver.name, approved, reason: why, decideTime: t });
      // Distinct approvers: one decision per approver (primary key), counted here.
      const approvals = a.decisions.filter((d) => d.approved).length + (approved ? 1 : 0);
      const state: ApprovalState = !approved ? "DENIED" : approvals >= a.approvalsRequired ? "APPROVED" : "PENDING";
      if (state !== "PENDING") await setApprovalState(tx, approvalId, state);
      await appendAudit(tx, [
        {
          kind: approved ? "approval.approved" : "approval.denied",
          time: t,
          appId: a.appId,
          requestId: ctx.requestId,
          actor: actorOf(caller),
          data: approvalData(a, state.toLowerCase(), { reason: why, approver_id: approver.approverId, approvals_given: approvals }),
        },
      ]);
    });
    return (await getApproval(this.db, approvalId))!;
  }
}

function refuseUnlessApproved(a: ApprovalRecord): void {
  switch (a.state) {
    case "APPROVED":
      return;
    case "PENDING":
      throw new ApprovalUnusableError("APPROVAL_PENDING", a.approvalId);
    case "DENIED":
      throw new ApprovalUnusableError("APPROVAL_DENIED", a.approvalId);
    case "EXPIRED":
      throw new ApprovalUnusableError("APPROVAL_EXPIRED", a.approvalId);
    case "USED":
      throw new ApprovalUnusableError("APPROVAL_USED", a.approvalId);
  }
}

const approvalOf = (a: ApprovalRecord): TokenApproval => ({
  approvalId: a.approvalId,
  approverIds: a.decisions.filter((d) => d.approved).map((d) => d.approverId),
});

/**
 * Who may read an approval: the operator; approvers of its group; the app it
 * is for (it issued the request, or owns the agent that delegated); the agent
 * that asked.
 */
export function mayRead(p: Principal, a: ApprovalRecord): boolean {
  switch (p.kind) {
    case "operator":
      return true;
    case "approver":
      return p.approver.groups.includes(a.approverGroup);
    case "app":
      return p.app.appId === a.appId;
    case "agent":
      return a.requester === `agent:${p.claims.agentId}`;
    case "resourceServer":
      return false;
  }
}
