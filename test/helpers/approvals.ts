// Approval test helpers: the generated ApprovalService client, approvers,
// policies, and a WatchApproval collector.

import { credentials, type Metadata } from "@grpc/grpc-js";
import { type ApprovalRule, ScopeClass } from "../../server/gen/baton/v1/admin.js";
import { type Approval, ApprovalServiceClient } from "../../server/gen/baton/v1/approvals.js";
import { basic, call, decodeError, type DecodedError, operatorMd, type TestApp, type TestBroker } from "./broker.js";

export const approvalClient = (b: TestBroker): InstanceType<typeof ApprovalServiceClient> =>
  new ApprovalServiceClient(b.address, credentials.createInsecure());

export interface TestApprover {
  readonly approverId: string;
  readonly md: Metadata;
}

export async function createApprover(b: TestBroker, groups: string[], name = `apv-${Math.random().toString(36).slice(2, 10)}`): Promise<TestApprover> {
  const r = await call(b.admin.createApprover, b.admin, { name, groups }, operatorMd());
  return { approverId: r.approver!.approverId, md: basic(r.approver!.approverId, r.clientSecret) };
}

export const rule = (pattern: string, cls: "read" | "write" | "dangerous", approvalsRequired: number, approverGroup = ""): ApprovalRule => ({
  pattern,
  scopeClass: { read: ScopeClass.SCOPE_CLASS_READ, write: ScopeClass.SCOPE_CLASS_WRITE, dangerous: ScopeClass.SCOPE_CLASS_DANGEROUS_WRITE }[cls],
  approvalsRequired,
  approverGroup,
});

/** An app with a scope ceiling, audiences and an approval policy. */
export async function createPolicyApp(b: TestBroker, ceiling: string[], policy: ApprovalRule[], audiences = ["ehr-api"], maxDelegationDepth = 0): Promise<TestApp> {
  const res = await call(b.admin.createApp, b.admin, {
    name: `app-${Math.random().toString(36).slice(2, 10)}`,
    scopeCeiling: ceiling,
    audiences,
    maxTtl: undefined,
    maxDelegationDepth,
    approvalPolicy: policy,
    maxTaskLifetime: undefined,
  }, operatorMd());
  return { appId: res.app!.appId, secret: res.clientSecret, md: basic(res.app!.appId, res.clientSecret) };
}

export interface TestWatch {
  readonly states: Approval[];
  ended: DecodedError | "end" | null;
  waitEnd(timeoutMs?: number): Promise<void>;
  waitFor(n: number, timeoutMs?: number): Promise<void>;
  cancel(): void;
}

export function watch(client: InstanceType<typeof ApprovalServiceClient>, approvalId: string, md: Metadata): TestWatch {
  const c = client.watchApproval({ approvalId }, md);
  const w: TestWatch = {
    states: [],
    ended: null,
    async waitEnd(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (w.ended === null) {
        if (Date.now() > deadline) throw new Error(`watch did not end; ${w.states.length} states`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async waitFor(n, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (w.states.length < n) {
        if (Date.now() > deadline) throw new Error(`watch got ${w.states.length} of ${n} states; ended ${JSON.stringify(w.ended)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    cancel: () => c.cancel(),
  };
  c.on("data", (m: { approval?: Approval }) => w.states.push(m.approval!));
  c.on("error", (err: Error & { code: number }) => {
    try {
      w.ended = decodeError(err);
    } catch {
      // A client-side cancel carries no ErrorInfo.
      w.ended = { code: err.code, message: err.message, reason: "", domain: "", metadata: {} };
    }
  });
  c.on("end", () => {
    w.ended ??= "end";
  });
  return w;
}
