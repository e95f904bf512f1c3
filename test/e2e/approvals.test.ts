// The approval flow end to end, through the generated TypeScript clients
// over a real broker and database (issue 8):
//  - a clinical agent asks for `write:prescriptions:P-1042`, classed
//    dangerous: APPROVAL_REQUIRED, nothing minted; WatchApproval sees PENDING
//    then APPROVED; the re-issue carries `apr`; Validate shows it; a second
//    attempt needs a new approval;
//  - a denied request stores nothing but its approval and audit events;
//  - delegation never inherits an approval; dual control needs two distinct
//    approvers; only approvers of the group decide; who may read what;
//  - hostile input gets clean errors.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalState } from "../../server/gen/baton/v1/approvals.js";
import { TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { agentMd } from "../helpers/agent-key.js";
import { approvalClient, createApprover, createPolicyApp, rule, type TestApprover, watch } from "../helpers/approvals.js";
import { call, issueRequest, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let apv: ReturnType<typeof approvalClient>;
let clinic: TestApp;
let pharmacist: TestApprover;
let pharmacist2: TestApprover;
let nurse: TestApprover;

const CEILING = ["read:records:*", "write:prescriptions:*", "write:notes:*"];
const rx = (over = {}) =>
  issueRequest({ taskId: "visit-77", humanPrincipal: "dr-house", scopes: ["write:prescriptions:P-1042"], audiences: ["ehr-api"], ...over });
const count = async (sql: string, params: unknown[] = []): Promise<number> => Number((await b.broker.db.query(`SELECT count(*) AS n FROM ${sql}`, params)).rows[0].n);
const auditKinds = async (approvalId: string): Promise<string[]> =>
  (await b.broker.db.query("SELECT kind FROM audit_events WHERE payload LIKE $1 ORDER BY seq", [`%${approvalId}%`])).rows.map((r) => r.kind as string);

beforeAll(async () => {
  b = await startTestBroker();
  apv = approvalClient(b);
  clinic = await createPolicyApp(b, CEILING, [
    rule("write:prescriptions:*", "dangerous", 1, "pharmacists"),
    rule("write:notes:*", "write", 0),
    rule("read:*:*", "read", 0),
  ], ["ehr-api"], 3);
  pharmacist = await createApprover(b, ["pharmacists"], "dr-smith");
  pharmacist2 = await createApprover(b, ["pharmacists", "doctors"], "dr-jones");
  nurse = await createApprover(b, ["nurses"], "nurse-joy");
});
afterAll(async () => {
  apv?.close();
  await b?.stop();
});

describe("the clinical scenario", () => {
  it("holds a dangerous write for approval, mints it once approved with apr, and never twice", async () => {
    const grants = await count("grants");
    const first = await refusal(call(b.client.issue, b.client, rx(), clinic.md));
    expect(first.reason).toBe("APPROVAL_REQUIRED");
    expect(first.code).toBe(9); // FAILED_PRECONDITION
    const approvalId = first.metadata.approval_id!;
    expect(approvalId).toMatch(/^apr_[0-9A-Za-z]{22}$/);
    expect(first.metadata.approvals_required).toBe("1");
    expect(first.metadata.approver_group).toBe("pharmacists");
    expect(Date.parse(first.metadata.expire_time!)).toBeGreaterThan(Date.now());
    expect(await count("grants")).toBe(grants);

    // The requester follows it; the pending approval says what is asked.
    const w = watch(apv, approvalId, clinic.md);
    await w.waitFor(1);
    const pending = w.states[0]!;
    expect(pending.state).toBe(ApprovalState.APPROVAL_STATE_PENDING);
    expect(pending).toMatchObject({ appId: clinic.appId, requester: `app:${clinic.appId}`, taskId: "visit-77", humanPrincipal: "dr-house", scopes: ["write:prescriptions:P-1042"], scopesNeedingApproval: ["write:prescriptions:P-1042"], audiences: ["ehr-api"], approvalsRequired: 1, approverGroup: "pharmacists" });

    // Too early: still pending.
    expect((await refusal(call(b.client.issue, b.client, rx({ approvalId }), clinic.md))).reason).toBe("APPROVAL_PENDING");
    // Only an approver of the group decides; never the app or the operator.
    expect((await refusal(call(apv.approve, apv, { approvalId, reason: "ok" }, nurse.md))).reason).toBe("APPROVER_NOT_ELIGIBLE");
    expect((await refusal(call(apv.approve, apv, { approvalId, reason: "ok" }, clinic.md))).reason).toBe("NOT_PERMITTED");
    expect((await refusal(call(apv.approve, apv, { approvalId, reason: "ok" }, operatorMd()))).reason).toBe("NOT_PERMITTED");

    const approved = await call(apv.approve, apv, { approvalId, reason: "dose checked against weight" }, pharmacist.md);
    expect(approved.approval!.state).toBe(ApprovalState.APPROVAL_STATE_APPROVED);
    expect(approved.approval!.decisions).toMatchObject([{ approverId: pharmacist.approverId, approverName: "dr-smith", approved: true, reason: "dose checked against weight" }]);
    await w.waitEnd();
    expect(w.ended).toBe("end");
    expect(w.states.map((s) => s.state)).toEqual([ApprovalState.APPROVAL_STATE_PENDING, ApprovalState.APPROVAL_STATE_APPROVED]);
    expect((await refusal(call(apv.approve, apv, { approvalId, reason: "again" }, pharmacist2.md))).reason).toBe("APPROVAL_NOT_PENDING");

    // Bound to the request: another task, scope set, lifetime or human is refused.
    for (const over of [{ taskId: "visit-78" }, { scopes: ["write:prescriptions:P-1042", "read:records:P-1042"] }, { ttl: { seconds: 60, nanos: 0 } }, { humanPrincipal: "dr-evil" }]) {
      const e = await refusal(call(b.client.issue, b.client, rx({ approvalId, ...over }), clinic.md));
      expect(e.reason, JSON.stringify(over)).toBe("APPROVAL_MISMATCH");
      expect(e.code).toBe(7); // PERMISSION_DENIED
    }
    const other = await createPolicyApp(b, CEILING, [rule("write:prescriptions:*", "dangerous", 1, "pharmacists")]);
    expect((await refusal(call(b.client.issue, b.client, rx({ approvalId }), other.md))).reason).toBe("APPROVAL_MISMATCH");

    const issued = await call(b.client.issue, b.client, rx({ approvalId }), clinic.md);
    expect(issued.claims!.approval).toEqual({ approvalId, approverIds: [pharmacist.approverId] });
    const payload = JSON.parse(Buffer.from(issued.accessToken.split(".")[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
    expect(payload.apr).toEqual({ id: approvalId, by: [pharmacist.approverId] });
    const v = await call(b.client.validate, b.client, { token: issued.accessToken, audience: "ehr-api", requiredScopes: [] }, clinic.md);
    expect(v.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(v.claims!.approval).toEqual({ approvalId, approverIds: [pharmacist.approverId] });

    const used = await call(apv.getApproval, apv, { approvalId }, clinic.md);
    expect(used.approval!.state).toBe(ApprovalState.APPROVAL_STATE_USED);
    expect(used.approval!.tokenId).toBe(issued.claims!.tokenId);

    // Used once: the same request again needs a new approval.
    expect((await refusal(call(b.client.issue, b.client, rx({ approvalId }), clinic.md))).reason).toBe("APPROVAL_USED");
    const again = await refusal(call(b.client.issue, b.client, rx(), clinic.md));
    expect(again.reason).toBe("APPROVAL_REQUIRED");
    expect(again.metadata.approval_id).not.toBe(approvalId);

    expect(await auditKinds(approvalId)).toEqual(expect.arrayContaining(["approval.requested", "approval.approved", "token.issued", "approval.used"]));
    expect(await count("grants WHERE token_id = $1", [issued.claims!.tokenId])).toBe(1);
  });

  it("issues what needs no approval as before, and a write classed 0 without approval", async () => {
    const r = await call(b.client.issue, b.client, rx({ scopes: ["read:records:P-1042", "write:notes:N-1"] }), clinic.md);
    expect(r.claims!.approval).toBeUndefined();
  });

  it("a denied request stores nothing but its approval and audit events", async () => {
    const grants = await count("grants");
    const e = await refusal(call(b.client.issue, b.client, rx({ taskId: "visit-99" }), clinic.md));
    const approvalId = e.metadata.approval_id!;
    const w = watch(apv, approvalId, operatorMd());
    await w.waitFor(1);
    expect((await refusal(call(apv.deny, apv, { approvalId, reason: "" }, pharmacist.md))).reason).toBe("INVALID_REQUEST");
    const denied = await call(apv.deny, apv, { approvalId, reason: "wrong patient" }, pharmacist.md);
    expect(denied.approval!.state).toBe(ApprovalState.APPROVAL_STATE_DENIED);
    await w.waitEnd();
    expect(w.states.map((s) => s.state)).toEqual([ApprovalState.APPROVAL_STATE_PENDING, ApprovalState.APPROVAL_STATE_DENIED]);
    const retry = await refusal(call(b.client.issue, b.client, rx({ taskId: "visit-99", approvalId }), clinic.md));
    expect(retry.reason).toBe("APPROVAL_DENIED");
    expect(retry.code).toBe(7);
    expect((await refusal(call(apv.approve, apv, { approvalId, reason: "changed my mind" }, pharmacist2.md))).reason).toBe("APPROVAL_NOT_PENDING");
    expect(await count("grants")).toBe(grants);
    expect(await auditKinds(approvalId)).toEqual(["approval.requested", "approval.denied", "issue.refused"]);
  });
});

describe("delegation", () => {
  it("never inherits the parent's approval: the child needs one of its own, asked and used by the agent", async () => {
    const first = await refusal(call(b.client.issue, b.client, rx({ taskId: "visit-d" }), clinic.md));
    await call(apv.approve, apv, { approvalId: first.metadata.approval_id!, reason: "ok" }, pharmacist.md);
    const parent = await call(b.client.issue, b.client, rx({ taskId: "visit-d", approvalId: first.metadata.approval_id! }), clinic.md);
    const md = () => agentMd(parent.accessToken);
    const dreq = (approvalId = "") => ({ scopes: ["write:prescriptions:P-1042"], audiences: [], ttl: undefined, allowTtlClamp: true, agentPublicKeyJwk: "", approvalId });

    // The parent's own approval does not serve the delegation.
    expect((await refusal(call(b.client.delegate, b.client, dreq(first.metadata.approval_id!), md()))).reason).toBe("APPROVAL_MISMATCH");
    const e = await refusal(call(b.client.delegate, b.client, dreq(), md()));
    expect(e.reason).toBe("APPROVAL_REQUIRED");
    const approvalId = e.metadata.approval_id!;
    const got = await call(apv.getApproval, apv, { approvalId }, md());
    expect(got.approval).toMatchObject({ requester: `agent:${parent.claims!.agentId}`, parentTokenId: parent.claims!.tokenId, taskId: "visit-d" });
    // The app sees its agents' approvals; another app and another group's approver do not.
    await call(apv.getApproval, apv, { approvalId }, clinic.md);
    const other = await createPolicyApp(b, CEILING, []);
    expect((await refusal(call(apv.getApproval, apv, { approvalId }, other.md))).reason).toBe("NOT_FOUND");
    expect((await refusal(call(apv.getApproval, apv, { approvalId }, nurse.md))).reason).toBe("NOT_FOUND");

    await call(apv.approve, apv, { approvalId, reason: "sub-agent may file it" }, pharmacist2.md);
    // Only that parent may use it.
    const sibling = await refusal(call(b.client.issue, b.client, rx({ taskId: "visit-d", approvalId }), clinic.md));
    expect(sibling.reason).toBe("APPROVAL_MISMATCH");
    const child = await call(b.client.delegate, b.client, dreq(approvalId), md());
    expect(child.claims!.approval).toEqual({ approvalId, approverIds: [pharmacist2.approverId] });
    expect(child.claims!.lineage.map((l) => l.tokenId)).toEqual([parent.claims!.tokenId]);
    // The grandchild does not inherit the child's approval either.
    const g = await refusal(call(b.client.delegate, b.client, dreq(), agentMd(child.accessToken)));
    expect(g.reason).toBe("APPROVAL_REQUIRED");
  });
});

describe("dual control", () => {
  it("needs two distinct approvers; one approver cannot approve twice", async () => {
    const app = await createPolicyApp(b, CEILING, [rule("write:prescriptions:*", "dangerous", 2, "pharmacists")]);
    const e = await refusal(call(b.client.issue, b.client, rx(), app.md));
    const approvalId = e.metadata.approval_id!;
    expect(e.metadata.approvals_required).toBe("2");
    const one = await call(apv.approve, apv, { approvalId, reason: "first" }, pharmacist.md);
    expect(one.approval!.state).toBe(ApprovalState.APPROVAL_STATE_PENDING);
    const twice = await refusal(call(apv.approve, apv, { approvalId, reason: "second, by the same" }, pharmacist.md));
    expect(twice.reason).toBe("APPROVAL_NOT_PENDING");
    expect((await refusal(call(b.client.issue, b.client, rx({ approvalId }), app.md))).reason).toBe("APPROVAL_PENDING");
    const two = await call(apv.approve, apv, { approvalId, reason: "second" }, pharmacist2.md);
    expect(two.approval!.state).toBe(ApprovalState.APPROVAL_STATE_APPROVED);
    const t = await call(b.client.issue, b.client, rx({ approvalId }), app.md);
    expect(t.claims!.approval!.approverIds).toEqual([pharmacist.approverId, pharmacist2.approverId]);
  });

  it("a disabled approver is refused, and its approval on a pending request is withdrawn", async () => {
    const app = await createPolicyApp(b, CEILING, [rule("write:prescriptions:*", "dangerous", 2, "pharmacists")]);
    const leaving = await createApprover(b, ["pharmacists"]);
    const e = await refusal(call(b.client.issue, b.client, rx(), app.md));
    const approvalId = e.metadata.approval_id!;
    await call(apv.approve, apv, { approvalId, reason: "first" }, leaving.md);
    await call(b.admin.disableApprover, b.admin, { approverId: leaving.approverId, reason: "left the clinic" }, operatorMd());
    expect((await refusal(call(apv.listApprovals, apv, { state: 0, appId: "", pageSize: 0, pageToken: "" }, leaving.md))).reason).toBe("APPROVER_DISABLED");
    const a = await call(apv.getApproval, apv, { approvalId }, app.md);
    expect(a.approval!.decisions).toEqual([]);
    // One more approval is not enough any more.
    const one = await call(apv.approve, apv, { approvalId, reason: "first again" }, pharmacist.md);
    expect(one.approval!.state).toBe(ApprovalState.APPROVAL_STATE_PENDING);
  });
});

describe("expiry", () => {
  it("an approval past its window is EXPIRED, audited once, and cannot be used or decided", async () => {
    const e = await refusal(call(b.client.issue, b.client, rx({ taskId: "visit-exp" }), clinic.md));
    const approvalId = e.metadata.approval_id!;
    await call(apv.approve, apv, { approvalId, reason: "ok" }, pharmacist.md);
    // The window passing, without waiting for it.
    await b.broker.db.query("UPDATE approvals SET expire_time = now() - interval '1 second' WHERE approval_id = $1", [approvalId]);
    expect((await refusal(call(b.client.issue, b.client, rx({ taskId: "visit-exp", approvalId }), clinic.md))).reason).toBe("APPROVAL_EXPIRED");
    const got = await call(apv.getApproval, apv, { approvalId }, clinic.md);
    expect(got.approval!.state).toBe(ApprovalState.APPROVAL_STATE_EXPIRED);
    await call(apv.listApprovals, apv, { state: 0, appId: "", pageSize: 0, pageToken: "" }, operatorMd());
    expect((await refusal(call(apv.approve, apv, { approvalId, reason: "late" }, pharmacist2.md))).reason).toBe("APPROVAL_NOT_PENDING");
    expect((await auditKinds(approvalId)).filter((k) => k === "approval.expired")).toHaveLength(1);
  });
});

describe("ListApprovals", () => {
  it("shows approvers their groups' approvals and the operator all, newest first, paged, filtered", async () => {
    const app = await createPolicyApp(b, CEILING, [rule("write:prescriptions:*", "dangerous", 1, "pharmacists"), rule("write:notes:*", "write", 1, "nurses")]);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await refusal(call(b.client.issue, b.client, rx({ taskId: `list-${i}` }), app.md))).metadata.approval_id!);
    const noteId = (await refusal(call(b.client.issue, b.client, rx({ scopes: ["write:notes:N-1"] }), app.md))).metadata.approval_id!;
    const list = (md: ReturnType<typeof operatorMd>, pageToken = "", pageSize = 0, state = 0) =>
      call(apv.listApprovals, apv, { state, appId: app.appId, pageSize, pageToken }, md);

    const all = await list(operatorMd());
    expect(all.approvals.map((a) => a.approvalId)).toEqual([noteId, ...ids.reverse()]);
    const nurses = await list(nurse.md);
    expect(nurses.approvals.map((a) => a.approvalId)).toEqual([noteId]);
    const p1 = await list(pharmacist.md, "", 2);
    expect(p1.approvals).toHaveLength(2);
    const p2 = await list(pharmacist.md, p1.nextPageToken, 2);
    expect(p2.nextPageToken).toBe("");
    expect([...p1.approvals, ...p2.approvals].map((a) => a.approvalId)).toEqual(ids);
    await call(apv.deny, apv, { approvalId: ids[0]!, reason: "no" }, pharmacist.md);
    const denied = await list(operatorMd(), "", 0, ApprovalState.APPROVAL_STATE_DENIED);
    expect(denied.approvals.map((a) => a.approvalId)).toEqual([ids[0]]);
    expect((await refusal(list(clinic.md))).reason).toBe("NOT_PERMITTED");
  });
});

describe("hostile input", () => {
  it("gets clean errors and changes nothing", async () => {
    const e = await refusal(call(b.client.issue, b.client, rx({ taskId: "visit-h" }), clinic.md));
    const approvalId = e.metadata.approval_id!;
    const unknown = `apr_${"A".repeat(22)}`;
    const cases: [() => Promise<unknown>, string][] = [
      [() => call(apv.approve, apv, { approvalId, reason: "nul\u0000" }, pharmacist.md), "INVALID_REQUEST"],
      [() => call(apv.approve, apv, { approvalId, reason: "x".repeat(513) }, pharmacist.md), "INVALID_REQUEST"],
      [() => call(apv.approve, apv, { approvalId, reason: "bell\u0007" }, pharmacist.md), "INVALID_REQUEST"],
      [() => call(apv.approve, apv, { approvalId: unknown, reason: "ok" }, pharmacist.md), "NOT_FOUND"],
      [() => call(apv.approve, apv, { approvalId: "x".repeat(10_000), reason: "ok" }, pharmacist.md), "NOT_FOUND"],
      [() => call(apv.deny, apv, { approvalId: unknown, reason: "ok" }, pharmacist.md), "NOT_FOUND"],
      [() => call(apv.getApproval, apv, { approvalId: unknown }, operatorMd()), "NOT_FOUND"],
      [() => call(apv.getApproval, apv, { approvalId: "apr_\u0000" }, operatorMd()), "INVALID_REQUEST"],
      [() => call(apv.listApprovals, apv, { state: 0, appId: "", pageSize: 1001, pageToken: "" }, operatorMd()), "INVALID_REQUEST"],
      [() => call(apv.listApprovals, apv, { state: 0, appId: "", pageSize: 0, pageToken: "not-a-token" }, operatorMd()), "INVALID_REQUEST"],
      [() => call(apv.listApprovals, apv, { state: 42, appId: "", pageSize: 0, pageToken: "" }, operatorMd()), "INVALID_REQUEST"],
      [() => call(apv.listApprovals, apv, { state: 0, appId: "app_'; DROP TABLE approvals", pageSize: 0, pageToken: "" }, operatorMd()), "INVALID_REQUEST"],
      [() => call(b.client.issue, b.client, rx({ taskId: "visit-h", approvalId: "apr_short" }), clinic.md), "INVALID_REQUEST"],
      [() => call(b.client.issue, b.client, rx({ taskId: "visit-h", approvalId: unknown }), clinic.md), "NOT_FOUND"],
      [() => call(apv.listApprovals, apv, { state: 0, appId: "", pageSize: 0, pageToken: "" }, clinic.md), "NOT_PERMITTED"],
    ];
    for (const [p, reason] of cases) expect((await refusal(p())).reason).toBe(reason);
    const w = watch(apv, unknown, operatorMd());
    await w.waitEnd();
    expect((w.ended as { reason: string }).reason).toBe("NOT_FOUND");
    const a = await call(apv.getApproval, apv, { approvalId }, operatorMd());
    expect(a.approval!.state).toBe(ApprovalState.APPROVAL_STATE_PENDING);
    expect(a.approval!.decisions).toEqual([]);
    // The broker is still up.
    await call(b.client.issue, b.client, rx({ scopes: ["read:records:P-1"] }), clinic.md);
  });
});
