// Approval properties against a live broker (issue 8). Random sequences of
// Issue, Delegate (from any token minted so far), Approve and Deny, each
// request with no approval or with any approval seen so far, are run
// against a model written from the contract, not from the broker's code:
//  - a request whose scopes meet a rule with approvals mints only under an
//    approval bound to exactly that request (kind, task, scopes, parent),
//    approved by as many distinct approvers of the rule's group as the
//    strictest rule says, never denied, never used before; anything else is
//    refused with the reason the model predicts, and mints nothing;
//  - so no sequence reaches such a scope without a matching approval, an
//    approval is used at most once and never for another request, and dual
//    control needs two distinct approvers;
//  - delegation never inherits: a child asking for such a scope needs its
//    own approval even when its parent had one.
// Then: concurrent re-use of one approval mints once; an approval used or
// watched past its window is EXPIRED (a short-window broker).

import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApprovalState } from "../../server/gen/baton/v1/approvals.js";
import type { IssueResponse } from "../../server/gen/baton/v1/broker.js";
import { agentMd } from "../helpers/agent-key.js";
import { approvalClient, createApprover, createPolicyApp, rule, type TestApprover, watch } from "../helpers/approvals.js";
import { call, issueRequest, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

const SCOPES = ["read:records:P-1", "write:prescriptions:P-1", "write:prescriptions:*", "write:notes:N-1", "write:*:*"];
const POLICY = [
  { pattern: "write:prescriptions:*", cls: "dangerous" as const, n: 2, group: "pharmacists" },
  { pattern: "write:notes:*", cls: "write" as const, n: 1, group: "nurses" },
  { pattern: "read:*:*", cls: "read" as const, n: 0, group: "" },
];
const RANK = { read: 0, write: 1, dangerous: 2 };

// ---- Reference model ------------------------------------------------------
const matches = (s: string, c: string[]): boolean => s.split(":").every((seg, i) => seg === "*" || seg === c[i]);
const UNIVERSE: string[][] = [];
for (const a of ["read", "write", "other"]) for (const r of ["records", "prescriptions", "notes", "other"]) for (const i of ["P-1", "N-1", "other"]) UNIVERSE.push([a, r, i]);
const meets = (a: string, b: string): boolean => UNIVERSE.some((c) => matches(a, c) && matches(b, c));
const refCovers = (granted: string, requested: string): boolean => requested.split(":").every((seg, i) => granted.split(":")[i] === "*" || granted.split(":")[i] === seg);

/** The strictest rule meeting any requested scope, when it needs approvals. */
function need(scopes: readonly string[]): { n: number; group: string } | null {
  let best: (typeof POLICY)[number] | null = null;
  for (const r of POLICY) {
    if (!scopes.some((s) => meets(r.pattern, s))) continue;
    if (!best || RANK[r.cls] > RANK[best.cls] || (RANK[r.cls] === RANK[best.cls] && r.n > best.n)) best = r;
  }
  return best && best.n > 0 ? { n: best.n, group: best.group } : null;
}

interface ModelApproval {
  readonly id: string;
  /** kind|task|parent|scopes */
  readonly binding: string;
  readonly n: number;
  readonly group: string;
  approvers: string[];
  state: "PENDING" | "APPROVED" | "DENIED" | "USED";
  /** Sends the request it was created for again, naming `approvalId`. */
  readonly resend: (approvalId: string) => Promise<void>;
}

interface Node {
  readonly token: string;
  readonly tokenId: string;
  readonly scopes: string[];
}

let b: TestBroker;
let apv: ReturnType<typeof approvalClient>;
let app: TestApp;
let approvers: { a: TestApprover; groups: string[] }[];

beforeAll(async () => {
  b = await startTestBroker();
  apv = approvalClient(b);
  app = await createPolicyApp(b, ["read:*:*", "write:*:*"], POLICY.map((r) => rule(r.pattern, r.cls, r.n, r.group)), ["ehr-api"], 16);
  approvers = [];
  for (const groups of [["pharmacists"], ["pharmacists", "nurses"], ["nurses"]]) approvers.push({ a: await createApprover(b, groups), groups });
});
afterAll(async () => {
  apv?.close();
  await b?.stop();
});

const scopeSet = fc.uniqueArray(fc.constantFrom(...SCOPES), { minLength: 1, maxLength: 2 }).map((s) => [...s].sort());
const recent = fc.nat({ max: 3 });
const approvalPick = fc.option(recent, { nil: null, freq: 2 });
const step = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("issue" as const), task: fc.constantFrom("t1", "t2"), scopes: scopeSet, approval: approvalPick }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("delegate" as const), parent: fc.nat(), scopes: scopeSet, approval: approvalPick }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("approve" as const), approval: recent, approver: fc.nat({ max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("deny" as const), approval: fc.nat(), approver: fc.nat({ max: 2 }) }) },
  // The same request again under an approval: the one it was made for, or another one.
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("retry" as const), approval: recent, other: approvalPick }) },
);
type Step = typeof step extends fc.Arbitrary<infer T> ? T : never;

