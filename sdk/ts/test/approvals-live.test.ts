// Approvals through the TypeScript SDK against a real broker over a fresh
// database (test/helpers/broker.ts), the clinical scenario: the operator
// gives an app a policy (`write:prescriptions:*` DANGEROUS_WRITE, one
// approval of `clinical-leads`) and creates approvers through AdminClient;
// the app's Issue fails with an ApprovalRequiredError; the approver approves
// through ApprovalClient; waitForApproval returns APPROVED; the re-issue
// carries the approval in its claims (offline verifier and Validate); a
// second re-issue is APPROVAL_USED; a denied request APPROVAL_DENIED; dual
// control needs two distinct approvers; an agent follows its delegation's
// approval with its key-bound token.

import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import {
  AdminClient,
  AgentKey,
  ApprovalClient,
  ApprovalError,
  ApprovalRequiredError,
  ApprovalState,
  BatonError,
  BrokerClient,
  TokenStatus,
  TokenVerifier,
  type AppCredentials,
  type ApproverCredentials,
  type IssueRequest,
} from "../src/index.js";

const op = { operatorToken: OPERATOR_TOKEN };
let b: TestBroker;
let admin: AdminClient;
let broker: BrokerClient;
let approvals: ApprovalClient;
let clinic: AppCredentials;
let lead: ApproverCredentials;
let lead2: ApproverCredentials;
let verifier: TokenVerifier;

const rx = (over: Partial<IssueRequest> = {}): IssueRequest => ({
  taskId: "visit-77",
  humanPrincipal: "dr-house",
  scopes: ["write:prescriptions:P-1042"],
  audiences: ["ehr-api"],
  ...over,
});

async function refused(p: Promise<unknown>): Promise<BatonError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BatonError);
    return err as BatonError;
  }
  throw new Error("expected a refusal");
}

beforeAll(async () => {
  b = await startTestBroker();
  admin = new AdminClient(b.address);
  broker = new BrokerClient(b.address);
  approvals = new ApprovalClient(b.address);
  const created = await admin.createApp(op, {
    name: "clinic-ts",
    scopeCeiling: ["read:records:*", "write:prescriptions:*"],
    audiences: ["ehr-api"],
    maxDelegationDepth: 2,
    approvalPolicy: [{ pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 1, approverGroup: "clinical-leads" }],
  });
  expect(created.app.approvalPolicy).toHaveLength(1);
  clinic = created.credentials;
  lead = (await admin.createApprover(op, { name: "dr-smith", groups: ["clinical-leads"] })).credentials;
  lead2 = (await admin.createApprover(op, { name: "dr-jones", groups: ["clinical-leads"] })).credentials;
  // Claims parsing is what is checked offline: a view that is fresh and revokes nothing.
  verifier = new TokenVerifier({ audience: "ehr-api", issuer: "https://baton.local", keys: broker, revocations: { isRevoked: () => false, freshAtMs: Date.now() + 3_600_000 } });
});
afterAll(async () => {
  verifier?.close();
  approvals?.close();
  broker?.close();
  admin?.close();
  await b?.stop();
});

