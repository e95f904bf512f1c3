// Approval policy on apps and approvers, through the generated client over a
// real broker: the policy is validated, stored and returned; approvers are
// created with an `apv_` id and a secret shown once, listed, disabled; hostile
// input gets clean errors and stores nothing.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApprovalRule, ScopeClass } from "../../server/gen/baton/v1/admin.js";
import { basic, call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => b?.stop());

const dangerous: ApprovalRule = { pattern: "write:prescriptions:*", scopeClass: ScopeClass.SCOPE_CLASS_DANGEROUS_WRITE, approvalsRequired: 2, approverGroup: "pharmacists" };
const createReq = (policy: ApprovalRule[], name = `app-${Math.random().toString(36).slice(2, 10)}`) => ({
  name,
  scopeCeiling: ["read:records:*", "write:prescriptions:*"],
  audiences: ["ehr-api"],
  maxTtl: undefined,
  maxDelegationDepth: 0,
  approvalPolicy: policy,
  maxTaskLifetime: undefined,
});
const count = async (table: string): Promise<number> => Number((await b.broker.db.query(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);

describe("App.approval_policy", () => {
  it("is stored, returned by Get and List, and replaced by UpdateApp", async () => {
    const r = await call(b.admin.createApp, b.admin, createReq([dangerous]), operatorMd());
    expect(r.app!.approvalPolicy).toEqual([dangerous]);
    const got = await call(b.admin.getApp, b.admin, { appId: r.app!.appId }, operatorMd());
    expect(got.app!.approvalPolicy).toEqual([dangerous]);
    const write: ApprovalRule = { pattern: "write:*:*", scopeClass: ScopeClass.SCOPE_CLASS_WRITE, approvalsRequired: 1, approverGroup: "nurses" };
    const base = { appId: r.app!.appId, name: undefined, updateScopeCeiling: false, scopeCeiling: [], updateAudiences: false, audiences: [], maxTtl: undefined, maxDelegationDepth: undefined, rateLimitPerSecond: undefined, rateLimitBurst: undefined, maxTaskLifetime: undefined };
    // Not asked to change: unchanged.
    const same = await call(b.admin.updateApp, b.admin, { ...base, updateApprovalPolicy: false, approvalPolicy: [write] }, operatorMd());
    expect(same.app!.approvalPolicy).toEqual([dangerous]);
    const up = await call(b.admin.updateApp, b.admin, { ...base, updateApprovalPolicy: true, approvalPolicy: [dangerous, write] }, operatorMd());
    expect(up.app!.approvalPolicy).toEqual([dangerous, write]);
    const cleared = await call(b.admin.updateApp, b.admin, { ...base, updateApprovalPolicy: true, approvalPolicy: [] }, operatorMd());
    expect(cleared.app!.approvalPolicy).toEqual([]);
  });

  it("takes effect on the next Issue (the app view holds the policy): set, then cleared", async () => {
    const app = await createApp(b);
    const rx = issueRequest({ scopes: ["write:prescriptions:P-1042"] });
    expect((await call(b.client.issue, b.client, rx, app.md)).claims!.approval).toBeUndefined();
    const base = { appId: app.appId, name: undefined, updateScopeCeiling: false, scopeCeiling: [], updateAudiences: false, audiences: [], maxTtl: undefined, maxDelegationDepth: undefined, rateLimitPerSecond: undefined, rateLimitBurst: undefined, maxTaskLifetime: undefined };
    await call(b.admin.updateApp, b.admin, { ...base, updateApprovalPolicy: true, approvalPolicy: [dangerous] }, operatorMd());
    const held = await refusal(call(b.client.issue, b.client, rx, app.md));
    expect(held.reason).toBe("APPROVAL_REQUIRED");
    expect(held.metadata.approvals_required).toBe("2");
    await call(b.admin.updateApp, b.admin, { ...base, updateApprovalPolicy: true, approvalPolicy: [] }, operatorMd());
    await call(b.client.issue, b.client, rx, app.md);
  });

  it("refuses invalid rules with the field named, and stores no app", async () => {
    const before = await count("apps");
    const cases: [ApprovalRule, string][] = [
      [{ ...dangerous, approvalsRequired: 3 }, "approval_policy[0].approvals_required"],
      [{ ...dangerous, approvalsRequired: 0, approverGroup: "" }, "approval_policy[0].approvals_required"],
      [{ ...dangerous, scopeClass: ScopeClass.SCOPE_CLASS_UNSPECIFIED }, "approval_policy[0].scope_class"],
      [{ ...dangerous, scopeClass: 99 as ScopeClass }, "approval_policy[0].scope_class"],
      [{ ...dangerous, scopeClass: ScopeClass.SCOPE_CLASS_READ, approvalsRequired: 1 }, "approval_policy[0].approvals_required"],
      [{ ...dangerous, scopeClass: ScopeClass.SCOPE_CLASS_WRITE, approvalsRequired: 2 }, "approval_policy[0].approvals_required"],
      [{ ...dangerous, approverGroup: "" }, "approval_policy[0].approver_group"],
      [{ ...dangerous, approverGroup: "no spaces" }, "approval_policy[0].approver_group"],
      [{ ...dangerous, pattern: "write prescriptions" }, "approval_policy[0].pattern"],
      [{ ...dangerous, pattern: "x".repeat(300) }, "approval_policy[0].pattern"],
    ];
    for (const [rule, field] of cases) {
      const e = await refusal(call(b.admin.createApp, b.admin, createReq([rule]), operatorMd()));
      expect(e.reason, field).toBe("INVALID_REQUEST");
      expect(e.metadata.field).toBe(field);
    }
    const nul = await refusal(call(b.admin.createApp, b.admin, createReq([{ ...dangerous, approverGroup: "a\u0000b" }]), operatorMd()));
    expect(nul.reason).toBe("INVALID_REQUEST");
    const many = await refusal(call(b.admin.createApp, b.admin, createReq(Array.from({ length: 65 }, () => dangerous)), operatorMd()));
    expect(many.reason).toBe("INVALID_REQUEST");
    expect(await count("apps")).toBe(before);
  });
});

describe("approvers", () => {
  it("are created with an apv_ id and a secret, listed by id, and disabled", async () => {
    const r = await call(b.admin.createApprover, b.admin, { name: "dr-smith", groups: ["pharmacists", "doctors", "doctors"] }, operatorMd());
    expect(r.approver!.approverId).toMatch(/^apv_[0-9A-Za-z]{22}$/);
    expect(r.clientSecret).toMatch(/^bsec_/);
    expect(r.approver!.groups).toEqual(["doctors", "pharmacists"]);
    const dup = await refusal(call(b.admin.createApprover, b.admin, { name: "dr-smith", groups: ["x"] }, operatorMd()));
    expect(dup.reason).toBe("ALREADY_EXISTS");
    const second = await call(b.admin.createApprover, b.admin, { name: "dr-jones", groups: ["doctors"] }, operatorMd());
    const page1 = await call(b.admin.listApprovers, b.admin, { pageSize: 1, pageToken: "" }, operatorMd());
    expect(page1.approvers).toHaveLength(1);
    const page2 = await call(b.admin.listApprovers, b.admin, { pageSize: 1, pageToken: page1.nextPageToken }, operatorMd());
    expect([page1.approvers[0]!.approverId, page2.approvers[0]!.approverId].sort()).toEqual([r.approver!.approverId, second.approver!.approverId].sort());
    const d = await call(b.admin.disableApprover, b.admin, { approverId: second.approver!.approverId, reason: "left" }, operatorMd());
    expect(d.approver!.disabled).toBe(true);
    // The secret is stored hashed only.
    const row = (await b.broker.db.query("SELECT secret_hash FROM approvers WHERE approver_id = $1", [r.approver!.approverId])).rows[0];
    expect(Buffer.from(row.secret_hash).toString("utf8")).not.toContain(r.clientSecret);
    const audit = (await b.broker.db.query("SELECT payload FROM audit_events WHERE kind LIKE 'approver.%'")).rows.map((x) => x.payload as string);
    expect(audit.some((p) => p.includes(r.clientSecret))).toBe(false);
    expect(audit).toHaveLength(3);
  });

  it("refuses hostile input cleanly and stores nothing", async () => {
    const before = await count("approvers");
    for (const req of [
      { name: "", groups: ["g"] },
      { name: "has space", groups: ["g"] },
      { name: "x".repeat(65), groups: ["g"] },
      { name: "ok-name", groups: [] },
      { name: "ok-name", groups: ["bad group"] },
      { name: "ok-name", groups: Array.from({ length: 17 }, (_, i) => `g${i}`) },
      { name: "nul\u0000", groups: ["g"] },
    ]) {
      expect((await refusal(call(b.admin.createApprover, b.admin, req, operatorMd()))).reason).toBe("INVALID_REQUEST");
    }
    expect(await count("approvers")).toBe(before);
    expect((await refusal(call(b.admin.disableApprover, b.admin, { approverId: "apv_unknown", reason: "" }, operatorMd()))).reason).toBe("NOT_FOUND");
    expect((await refusal(call(b.admin.disableApprover, b.admin, { approverId: `apv_${"A".repeat(22)}`, reason: "" }, operatorMd()))).reason).toBe("NOT_FOUND");
    expect((await refusal(call(b.admin.listApprovers, b.admin, { pageSize: 0, pageToken: "garbage!" }, operatorMd()))).reason).toBe("INVALID_REQUEST");
  });

  it("cannot act as an app or the operator, and an app cannot manage approvers", async () => {
    const r = await call(b.admin.createApprover, b.admin, { name: "nurse-1", groups: ["nurses"] }, operatorMd());
    const md = basic(r.approver!.approverId, r.clientSecret);
    expect((await refusal(call(b.client.issue, b.client, issueRequest(), md))).reason).toBe("NOT_PERMITTED");
    expect((await refusal(call(b.admin.listApprovers, b.admin, { pageSize: 0, pageToken: "" }, md))).reason).toBe("NOT_PERMITTED");
    const app = await createApp(b);
    expect((await refusal(call(b.admin.createApprover, b.admin, { name: "sneaky", groups: ["g"] }, app.md))).reason).toBe("NOT_PERMITTED");
  });
});