/** One sequence that certainly mints under a dual-control approval, then tries to reuse it. */
const EXAMPLE: Step[] = [
  { kind: "issue", task: "t1", scopes: ["write:prescriptions:P-1"], approval: null },
  { kind: "approve", approval: 0, approver: 0 },
  { kind: "approve", approval: 0, approver: 0 },
  { kind: "retry", approval: 0, other: null },
  { kind: "approve", approval: 0, approver: 1 },
  { kind: "retry", approval: 0, other: null },
  { kind: "retry", approval: 0, other: null },
  { kind: "delegate", parent: 0, scopes: ["write:prescriptions:P-1"], approval: 0 },
  { kind: "delegate", parent: 0, scopes: ["write:prescriptions:P-1"], approval: null },
];

let run = 0;
/** What the sequences reached, so a run that never mints under an approval is noticed. */
const seen = { usedApprovals: 0 };

describe("sequences of Issue, Delegate, Approve and Deny", () => {
  it("never mint a scope needing approval without a matching, approved, unused approval", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 8, maxLength: 16 }), async (steps) => {
        run += 1;
        const nodes: Node[] = [];
        const approvals: ModelApproval[] = [];
        // Counted from the newest: sequences work on recent approvals, as people do.
        const pickApproval = (i: number | null): ModelApproval | null =>
          i === null || approvals.length === 0 ? null : approvals[approvals.length - 1 - (i % approvals.length)]!;

        /** A minting request: predicts and checks its outcome. */
        const mint = async (binding: string, scopes: string[], chosen: ModelApproval | null, send: (approvalId: string) => Promise<IssueResponse>): Promise<void> => {
          const needed = need(scopes);
          if (chosen === null) {
            if (needed === null) {
              const r = await send("");
              expect(r.claims!.approval).toBeUndefined();
              nodes.push({ token: r.accessToken, tokenId: r.claims!.tokenId, scopes });
              return;
            }
            const e = await refusal(send(""));
            expect(e.reason).toBe("APPROVAL_REQUIRED");
            expect(e.metadata.approvals_required).toBe(String(needed.n));
            expect(e.metadata.approver_group).toBe(needed.group);
            approvals.push({
              id: e.metadata.approval_id!, binding, n: needed.n, group: needed.group, approvers: [], state: "PENDING",
              resend: (id) => mint(binding, scopes, approvals.find((a) => a.id === id)!, send),
            });
            return;
          }
          const expected =
            chosen.binding !== binding ? "APPROVAL_MISMATCH"
            : chosen.state === "DENIED" ? "APPROVAL_DENIED"
            : chosen.state === "USED" ? "APPROVAL_USED"
            : chosen.state === "PENDING" ? "APPROVAL_PENDING"
            : null;
          if (expected) {
            expect((await refusal(send(chosen.id))).reason).toBe(expected);
            (seen as Record<string, number>)[expected] = ((seen as Record<string, number>)[expected] ?? 0) + 1;
            return;
          }
          const r = await send(chosen.id);
          // Minted under it: approved by enough distinct approvers, in order.
          expect(new Set(chosen.approvers).size).toBe(chosen.approvers.length);
          expect(chosen.approvers.length).toBeGreaterThanOrEqual(chosen.n);
          expect(r.claims!.approval).toEqual({ approvalId: chosen.id, approverIds: chosen.approvers });
          chosen.state = "USED";
          seen.usedApprovals += 1;
          nodes.push({ token: r.accessToken, tokenId: r.claims!.tokenId, scopes });
        };

        for (const s of steps) {
          if (s.kind === "issue") {
            const task = `r${run}-${s.task}`;
            await mint(`issue|${task}||${s.scopes.join(" ")}`, s.scopes, pickApproval(s.approval), (approvalId) =>
              call(b.client.issue, b.client, issueRequest({ taskId: task, scopes: s.scopes, approvalId }), app.md));
          } else if (s.kind === "delegate") {
            if (nodes.length === 0) continue;
            const parent = nodes[s.parent % nodes.length]!;
            const dreq = (approvalId: string) => ({ scopes: s.scopes, audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId });
            if (!s.scopes.every((x) => parent.scopes.some((g) => refCovers(g, x)))) {
              const chosen = pickApproval(s.approval);
              expect((await refusal(call(b.client.delegate, b.client, dreq(chosen?.id ?? ""), agentMd(parent.token)))).reason).toBe("SCOPE_NOT_COVERED");
              continue;
            }
            await mint(`delegate||${parent.tokenId}|${s.scopes.join(" ")}`, s.scopes, pickApproval(s.approval), (approvalId) =>
              call(b.client.delegate, b.client, dreq(approvalId), agentMd(parent.token)));
          } else if (s.kind === "retry") {
            const a = pickApproval(s.approval);
            const other = pickApproval(s.other) ?? a;
            if (a && other) await a.resend(other.id);
          } else {
            const a = pickApproval(s.approval);
            if (!a) continue;
            const who = approvers[s.approver]!;
            const p = call(s.kind === "approve" ? apv.approve : apv.deny, apv, { approvalId: a.id, reason: "r" }, who.a.md);
            const expected = !who.groups.includes(a.group) ? "APPROVER_NOT_ELIGIBLE"
              : a.state !== "PENDING" || a.approvers.includes(who.a.approverId) ? "APPROVAL_NOT_PENDING"
              : null;
            if (expected) {
              expect((await refusal(p)).reason).toBe(expected);
              continue;
            }
            const res = await p;
            if (s.kind === "deny") a.state = "DENIED";
            else {
              a.approvers.push(who.a.approverId);
              if (a.approvers.length >= a.n) a.state = "APPROVED";
            }
            expect(res.approval!.state).toBe(ApprovalState[`APPROVAL_STATE_${a.state}` as keyof typeof ApprovalState]);
          }
        }
        // The store agrees: each approval used by exactly the one token minted under it.
        for (const a of approvals) {
          const row = (await b.broker.db.query("SELECT state, token_id FROM approvals WHERE approval_id = $1", [a.id])).rows[0];
          expect(row.state).toBe(a.state);
          if (a.state === "USED") expect(await b.broker.db.query("SELECT 1 FROM grants WHERE token_id = $1", [row.token_id]).then((r) => r.rowCount)).toBe(1);
        }
      }),
      { numRuns: 40, examples: [[EXAMPLE]] },
    );
    expect(seen.usedApprovals).toBeGreaterThan(0);
    console.log(`approvals used: ${JSON.stringify(seen)}`);
  }, 240_000);

  it("mints once when one approval is used by concurrent requests", async () => {
    const req = issueRequest({ taskId: "race", scopes: ["write:notes:N-1"] });
    const e = await refusal(call(b.client.issue, b.client, req, app.md));
    const approvalId = e.metadata.approval_id!;
    await call(apv.approve, apv, { approvalId, reason: "ok" }, approvers[2]!.a.md);
    const grants = Number((await b.broker.db.query("SELECT count(*) AS n FROM grants")).rows[0].n);
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => call(b.client.issue, b.client, { ...req, approvalId }, app.md)));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of results) if (r.status === "rejected") expect((await refusal(Promise.reject(r.reason))).reason).toBe("APPROVAL_USED");
    expect(Number((await b.broker.db.query("SELECT count(*) AS n FROM grants")).rows[0].n)).toBe(grants + 1);
  });
});