describe("the clinical scenario, live", () => {
  it("APPROVAL_REQUIRED, approve, wait, re-issue with apr, then APPROVAL_USED", async () => {
    const err = await refused(broker.issue(clinic, rx()));
    expect(err).toBeInstanceOf(ApprovalRequiredError);
    const required = err as ApprovalRequiredError;
    expect([required.code, required.approvalsRequired, required.approverGroup]).toEqual([status.FAILED_PRECONDITION, 1, "clinical-leads"]);
    expect(required.approvalId).toMatch(/^apr_/);
    expect(required.expireTime!.getTime()).toBeGreaterThan(Date.now());
    const id = required.approvalId;

    const pending = await approvals.allApprovals(lead, { state: "pending" }).next();
    expect(pending.value?.approvalId).toBe(id);
    const waiting = broker.waitForApproval(clinic, id, { timeoutMs: 30_000 });
    const decided = await approvals.approve(lead, id, "dose checked against weight");
    expect(decided.state).toBe(ApprovalState.APPROVAL_STATE_APPROVED);
    const approved = await waiting;
    expect([approved.approvalId, approved.state]).toEqual([id, ApprovalState.APPROVAL_STATE_APPROVED]);

    const issued = await broker.issue(clinic, rx({ approvalId: id }));
    const leadId = lead.clientId;
    expect(issued.claims.approval).toEqual({ approvalId: id, approverIds: [leadId] });
    const offline = await verifier.verify(issued.accessToken);
    expect(offline.ok && offline.claims.approval).toEqual({ approvalId: id, approverIds: [leadId] });
    const online = await broker.validate(clinic, { token: issued.accessToken, audience: "ehr-api" });
    expect(online.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(online.claims?.approval).toEqual({ approvalId: id, approverIds: [leadId] });
    expect((await broker.getApproval(clinic, id)).state).toBe(ApprovalState.APPROVAL_STATE_USED);

    const used = await refused(broker.issue(clinic, rx({ approvalId: id })));
    expect(used).toBeInstanceOf(ApprovalError);
    expect([used.reason, (used as ApprovalError).approvalId]).toEqual(["APPROVAL_USED", id]);
  });

  it("a denied approval: waitForApproval returns DENIED and the re-issue is APPROVAL_DENIED", async () => {
    const req = rx({ taskId: "visit-99" });
    const { approvalId } = (await refused(broker.issue(clinic, req))) as ApprovalRequiredError;
    await expect(approvals.deny(lead, approvalId, "")).rejects.toThrow(TypeError);
    const waiting = broker.waitForApproval(clinic, approvalId, { timeoutMs: 30_000 });
    await approvals.deny(lead, approvalId, "wrong patient");
    expect((await waiting).state).toBe(ApprovalState.APPROVAL_STATE_DENIED);
    const denied = await refused(broker.issue(clinic, { ...req, approvalId }));
    expect(denied).toBeInstanceOf(ApprovalError);
    expect([denied.code, denied.reason]).toEqual([status.PERMISSION_DENIED, "APPROVAL_DENIED"]);
  });

  it("issueWithApproval waits for the approver and returns the token", async () => {
    const told: string[] = [];
    const pending = broker.issueWithApproval(clinic, rx({ taskId: "visit-100" }), {
      approvalTimeoutMs: 30_000,
      onApprovalRequired: (e) => {
        told.push(e.approvalId);
        void approvals.approve(lead, e.approvalId, "fine");
      },
    });
    const issued = await pending;
    expect(issued.claims.approval?.approvalId).toBe(told[0]);
  });

  it("dual control: two distinct approvers, in order, in the token", async () => {
    await admin.updateApp(op, {
      appId: clinic.clientId,
      approvalPolicy: [{ pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 2, approverGroup: "clinical-leads" }],
    });
    try {
      const req = rx({ taskId: "visit-dual" });
      const required = (await refused(broker.issue(clinic, req))) as ApprovalRequiredError;
      expect(required.approvalsRequired).toBe(2);
      const waiting = broker.waitForApproval(clinic, required.approvalId, { timeoutMs: 30_000 });
      expect((await approvals.approve(lead, required.approvalId, "first look")).state).toBe(ApprovalState.APPROVAL_STATE_PENDING);
      const again = await refused(approvals.approve(lead, required.approvalId, "me again"));
      expect(again.reason).toBe("APPROVAL_NOT_PENDING");
      expect((await approvals.approve(lead2, required.approvalId, "second look")).state).toBe(ApprovalState.APPROVAL_STATE_APPROVED);
      expect((await waiting).state).toBe(ApprovalState.APPROVAL_STATE_APPROVED);
      const issued = await broker.issue(clinic, { ...req, approvalId: required.approvalId });
      expect(issued.claims.approval?.approverIds).toEqual([lead.clientId, lead2.clientId]);
    } finally {
      await admin.updateApp(op, {
        appId: clinic.clientId,
        approvalPolicy: [{ pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 1, approverGroup: "clinical-leads" }],
      });
    }
  });

  it("an agent's delegation needs its own approval, which the agent follows with its key-bound token", async () => {
    const key = await AgentKey.generate();
    // The parent needs no approval for reading; it can delegate only what its own scopes cover.
    const parent = (await refused(broker.issue(clinic, rx({ taskId: "visit-agent", agentKey: key })))) as ApprovalRequiredError;
    await approvals.approve(lead, parent.approvalId, "agent may prescribe");
    const { credential } = await broker.issue(clinic, rx({ taskId: "visit-agent", agentKey: key, approvalId: parent.approvalId }));
    const child = (await refused(broker.delegate(credential, { scopes: ["write:prescriptions:P-1042"] }))) as ApprovalRequiredError;
    expect(child).toBeInstanceOf(ApprovalRequiredError);
    expect((await broker.getApproval(credential, child.approvalId)).state).toBe(ApprovalState.APPROVAL_STATE_PENDING);
    const waiting = broker.waitForApproval(credential, child.approvalId, { timeoutMs: 30_000 });
    await approvals.approve(lead, child.approvalId, "sub-agent too");
    expect((await waiting).state).toBe(ApprovalState.APPROVAL_STATE_APPROVED);
    const delegated = await broker.delegate(credential, { scopes: ["write:prescriptions:P-1042"], approvalId: child.approvalId });
    expect(delegated.claims.approval?.approvalId).toBe(child.approvalId);
  });

  it("admin: approvers listed, one disabled cannot decide", async () => {
    const all: string[] = [];
    for await (const a of admin.allApprovers(op, { pageSize: 1 })) all.push(a.name);
    expect(all.sort()).toEqual(["dr-jones", "dr-smith"]);
    const temp = await admin.createApprover(op, { name: "dr-temp", groups: ["clinical-leads"] });
    expect((await admin.disableApprover(op, temp.approver.approverId, { reason: "left" })).disabled).toBe(true);
    const { approvalId } = (await refused(broker.issue(clinic, rx({ taskId: "visit-temp" })))) as ApprovalRequiredError;
    const e = await refused(approvals.approve(temp.credentials, approvalId, "ok"));
    expect(e.code === status.UNAUTHENTICATED || e.reason === "APPROVER_DISABLED").toBe(true);
  });
});
