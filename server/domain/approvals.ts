// Approval policy (issue 8): an app's rules class scopes as read, write or
// dangerous write, and say how many distinct human approvers must approve a
// request for them. This file holds the pure rules: checking a policy, and
// deciding what a request needs. The flow itself is in service/approvals.ts.

import { InvalidRequestError } from "./errors.js";
import { parseScope, type Scope, WILDCARD } from "./scopes.js";

export type ScopeClass = "read" | "write" | "dangerous_write";

export interface ApprovalRule {
  /** A scope pattern in the scope grammar. */
  readonly pattern: string;
  readonly scopeClass: ScopeClass;
  readonly approvalsRequired: number;
  /** null when approvalsRequired is 0. */
  readonly approverGroup: string | null;
}

export const MAX_RULES = 64;
/** Approver group and approver names share the app name charset, shorter. */
const GROUP = /^[A-Za-z0-9._-]{1,64}$/;

const RANK: Record<ScopeClass, number> = { read: 0, write: 1, dangerous_write: 2 };
/** Allowed approvals_required per class. */
const APPROVALS: Record<ScopeClass, readonly number[]> = { read: [0], write: [0, 1], dangerous_write: [1, 2] };

export function requireGroupName(field: string, name: string): string {
  if (!GROUP.test(name)) throw new InvalidRequestError(field, "must be 1 to 64 characters from A-Z a-z 0-9 . _ -");
  return name;
}

/** Checks every rule of a policy; throws InvalidRequestError naming the rule. */
export function requirePolicy(rules: readonly ApprovalRule[]): ApprovalRule[] {
  if (rules.length > MAX_RULES) throw new InvalidRequestError("approval_policy", `at most ${MAX_RULES} rules are allowed`);
  return rules.map((r, i) => {
    const field = `approval_policy[${i}]`;
    try {
      parseScope(r.pattern);
    } catch (err) {
      throw new InvalidRequestError(`${field}.pattern`, (err as Error).message);
    }
    if (!(r.scopeClass in RANK)) throw new InvalidRequestError(`${field}.scope_class`, "must be read, write or dangerous write");
    const allowed = APPROVALS[r.scopeClass];
    if (!allowed.includes(r.approvalsRequired)) {
      throw new InvalidRequestError(`${field}.approvals_required`, `must be ${allowed.join(" or ")} for class ${r.scopeClass}`);
    }
    if (r.approvalsRequired === 0) {
      if (r.approverGroup) throw new InvalidRequestError(`${field}.approver_group`, "must be empty when approvals_required is 0");
      return { ...r, approverGroup: null };
    }
    if (!r.approverGroup) throw new InvalidRequestError(`${field}.approver_group`, "is required when approvals_required is above 0");
    return { ...r, approverGroup: requireGroupName(`${field}.approver_group`, r.approverGroup) };
  });
}

const segmentsMeet = (a: string, b: string): boolean => a === WILDCARD || b === WILDCARD || a === b;

/**
 * True when some concrete scope is covered by both: then a token holding
 * `a` can do something `b` names. `write:*:*` and `write:prescriptions:P-1`
 * overlap; `read:*:*` and `write:*:*` do not.
 */
export function overlaps(a: Scope, b: Scope): boolean {
  return segmentsMeet(a.action, b.action) && segmentsMeet(a.resource, b.resource) && segmentsMeet(a.identifier, b.identifier);
}

/** What a request needs before it may be minted. */
export interface ApprovalNeed {
  /** The requested scopes that a rule with approvals applies to, as given. */
  readonly scopes: readonly string[];
  readonly approvalsRequired: number;
  readonly approverGroup: string;
  /** The rule that decided (the strictest that applies). */
  readonly rule: ApprovalRule;
}

/** a is stricter than b: a higher class, then more approvals. */
const stricter = (a: ApprovalRule, b: ApprovalRule): boolean =>
  RANK[a.scopeClass] !== RANK[b.scopeClass] ? RANK[a.scopeClass] > RANK[b.scopeClass] : a.approvalsRequired > b.approvalsRequired;

/**
 * Decides, for well-formed requested scopes and a checked policy, whether the
 * request needs approval: null when it does not. Every rule whose pattern
 * overlaps a requested scope applies; the strictest applying rule (class,
 * then approvals; the first in policy order on a tie) decides how many
 * approvals and which group. A rule never lowers another: a `read` rule over
 * a scope a dangerous rule also meets leaves it dangerous.
 */
export function approvalNeeded(policy: readonly ApprovalRule[], requested: readonly string[]): ApprovalNeed | null {
  if (policy.length === 0) return null;
  const patterns = policy.map((r) => parseScope(r.pattern));
  const parsed = requested.map(parseScope);
  let decider: ApprovalRule | null = null;
  const needing = new Set<number>();
  policy.forEach((rule, i) => {
    let applies = false;
    parsed.forEach((s, j) => {
      if (!overlaps(patterns[i]!, s)) return;
      applies = true;
      if (rule.approvalsRequired > 0) needing.add(j);
    });
    if (applies && (decider === null || stricter(rule, decider))) decider = rule;
  });
  const scopes = requested.filter((_, j) => needing.has(j));
  const d = decider as ApprovalRule | null;
  if (d === null || d.approvalsRequired === 0) return null;
  return { scopes, approvalsRequired: d.approvalsRequired, approverGroup: d.approverGroup!, rule: d };
}

/** The states of an approval (proto ApprovalState without its prefix). */
export type ApprovalState = "PENDING" | "APPROVED" | "DENIED" | "EXPIRED" | "USED";

export const isTerminal = (s: ApprovalState): boolean => s !== "PENDING";

/**
 * What an approval is bound to: a request matches it only when every field is
 * equal. Scopes and audiences are in canonical (sorted, de-duplicated) form.
 */
export interface ApprovalBinding {
  readonly requestKind: "issue" | "delegate";
  readonly appId: string;
  readonly requester: string;
  readonly parentTokenId: string | null;
  readonly taskId: string;
  readonly orchestrationId: string | null;
  readonly humanPrincipal: string | null;
  readonly scopes: readonly string[];
  readonly audiences: readonly string[];
  /** As requested; null: the default. */
  readonly ttlSeconds: number | null;
  readonly keyThumbprint: string | null;
}

const sameList = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

/** The first field in which a request differs from the approval's binding, or null when it matches. */
export function bindingMismatch(approved: ApprovalBinding, request: ApprovalBinding): string | null {
  const fields: [string, boolean][] = [
    ["request_kind", approved.requestKind === request.requestKind],
    ["app_id", approved.appId === request.appId],
    ["requester", approved.requester === request.requester],
    ["parent_token_id", approved.parentTokenId === request.parentTokenId],
    ["task_id", approved.taskId === request.taskId],
    ["orchestration_id", approved.orchestrationId === request.orchestrationId],
    ["human_principal", approved.humanPrincipal === request.humanPrincipal],
    ["scopes", sameList(approved.scopes, request.scopes)],
    ["audiences", sameList(approved.audiences, request.audiences)],
    ["ttl", approved.ttlSeconds === request.ttlSeconds],
    ["agent_public_key_jwk", approved.keyThumbprint === request.keyThumbprint],
  ];
  return fields.find(([, ok]) => !ok)?.[0] ?? null;
}

/** Approve, Deny and DisableApprover reasons: 1 to 512 characters (proto). */
export const MAX_DECISION_REASON = 512;
