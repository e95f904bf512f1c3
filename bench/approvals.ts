// What approvals cost (issue 8), printed as medians:
//  1. the policy decision alone (domain/approvals.ts), by policy size;
//  2. Issue of a scope no rule holds back, for an app without a policy and
//     one with an 8-rule policy (the decision on the hot path);
//  3. the approval round trip: Issue -> APPROVAL_REQUIRED, Approve, Issue
//     with approval_id (minted in its own transaction), and how long after
//     Approve answers a WatchApproval on the requester's side sees APPROVED.
// Usage: npx tsx bench/approvals.ts

import { credentials, Metadata } from "@grpc/grpc-js";
import { approvalNeeded, type ApprovalRule } from "../server/domain/approvals.js";
import { AdminServiceClient, ScopeClass } from "../server/gen/baton/v1/admin.js";
import { ApprovalServiceClient } from "../server/gen/baton/v1/approvals.js";
import { machine, median, startBench, unary } from "./harness.js";

const basic = (id: string, secret: string): Metadata => {
  const md = new Metadata();
  md.set("authorization", `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`);
  return md;
};

function decisionMicros(rules: number): number {
  const policy: ApprovalRule[] = Array.from({ length: rules }, (_, i) => ({ pattern: `write:res${i}:*`, scopeClass: "dangerous_write", approvalsRequired: 1, approverGroup: "g" }));
  const scopes = Array.from({ length: 8 }, (_, i) => `read:res${i}:P-${i}`);
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const n = 5_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) approvalNeeded(policy, scopes);
    rounds.push(Number(process.hrtime.bigint() - t0) / 1e3 / n);
  }
  return median(rounds);
}

async function main(): Promise<void> {
  console.log(`machine: ${machine()}`);
  for (const n of [0, 8, 64]) console.log(`approvalNeeded, ${n} rules x 8 scopes: ${decisionMicros(n).toFixed(2)} us/call (median of 7 rounds)`);

  const bench = await startBench();
  try {
    const b = await bench.broker();
    const admin = new AdminServiceClient(b.address, credentials.createInsecure());
    const apv = new ApprovalServiceClient(b.address, credentials.createInsecure());
    const plain = await bench.createApp(b, ["read:*:*", "write:*:*"], ["ehr-api"]);
    const rules = Array.from({ length: 8 }, (_, i) => ({ pattern: `write:res${i}:*`, scopeClass: ScopeClass.SCOPE_CLASS_DANGEROUS_WRITE, approvalsRequired: 1, approverGroup: "pharmacists" }));
    const created: { app?: { appId: string }; clientSecret: string } = await unary(admin.createApp.bind(admin), {
      name: `bench-policy-${Date.now()}`, scopeCeiling: ["read:*:*", "write:*:*"], audiences: ["ehr-api"], maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: rules, maxTaskLifetime: undefined,
    }, bench.operatorMd);
    const policyMd = basic(created.app!.appId, created.clientSecret);
    const approver: { approver?: { approverId: string }; clientSecret: string } = await unary(admin.createApprover.bind(admin), { name: `bench-${Date.now()}`, groups: ["pharmacists"] }, bench.operatorMd);
    const approverMd = basic(approver.approver!.approverId, approver.clientSecret);

    const req = (taskId: string, scopes: string[], approvalId = "") => ({ taskId, orchestrationId: "", humanPrincipal: "", scopes, audiences: ["ehr-api"], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId });
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const t0 = process.hrtime.bigint();
      await fn().catch(() => {});
      return Number(process.hrtime.bigint() - t0) / 1e6;
    };
    const issue = b.client.issue.bind(b.client);
    for (let i = 0; i < 50; i++) await unary(issue, req("warm", ["read:res1:x"]), plain.md);
    const noPolicy: number[] = [];
    const withPolicy: number[] = [];
    for (let i = 0; i < 300; i++) {
      noPolicy.push(await time(() => unary(issue, req("t", ["read:res1:x"]), plain.md)));
      withPolicy.push(await time(() => unary(issue, req("t", ["read:res1:x"]), policyMd)));
    }
    console.log(`Issue (sequential, 300 each): no policy ${median(noPolicy).toFixed(2)} ms, 8-rule policy ${median(withPolicy).toFixed(2)} ms`);

    const held: number[] = [];
    const decided: number[] = [];
    const minted: number[] = [];
    const seen: number[] = [];
    for (let i = 0; i < 40; i++) {
      let approvalId = "";
      held.push(await time(async () => {
        try {
          await unary(issue, req(`rt-${i}`, ["write:res3:P-1"]), policyMd);
        } catch (err) {
          approvalId = /apr_[0-9A-Za-z]{22}/.exec((err as Error).message)![0];
        }
      }));
      const watched = new Promise<number>((resolve) => {
        const call = apv.watchApproval({ approvalId }, policyMd);
        call.on("data", (m: { approval?: { state: number } }) => {
          if (m.approval?.state === 2) resolve(Number(process.hrtime.bigint()));
        });
        call.on("error", () => {});
      });
      await new Promise((r) => setTimeout(r, 20)); // the watch is open before the decision
      let answered = 0;
      decided.push(await time(async () => {
        await unary(apv.approve.bind(apv), { approvalId, reason: "bench" }, approverMd);
        answered = Number(process.hrtime.bigint());
      }));
      seen.push(((await watched) - answered) / 1e6);
      minted.push(await time(() => unary(issue, req(`rt-${i}`, ["write:res3:P-1"], approvalId), policyMd)));
    }
    console.log(`approval round trip (40): Issue -> APPROVAL_REQUIRED ${median(held).toFixed(2)} ms, Approve ${median(decided).toFixed(2)} ms, Issue with approval_id ${median(minted).toFixed(2)} ms`);
    console.log(`WatchApproval sees APPROVED ${median(seen).toFixed(2)} ms after Approve answers (median; negative: before)`);
    admin.close();
    apv.close();
  } finally {
    await bench.stop();
  }
}

void main();
