// Proto <-> domain conversion. Generated types stop here.

import type { Revocation as DomainRevocation, RevocationTarget as DomainTarget } from "../domain/revocations.js";
import { InvalidRequestError } from "../domain/errors.js";
import type { TokenClaims as DomainClaims, TokenStatus as DomainStatus } from "../domain/tokens.js";
import type { LoadedKey } from "../crypto/keyring.js";
import type { AppRecord } from "../storage/apps.js";
import type { ResourceServerRecord } from "../storage/resource-servers.js";
import type { ApproverRecord } from "../storage/approvers.js";
import type { ApprovalRecord } from "../storage/approvals.js";
import type { ApprovalState as DomainApprovalState } from "../domain/approvals.js";
import { type Approval, ApprovalRequestKind, ApprovalState } from "../gen/baton/v1/approvals.js";
import type { ApprovalRule as DomainRule, ScopeClass as DomainClass } from "../domain/approvals.js";
import { type App, type ApprovalRule, type Approver, type ResourceServer, ScopeClass, type SigningKey, SigningKeyState } from "../gen/baton/v1/admin.js";
import { type AccessReport, type Revocation, RevocationTarget, type StreamRevocationsResponse, type TokenClaims, TokenStatus } from "../gen/baton/v1/broker.js";
import type { StreamEvent } from "../service/revocation-streams.js";
import type { DelegateInput } from "../service/delegate.js";
import type { IssuedToken } from "../service/minter.js";
import type { AccessReportInput } from "../service/access-reports.js";
import type { Duration } from "../gen/google/protobuf/duration.js";

/** Seconds of a Duration; null when unset. Negative or fractional spans are refused. */
export function durationSeconds(field: string, d: Duration | undefined): number | null {
  if (d === undefined) return null;
  if (!Number.isSafeInteger(d.seconds) || d.seconds < 0 || d.nanos !== 0 && (d.nanos < 0 || d.nanos > 999_999_999)) {
    throw new InvalidRequestError(field, "must be a positive duration");
  }
  return d.seconds + d.nanos / 1e9;
}

export const seconds = (s: number): Duration => ({ seconds: s, nanos: 0 });

const protoName = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * The proto name of the first string field of a request that holds a NUL
 * character, or null. PostgreSQL text cannot store NUL (error 22021) and no
 * Baton field has a use for one, so the edge refuses it in every field.
 */
export function fieldWithNul(message: object, path = ""): string | null {
  for (const [key, value] of Object.entries(message)) {
    const values: unknown[] = Array.isArray(value) ? value : [value];
    for (const v of values) {
      // The field's name is built only when it is needed: a hit, or a message to walk into.
      if (typeof v === "string" && v.includes("\u0000")) return path + protoName(key);
      if (typeof v === "object" && v !== null && !(v instanceof Uint8Array) && !(v instanceof Date)) {
        const inner = fieldWithNul(v, `${path}${protoName(key)}.`);
        if (inner !== null) return inner;
      }
    }
  }
  return null;
}

export function claimsToProto(c: DomainClaims): TokenClaims {
  return {
    tokenId: c.tokenId,
    agentId: c.agentId,
    appId: c.appId,
    taskId: c.taskId,
    orchestrationId: c.orchestrationId ?? "",
    humanPrincipal: c.humanPrincipal ?? "",
    scopes: [...c.scopes],
    audiences: [...c.audiences],
    issuer: c.issuer,
    issueTime: new Date(c.issuedAtMs),
    notBeforeTime: new Date(c.notBeforeMs),
    expireTime: new Date(c.expiresAtMs),
    lineage: c.lineage.map((e) => ({ tokenId: e.tokenId, agentId: e.agentId })),
    depth: c.lineage.length,
    keyThumbprint: c.keyThumbprint ?? "",
    approval: c.approval ? { approvalId: c.approval.approvalId, approverIds: [...c.approval.approverIds] } : undefined,
    renewedFromTokenId: c.renewedFromTokenId ?? "",
  };
}

