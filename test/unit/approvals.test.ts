// The approval decision (domain/approvals.ts), against a reference written
// from the rule's text alone: a scope denotes the set of concrete
// `action:resource:identifier` triples it matches; a rule applies to a
// requested scope when their sets meet (over a finite universe that holds,
// per segment, every named value and one value no scope names). Then:
//  - soundness: every requested scope whose set meets a rule with approvals
//    is reported as needing approval, and the request needs at least that
//    rule's approvals;
//  - strictest wins: the decision is the maximum, by (class, approvals),
//    over the rules that apply, and its group is that rule's;
//  - no rule lowers another: adding a rule never lowers what a request needs.
// Plus the policy checks (classes, counts, groups, patterns).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ApprovalRule, approvalNeeded, bindingMismatch, requirePolicy, type ScopeClass } from "../../server/domain/approvals.js";
import { InvalidRequestError } from "../../server/domain/errors.js";

const VALUES = [["read", "write", "delete"], ["prescriptions", "records"], ["P-1042", "P-7"]] as const;
// A value no generated scope names stands for "any other" in each segment.
const OTHER = "zz-other";
const UNIVERSE: string[][] = VALUES[0].flatMap((a) => VALUES[1].flatMap((r) => VALUES[2].map((i) => [a, r, i])));
for (const a of [...VALUES[0], OTHER]) for (const r of [...VALUES[1], OTHER]) for (const i of [...VALUES[2], OTHER]) UNIVERSE.push([a, r, i]);

const segment = (i: 0 | 1 | 2) => fc.constantFrom("*", ...VALUES[i]);
const scope = fc.tuple(segment(0), segment(1), segment(2)).map((t) => t.join(":"));

const matches = (s: string, c: readonly string[]): boolean => s.split(":").every((seg, i) => seg === "*" || seg === c[i]);
/** Reference overlap: some concrete triple of the universe is matched by both. */
const refMeets = (a: string, b: string): boolean => UNIVERSE.some((c) => matches(a, c) && matches(b, c));

const RANK: Record<ScopeClass, number> = { read: 0, write: 1, dangerous_write: 2 };
const rule: fc.Arbitrary<ApprovalRule> = fc.oneof(
  fc.record({ pattern: scope, scopeClass: fc.constant<ScopeClass>("read"), approvalsRequired: fc.constant(0), approverGroup: fc.constant(null) }),
  fc.record({ pattern: scope, scopeClass: fc.constant<ScopeClass>("write"), approvalsRequired: fc.constant(0), approverGroup: fc.constant(null) }),
  fc.record({ pattern: scope, scopeClass: fc.constant<ScopeClass>("write"), approvalsRequired: fc.constant(1), approverGroup: fc.constantFrom("nurses", "doctors") }),
  fc.record({ pattern: scope, scopeClass: fc.constant<ScopeClass>("dangerous_write"), approvalsRequired: fc.constantFrom(1, 2), approverGroup: fc.constantFrom("pharmacists", "doctors") }),
);
const policy = fc.array(rule, { maxLength: 6 });
const request = fc.uniqueArray(scope, { minLength: 1, maxLength: 4 });

/** Reference decision: the maximum applying rule by (class, approvals), first on ties. */
function refDecide(p: readonly ApprovalRule[], req: readonly string[]): ApprovalRule | null {
  let best: ApprovalRule | null = null;
  for (const r of p) {
    if (!req.some((s) => refMeets(r.pattern, s))) continue;
    if (!best || RANK[r.scopeClass] > RANK[best.scopeClass] || (RANK[r.scopeClass] === RANK[best.scopeClass] && r.approvalsRequired > best.approvalsRequired)) best = r;
  }
  return best && best.approvalsRequired > 0 ? best : null;
}

