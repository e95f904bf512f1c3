// Domain errors: each names one fact about a refused request and carries the
// details a caller needs to fix it. The transport's one table
// (transport/errors.ts) turns them into a gRPC status and an ErrorInfo whose
// reason is `reason` (proto/baton/v1/errors.proto). Messages are shown to
// callers: short, actionable, never a token, secret or internal detail.

export type ErrorReason =
  | "INVALID_REQUEST"
  | "INVALID_SCOPE"
  | "SCOPE_NOT_COVERED"
  | "AUDIENCE_NOT_ALLOWED"
  | "TTL_EXCEEDS_MAXIMUM"
  | "DELEGATION_DEPTH_EXCEEDED"
  | "CREDENTIALS_MISSING"
  | "CREDENTIALS_INVALID"
  | "TOKEN_INVALID"
  | "APP_DISABLED"
  | "NOT_PERMITTED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "PROOF_REQUIRED"
  | "PROOF_INVALID"
  | "PROOF_REPLAYED"
  | "PARENT_REVOKED"
  | "PARENT_EXPIRED"
  | "CURSOR_EXPIRED"
  | "CURSOR_INVALID"
  | "SUBSCRIBER_TOO_SLOW"
  | "SHUTTING_DOWN"
  | "NOT_IMPLEMENTED"
  | "UNAVAILABLE"
  | "AUDIENCE_NOT_SERVED"
  | "RESOURCE_SERVER_DISABLED"
  | "RATE_LIMITED"
  | "AUTHENTICATION_THROTTLED"
  | "APPROVAL_REQUIRED"
  | "APPROVAL_PENDING"
  | "APPROVAL_DENIED"
  | "APPROVAL_EXPIRED"
  | "APPROVAL_USED"
  | "APPROVAL_MISMATCH"
  | "APPROVAL_NOT_PENDING"
  | "APPROVER_NOT_ELIGIBLE"
  | "APPROVER_DISABLED"
  | "TASK_LIFETIME_EXCEEDED";