const STATUS: Record<DomainStatus, TokenStatus> = {
  VALID: TokenStatus.TOKEN_STATUS_VALID,
  MALFORMED: TokenStatus.TOKEN_STATUS_MALFORMED,
  ALGORITHM_NOT_ALLOWED: TokenStatus.TOKEN_STATUS_ALGORITHM_NOT_ALLOWED,
  UNKNOWN_KEY: TokenStatus.TOKEN_STATUS_UNKNOWN_KEY,
  BAD_SIGNATURE: TokenStatus.TOKEN_STATUS_BAD_SIGNATURE,
  EXPIRED: TokenStatus.TOKEN_STATUS_EXPIRED,
  NOT_YET_VALID: TokenStatus.TOKEN_STATUS_NOT_YET_VALID,
  WRONG_ISSUER: TokenStatus.TOKEN_STATUS_WRONG_ISSUER,
  WRONG_AUDIENCE: TokenStatus.TOKEN_STATUS_WRONG_AUDIENCE,
  REVOKED: TokenStatus.TOKEN_STATUS_REVOKED,
  INSUFFICIENT_SCOPE: TokenStatus.TOKEN_STATUS_INSUFFICIENT_SCOPE,
  WRONG_TYPE: TokenStatus.TOKEN_STATUS_WRONG_TYPE,
  AUDIENCE_NOT_SERVED: TokenStatus.TOKEN_STATUS_AUDIENCE_NOT_SERVED,
};

export const statusToProto = (s: DomainStatus): TokenStatus => STATUS[s];

const TARGETS: Record<DomainTarget, RevocationTarget> = {
  token: RevocationTarget.REVOCATION_TARGET_TOKEN,
  agent: RevocationTarget.REVOCATION_TARGET_AGENT,
  task: RevocationTarget.REVOCATION_TARGET_TASK,
  chain: RevocationTarget.REVOCATION_TARGET_CHAIN,
  app: RevocationTarget.REVOCATION_TARGET_APP,
};

/** null for UNSPECIFIED or an unknown value. */
export function targetFromProto(t: RevocationTarget): DomainTarget | null {
  for (const [k, v] of Object.entries(TARGETS)) if (v === t) return k as DomainTarget;
  return null;
}

export function revocationToProto(r: DomainRevocation): Revocation {
  return {
    target: TARGETS[r.target],
    id: r.id,
    appId: r.appId,
    revokeTime: new Date(r.revokedAtMs),
    expireTime: new Date(r.expiresAtMs),
    cursor: r.cursor.toString(),
  };
}

/** What Issue and Delegate requests share: the authority asked for. */
export function grantFromProto(req: {
  scopes: string[];
  audiences: string[];
  ttl?: Duration | undefined;
  allowTtlClamp: boolean;
  agentPublicKeyJwk: string;
  approvalId: string;
}): DelegateInput {
  return {
    scopes: req.scopes,
    audiences: req.audiences,
    ttlSeconds: durationSeconds("ttl", req.ttl),
    allowTtlClamp: req.allowTtlClamp,
    agentPublicKeyJwk: req.agentPublicKeyJwk,
    approvalId: req.approvalId,
  };
}

export function issuedToProto(r: IssuedToken): { accessToken: string; claims: TokenClaims; ttlClamped: boolean } {
  return { accessToken: r.token, claims: claimsToProto(r.claims), ttlClamped: r.ttlClamped };
}

export function streamEventToProto(e: StreamEvent): StreamRevocationsResponse {
  switch (e.kind) {
    case "revocation":
      return { revocation: revocationToProto(e.revocation) };
    case "snapshotComplete":
      return { snapshotComplete: { cursor: e.cursor.toString() } };
    case "checkpoint":
      return { checkpoint: { cursor: e.cursor.toString(), observeTime: new Date(e.observeMs) } };
    case "keySetChanged":
      return { keySetChanged: { jwksJson: e.jwksJson } };
  }
}

export function appToProto(a: AppRecord): App {
  return {
    appId: a.appId,
    name: a.name,
    scopeCeiling: [...a.scopeCeiling],
    audiences: [...a.audiences],
    maxTtl: seconds(a.maxTtlSeconds),
    maxDelegationDepth: a.maxDelegationDepth,
    disabled: a.disabled,
    createTime: a.createTime,
    updateTime: a.updateTime,
    rateLimitPerSecond: a.ratePerSecond,
    rateLimitBurst: a.rateBurst,
    approvalPolicy: a.approvalPolicy.map(ruleToProto),
    maxTaskLifetime: a.maxTaskSeconds === null ? undefined : seconds(a.maxTaskSeconds),
  };
}

const CLASSES: Record<DomainClass, ScopeClass> = {
  read: ScopeClass.SCOPE_CLASS_READ,
  write: ScopeClass.SCOPE_CLASS_WRITE,
  dangerous_write: ScopeClass.SCOPE_CLASS_DANGEROUS_WRITE,
};