describe("approvalNeeded", () => {
  it("is sound: every scope meeting a rule with approvals needs at least that rule's approvals", () => {
    fc.assert(
      fc.property(policy, request, (p, req) => {
        const need = approvalNeeded(p, req);
        for (const r of p) {
          if (r.approvalsRequired === 0) continue;
          for (const s of req) {
            if (!refMeets(r.pattern, s)) continue;
            expect(need).not.toBeNull();
            expect(need!.scopes).toContain(s);
            expect(need!.approvalsRequired).toBeGreaterThanOrEqual(r.approvalsRequired);
            expect(RANK[need!.rule.scopeClass]).toBeGreaterThanOrEqual(RANK[r.scopeClass]);
          }
        }
        // And nothing is reported that no rule with approvals meets.
        for (const s of need?.scopes ?? []) expect(p.some((r) => r.approvalsRequired > 0 && refMeets(r.pattern, s))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("takes the strictest applying rule (class, then approvals) and its group", () => {
    fc.assert(
      fc.property(policy, request, (p, req) => {
        const need = approvalNeeded(p, req);
        const ref = refDecide(p, req);
        if (ref === null) {
          expect(need).toBeNull();
          return;
        }
        expect(need).not.toBeNull();
        expect(need!.approvalsRequired).toBe(ref.approvalsRequired);
        expect(need!.approverGroup).toBe(ref.approverGroup);
        expect(need!.rule.scopeClass).toBe(ref.scopeClass);
      }),
      { numRuns: 2000 },
    );
  });

  it("never needs less when a rule is added", () => {
    fc.assert(
      fc.property(policy, rule, fc.nat(), request, (p, extra, at, req) => {
        const before = approvalNeeded(p, req);
        const with_ = [...p];
        with_.splice(at % (p.length + 1), 0, extra);
        const after = approvalNeeded(with_, req);
        if (before === null) return;
        expect(after).not.toBeNull();
        expect(after!.approvalsRequired).toBeGreaterThanOrEqual(before.approvalsRequired);
        for (const s of before.scopes) expect(after!.scopes).toContain(s);
      }),
      { numRuns: 1000 },
    );
  });

  it("applies a rule to a wider request: write:* hits write:prescriptions:*", () => {
    const p = requirePolicy([{ pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 2, approverGroup: "pharmacists" }]);
    expect(approvalNeeded(p, ["write:*:*"])?.approvalsRequired).toBe(2);
    expect(approvalNeeded(p, ["*:*:P-1042"])?.scopes).toEqual(["*:*:P-1042"]);
    expect(approvalNeeded(p, ["write:prescriptions:P-1042", "read:records:P-1"])?.scopes).toEqual(["write:prescriptions:P-1042"]);
    expect(approvalNeeded(p, ["read:prescriptions:*"])).toBeNull();
    expect(approvalNeeded(p, ["write:records:*"])).toBeNull();
  });

  it("lets no read rule lower a dangerous one", () => {
    const p = requirePolicy([
      { pattern: "*:*:*", scopeClass: "read", approvalsRequired: 0, approverGroup: null },
      { pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 1, approverGroup: "pharmacists" },
    ]);
    expect(approvalNeeded(p, ["write:prescriptions:P-1"])?.approverGroup).toBe("pharmacists");
  });
});

describe("requirePolicy", () => {
  const ok: ApprovalRule = { pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 1, approverGroup: "pharmacists" };
  const refused = (r: Partial<ApprovalRule>): string => {
    try {
      requirePolicy([{ ...ok, ...r }]);
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidRequestError);
      return (err as InvalidRequestError).details.field!;
    }
    throw new Error("accepted");
  };

  it("accepts each class with its allowed counts", () => {
    expect(requirePolicy([ok, { ...ok, approvalsRequired: 2 }, { pattern: "read:*:*", scopeClass: "read", approvalsRequired: 0, approverGroup: null }])).toHaveLength(3);
    expect(requirePolicy([{ pattern: "write:*:*", scopeClass: "write", approvalsRequired: 1, approverGroup: "g" }])).toHaveLength(1);
    expect(requirePolicy([{ pattern: "write:*:*", scopeClass: "write", approvalsRequired: 0, approverGroup: null }])).toHaveLength(1);
  });

  it("refuses counts outside the class, missing or stray groups, bad patterns and group names", () => {
    expect(refused({ approvalsRequired: 0, approverGroup: null })).toBe("approval_policy[0].approvals_required");
    expect(refused({ approvalsRequired: 3 })).toBe("approval_policy[0].approvals_required");
    expect(refused({ scopeClass: "read" })).toBe("approval_policy[0].approvals_required");
    expect(refused({ scopeClass: "write", approvalsRequired: 2 })).toBe("approval_policy[0].approvals_required");
    expect(refused({ scopeClass: "unspecified" as ScopeClass })).toBe("approval_policy[0].scope_class");
    expect(refused({ approverGroup: null })).toBe("approval_policy[0].approver_group");
    expect(refused({ approverGroup: "has space" })).toBe("approval_policy[0].approver_group");
    expect(refused({ approverGroup: "x".repeat(65) })).toBe("approval_policy[0].approver_group");
    expect(refused({ scopeClass: "read", approvalsRequired: 0, approverGroup: "g" })).toBe("approval_policy[0].approver_group");
    expect(refused({ pattern: "write:prescriptions" })).toBe("approval_policy[0].pattern");
    expect(refused({ pattern: "write:pre*:x" })).toBe("approval_policy[0].pattern");
    expect(() => requirePolicy(Array.from({ length: 65 }, () => ok))).toThrow(InvalidRequestError);
  });
});

describe("bindingMismatch", () => {
  const b = {
    requestKind: "issue" as const,
    appId: "app_1",
    requester: "app:app_1",
    parentTokenId: null,
    taskId: "t",
    orchestrationId: null,
    humanPrincipal: "dr",
    scopes: ["write:prescriptions:P-1042"],
    audiences: ["ehr"],
    ttlSeconds: null,
    keyThumbprint: null,
  };
  it("matches only an identical request and names the first differing field", () => {
    expect(bindingMismatch(b, { ...b })).toBeNull();
    expect(bindingMismatch(b, { ...b, taskId: "u" })).toBe("task_id");
    expect(bindingMismatch(b, { ...b, scopes: ["write:prescriptions:P-1042", "read:records:P-1"] })).toBe("scopes");
    expect(bindingMismatch(b, { ...b, ttlSeconds: 60 })).toBe("ttl");
    expect(bindingMismatch(b, { ...b, humanPrincipal: null })).toBe("human_principal");
    expect(bindingMismatch(b, { ...b, keyThumbprint: "k" })).toBe("agent_public_key_jwk");
    expect(bindingMismatch(b, { ...b, requestKind: "delegate", parentTokenId: "p" })).toBe("request_kind");
  });
});