describe("the approval window", () => {
  let s: TestBroker;
  let sApv: ReturnType<typeof approvalClient>;
  let sApp: TestApp;
  let nurse: TestApprover;
  beforeAll(async () => {
    s = await startTestBroker({ BATON_APPROVAL_WINDOW_SECONDS: "2" });
    sApv = approvalClient(s);
    sApp = await createPolicyApp(s, ["write:*:*"], [rule("write:notes:*", "write", 1, "nurses")]);
    nurse = await createApprover(s, ["nurses"]);
  });
  afterAll(async () => {
    sApv?.close();
    await s?.stop();
  });
  const req = (taskId: string, approvalId = "") => issueRequest({ taskId, scopes: ["write:notes:N-1"], approvalId });

  it("an approved but unused approval cannot be used after its window, and is EXPIRED once", async () => {
    const e = await refusal(call(s.client.issue, s.client, req("late"), sApp.md));
    const approvalId = e.metadata.approval_id!;
    expect(Date.parse(e.metadata.expire_time!) - Date.now()).toBeLessThanOrEqual(2_000);
    await call(sApv.approve, sApv, { approvalId, reason: "ok" }, nurse.md);
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await refusal(call(s.client.issue, s.client, req("late", approvalId), sApp.md))).reason).toBe("APPROVAL_EXPIRED");
    expect((await refusal(call(s.client.issue, s.client, req("late", approvalId), sApp.md))).reason).toBe("APPROVAL_EXPIRED");
    const kinds = (await s.broker.db.query("SELECT kind FROM audit_events WHERE payload LIKE $1", [`%${approvalId}%`])).rows.map((r) => r.kind);
    expect(kinds.filter((k) => k === "approval.expired")).toHaveLength(1);
  });

  it("a watch on an approval nobody decides ends with EXPIRED", async () => {
    const e = await refusal(call(s.client.issue, s.client, req("undecided"), sApp.md));
    const w = watch(sApv, e.metadata.approval_id!, sApp.md);
    await w.waitEnd(20_000);
    expect(w.ended).toBe("end");
    expect(w.states.map((x) => x.state)).toEqual([ApprovalState.APPROVAL_STATE_PENDING, ApprovalState.APPROVAL_STATE_EXPIRED]);
  });
});