/** Base of every error a caller may see. */
export class BatonError extends Error {
  constructor(
    readonly reason: ErrorReason,
    message: string,
    readonly details: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

const clip = (s: string, n = 128): string => (s.length > n ? `${s.slice(0, n)}…` : s);

export class InvalidRequestError extends BatonError {
  constructor(field: string, problem: string) {
    super("INVALID_REQUEST", `${field}: ${problem}`, { field, problem });
  }
}

export class InvalidScopeError extends BatonError {
  constructor(scope: string, problem: string) {
    super("INVALID_SCOPE", `invalid scope "${clip(scope, 64)}": ${problem}`, { scope: clip(scope), problem });
  }
}

export type CoverageRule = "ceiling" | "parent";

export class ScopeNotCoveredError extends BatonError {
  constructor(
    readonly excess: readonly string[],
    readonly rule: CoverageRule,
  ) {
    const what = rule === "ceiling" ? "the app's ceiling" : "the parent token";
    super("SCOPE_NOT_COVERED", `requested scopes are not covered by ${what}: ${clip(excess.join(" "), 512)}`, {
      excess_scopes: clip(excess.join(" "), 1024),
      rule,
    });
  }
}

export class AudienceNotAllowedError extends BatonError {
  constructor(
    readonly excess: readonly string[],
    readonly rule: CoverageRule,
  ) {
    const what = rule === "ceiling" ? "the app's audiences" : "the parent token's audiences";
    super("AUDIENCE_NOT_ALLOWED", `audiences not in ${what}: ${clip(excess.join(" "), 512)}`, {
      excess_audiences: clip(excess.join(" "), 1024),
      rule,
    });
  }
}

export type TtlRule = "app_maximum" | "parent_remaining";

export class TtlExceedsMaximumError extends BatonError {
  constructor(requestedSeconds: number, maximumSeconds: number, rule: TtlRule) {
    const what = rule === "app_maximum" ? "the app's maximum" : "the parent token's remaining life";
    super(
      "TTL_EXCEEDS_MAXIMUM",
      `ttl of ${requestedSeconds}s exceeds ${what} of ${maximumSeconds}s; ask for less or set allow_ttl_clamp`,
      { requested_seconds: String(requestedSeconds), maximum_seconds: String(maximumSeconds), rule },
    );
  }
}

export class DelegationDepthExceededError extends BatonError {
  constructor(depth: number, maximumDepth: number) {
    super("DELEGATION_DEPTH_EXCEEDED", `delegation depth ${depth} exceeds the app's maximum of ${maximumDepth}`, {
      depth: String(depth),
      maximum_depth: String(maximumDepth),
    });
  }
}

export class CredentialsMissingError extends BatonError {
  constructor(expected: string) {
    super("CREDENTIALS_MISSING", `missing credentials: send ${expected} in the authorization metadata`);
  }
}

export class CredentialsInvalidError extends BatonError {
  constructor() {
    super("CREDENTIALS_INVALID", "invalid credentials");
  }
}

export class TokenInvalidError extends BatonError {
  constructor(readonly status: string) {
    super("TOKEN_INVALID", `the bearer token is not valid (${status})`, { token_status: status });
  }
}

export class AppDisabledError extends BatonError {
  constructor() {
    super("APP_DISABLED", "the app is disabled");
  }
}

export class NotPermittedError extends BatonError {
  constructor(message: string) {
    super("NOT_PERMITTED", message);
  }
}

export class AudienceNotServedError extends BatonError {
  constructor(audience: string) {
    super("AUDIENCE_NOT_SERVED", `this resource server does not serve the audience "${clip(audience, 64)}"`, { audience: clip(audience) });
  }
}

export class ResourceServerDisabledError extends BatonError {
  constructor() {
    super("RESOURCE_SERVER_DISABLED", "the resource server is disabled");
  }
}

export class NotFoundError extends BatonError {
  constructor(kind: string) {
    super("NOT_FOUND", `${kind} not found`, { kind });
  }
}

export class AlreadyExistsError extends BatonError {
  constructor(kind: string, field: string) {
    super("ALREADY_EXISTS", `${kind} with this ${field} already exists`, { kind, field });
  }
}

export class ProofRequiredError extends BatonError {
  constructor() {
    super("PROOF_REQUIRED", "this token is key-bound: send a proof of possession in baton-proof metadata");
  }
}

export class ProofInvalidError extends BatonError {
  constructor(problem: string) {
    super("PROOF_INVALID", `invalid proof of possession: ${problem}`, { problem });
  }
}

export class NotImplementedError extends BatonError {
  constructor(what: string) {
    super("NOT_IMPLEMENTED", `${what} is not implemented by this broker yet`);
  }
}

export class UnavailableError extends BatonError {
  constructor(message = "the broker cannot reach its database; retry") {
    super("UNAVAILABLE", message);
  }
}

export class ShuttingDownError extends BatonError {
  /** `cursor`: on a stream, the last one delivered, to resume from. */
  constructor(cursor: bigint | null = null) {
    super("SHUTTING_DOWN", "the broker is shutting down; retry on another replica", cursor === null ? {} : { cursor: cursor.toString() });
  }
}

export class CursorInvalidError extends BatonError {
  constructor() {
    super("CURSOR_INVALID", "the stream cursor is not one this broker issued");
  }
}

export class CursorExpiredError extends BatonError {
  constructor() {
    super("CURSOR_EXPIRED", "the stream cursor is older than the retention window; reconnect without a cursor for a fresh snapshot");
  }
}

export class SubscriberTooSlowError extends BatonError {
  /** `cursor`: the last one delivered; null when the snapshot was not complete (take a new one). */
  constructor(cursor: bigint | null) {
    super(
      "SUBSCRIBER_TOO_SLOW",
      cursor === null
        ? "the subscriber fell too far behind during its snapshot; reconnect without a cursor"
        : "the subscriber fell too far behind; resume from the cursor in the metadata",
      cursor === null ? {} : { cursor: cursor.toString() },
    );
  }
}

export class ProofReplayedError extends BatonError {
  constructor() {
    super("PROOF_REPLAYED", "this proof of possession was already used; make a new one for each call");
  }
}

export class ParentRevokedError extends BatonError {
  constructor() {
    super("PARENT_REVOKED", "the delegating token (or an ancestor) was revoked");
  }
}

export class ParentExpiredError extends BatonError {
  constructor() {
    super("PARENT_EXPIRED", "the delegating token has expired");
  }
}

export class TaskLifetimeExceededError extends BatonError {
  constructor(taskExpiresAtMs: number) {
    const at = new Date(taskExpiresAtMs).toISOString();
    super("TASK_LIFETIME_EXCEEDED", `the task's lifetime maximum ends at ${at}: its app must issue a new token`, { task_expire_time: at });
  }
}

/** A refusal that goes away by itself: the transport adds a google.rpc.RetryInfo. */
export class RetryLaterError extends BatonError {
  constructor(
    reason: ErrorReason,
    message: string,
    details: Readonly<Record<string, string>>,
    /** How long until the request would be accepted. */
    readonly retryAfterMs: number,
  ) {
    super(reason, message, details);
  }
}

export class RateLimitedError extends RetryLaterError {
  constructor(appId: string, perSecond: number, burst: number, retryAfterMs: number) {
    super(
      "RATE_LIMITED",
      `the app is over its rate limit of ${perSecond} requests per second (burst ${burst}); retry after ${retryAfterMs} ms`,
      { app_id: appId, limit: String(perSecond), burst: String(burst) },
      retryAfterMs,
    );
  }
}

/** A resource server sent access reports faster than its limit (charged once per batch). */
export class ReportsRateLimitedError extends RetryLaterError {
  constructor(resourceServerId: string, perSecond: number, burst: number, retryAfterMs: number) {
    super(
      "RATE_LIMITED",
      `the resource server is over its limit of ${perSecond} report batches per second (burst ${burst}); retry after ${retryAfterMs} ms`,
      { resource_server_id: resourceServerId, limit: String(perSecond), burst: String(burst) },
      retryAfterMs,
    );
  }
}

export class AuthenticationThrottledError extends RetryLaterError {
  constructor(retryAfterMs: number) {
    super("AUTHENTICATION_THROTTLED", `too many failed authentications from this address; retry after ${retryAfterMs} ms`, {}, retryAfterMs);
  }
}

/**
 * On Delegate the caller's own token is the parent: a revoked or expired
 * credential is reported as the parent's state.
 */
export function asParentRefusal(err: unknown): unknown {
  if (err instanceof TokenInvalidError && err.status === "REVOKED") return new ParentRevokedError();
  if (err instanceof TokenInvalidError && err.status === "EXPIRED") return new ParentExpiredError();
  return err;
}

/** Issue or Delegate for a scope the app's policy holds for approval: a pending approval was created, nothing minted. */
export class ApprovalRequiredError extends BatonError {
  constructor(approvalId: string, approvalsRequired: number, approverGroup: string, expireTime: Date) {
    super(
      "APPROVAL_REQUIRED",
      `a requested scope needs ${approvalsRequired} approval(s) from group "${approverGroup}"; send the request again with approval_id ${approvalId} once it is approved`,
      { approval_id: approvalId, approvals_required: String(approvalsRequired), approver_group: approverGroup, expire_time: expireTime.toISOString() },
    );
  }
}

/** The approval named in a request cannot be used: still pending, denied, expired, used, or for another request. */
export class ApprovalUnusableError extends BatonError {
  constructor(reason: "APPROVAL_PENDING" | "APPROVAL_DENIED" | "APPROVAL_EXPIRED" | "APPROVAL_USED" | "APPROVAL_MISMATCH", approvalId: string, field?: string) {
    const what = {
      APPROVAL_PENDING: "is still waiting for approvers",
      APPROVAL_DENIED: "was denied",
      APPROVAL_EXPIRED: "expired; ask again",
      APPROVAL_USED: "was already used; ask again",
      APPROVAL_MISMATCH: `was granted for a different request (${field ?? "?"} differs)`,
    }[reason];
    super(reason, `approval ${approvalId} ${what}`, field ? { approval_id: approvalId, field } : { approval_id: approvalId });
  }
}

export class ApprovalNotPendingError extends BatonError {
  constructor(approvalId: string, state: string, alreadyDecided = false) {
    super(
      "APPROVAL_NOT_PENDING",
      alreadyDecided ? `this approver already decided approval ${approvalId}` : `approval ${approvalId} is ${state}, no longer pending`,
      { approval_id: approvalId, state },
    );
  }
}

export class ApproverNotEligibleError extends BatonError {
  constructor() {
    super("APPROVER_NOT_ELIGIBLE", "this approver is not in the group that may decide this approval");
  }
}

export class ApproverDisabledError extends BatonError {
  constructor() {
    super("APPROVER_DISABLED", "the approver is disabled");
  }
}