export function ruleToProto(r: DomainRule): ApprovalRule {
  return { pattern: r.pattern, scopeClass: CLASSES[r.scopeClass], approvalsRequired: r.approvalsRequired, approverGroup: r.approverGroup ?? "" };
}

/** Unchecked (requirePolicy checks it); an unknown class becomes one requirePolicy refuses. */
export function ruleFromProto(r: ApprovalRule): DomainRule {
  const scopeClass = (Object.keys(CLASSES) as DomainClass[]).find((k) => CLASSES[k] === r.scopeClass) ?? ("unspecified" as DomainClass);
  return { pattern: r.pattern, scopeClass, approvalsRequired: r.approvalsRequired, approverGroup: r.approverGroup || null };
}

export function resourceServerToProto(r: ResourceServerRecord): ResourceServer {
  return {
    resourceServerId: r.resourceServerId,
    name: r.name,
    audiences: [...r.audiences],
    disabled: r.disabled,
    createTime: r.createTime,
    updateTime: r.updateTime,
  };
}

const KEY_STATES = {
  next: SigningKeyState.SIGNING_KEY_STATE_NEXT,
  active: SigningKeyState.SIGNING_KEY_STATE_ACTIVE,
  retired: SigningKeyState.SIGNING_KEY_STATE_RETIRED,
} as const;

export function keyToProto(k: LoadedKey): SigningKey {
  return {
    keyId: k.stored.keyId,
    algorithm: k.stored.algorithm,
    state: KEY_STATES[k.stored.state],
    publicJwkJson: k.stored.publicJwk,
    createTime: k.stored.createTime,
    activateTime: k.stored.activateTime ?? undefined,
    retireTime: k.stored.retireTime ?? undefined,
  };
}

export function approverToProto(a: ApproverRecord): Approver {
  return { approverId: a.approverId, name: a.name, groups: [...a.groups], disabled: a.disabled, createTime: a.createTime, updateTime: a.updateTime };
}

const APPROVAL_STATES: Record<DomainApprovalState, ApprovalState> = {
  PENDING: ApprovalState.APPROVAL_STATE_PENDING,
  APPROVED: ApprovalState.APPROVAL_STATE_APPROVED,
  DENIED: ApprovalState.APPROVAL_STATE_DENIED,
  EXPIRED: ApprovalState.APPROVAL_STATE_EXPIRED,
  USED: ApprovalState.APPROVAL_STATE_USED,
};

/** null for UNSPECIFIED (no filter); an unknown value is refused. */
export function approvalStateFromProto(s: ApprovalState): DomainApprovalState | null {
  if (s === ApprovalState.APPROVAL_STATE_UNSPECIFIED) return null;
  for (const [k, v] of Object.entries(APPROVAL_STATES)) if (v === s) return k as DomainApprovalState;
  throw new InvalidRequestError("state", "is not an approval state");
}

export function approvalToProto(a: ApprovalRecord): Approval {
  return {
    approvalId: a.approvalId,
    state: APPROVAL_STATES[a.state],
    requestKind: a.requestKind === "issue" ? ApprovalRequestKind.APPROVAL_REQUEST_KIND_ISSUE : ApprovalRequestKind.APPROVAL_REQUEST_KIND_DELEGATE,
    appId: a.appId,
    requester: a.requester,
    parentTokenId: a.parentTokenId ?? "",
    taskId: a.taskId,
    orchestrationId: a.orchestrationId ?? "",
    humanPrincipal: a.humanPrincipal ?? "",
    scopes: [...a.scopes],
    scopesNeedingApproval: [...a.scopesNeedingApproval],
    audiences: [...a.audiences],
    ttl: a.ttlSeconds === null ? undefined : seconds(a.ttlSeconds),
    keyThumbprint: a.keyThumbprint ?? "",
    approvalsRequired: a.approvalsRequired,
    approverGroup: a.approverGroup,
    decisions: a.decisions.map((d) => ({ approverId: d.approverId, approverName: d.approverName, approved: d.approved, reason: d.reason, decideTime: d.decideTime })),
    createTime: a.createTime,
    expireTime: a.expireTime,
    useTime: a.useTime ?? undefined,
    tokenId: a.tokenId ?? "",
  };
}

export function accessReportFromProto(r: AccessReport): AccessReportInput {
  return {
    tokenId: r.tokenId,
    agentId: r.agentId,
    audience: r.audience,
    scope: r.scope,
    resource: r.resource,
    allowed: r.allowed,
    reason: r.reason,
    outcome: r.outcome,
    decideTime: r.decideTime,
  };
}
