// The one table from domain errors to gRPC status codes. Every error leaves
// the broker as a status plus a google.rpc.ErrorInfo (domain "baton.dev")
// in the grpc-status-details-bin trailer. Anything that is not a BatonError
// becomes INTERNAL with a fixed message; the cause goes to the log only.

import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { BatonError, type ErrorReason, RetryLaterError } from "../domain/errors.js";
import { ErrorInfo, RetryInfo } from "../gen/google/rpc/error_details.js";
import { Status } from "../gen/google/rpc/status.js";

export const ERROR_DOMAIN = "baton.dev";

const CODES: Record<ErrorReason, status> = {
  INVALID_REQUEST: status.INVALID_ARGUMENT,
  INVALID_SCOPE: status.INVALID_ARGUMENT,
  SCOPE_NOT_COVERED: status.PERMISSION_DENIED,
  AUDIENCE_NOT_ALLOWED: status.PERMISSION_DENIED,
  TTL_EXCEEDS_MAXIMUM: status.INVALID_ARGUMENT,
  DELEGATION_DEPTH_EXCEEDED: status.PERMISSION_DENIED,
  CREDENTIALS_MISSING: status.UNAUTHENTICATED,
  CREDENTIALS_INVALID: status.UNAUTHENTICATED,
  TOKEN_INVALID: status.UNAUTHENTICATED,
  APP_DISABLED: status.PERMISSION_DENIED,
  NOT_PERMITTED: status.PERMISSION_DENIED,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  PROOF_REQUIRED: status.UNAUTHENTICATED,
  PROOF_INVALID: status.UNAUTHENTICATED,
  PROOF_REPLAYED: status.UNAUTHENTICATED,
  PARENT_REVOKED: status.PERMISSION_DENIED,
  PARENT_EXPIRED: status.PERMISSION_DENIED,
  CURSOR_EXPIRED: status.OUT_OF_RANGE,
  CURSOR_INVALID: status.INVALID_ARGUMENT,
  SUBSCRIBER_TOO_SLOW: status.RESOURCE_EXHAUSTED,
  SHUTTING_DOWN: status.UNAVAILABLE,
  NOT_IMPLEMENTED: status.UNIMPLEMENTED,
  UNAVAILABLE: status.UNAVAILABLE,
  AUDIENCE_NOT_SERVED: status.PERMISSION_DENIED,
  RESOURCE_SERVER_DISABLED: status.PERMISSION_DENIED,
  RATE_LIMITED: status.RESOURCE_EXHAUSTED,
  // Not UNAVAILABLE: clients retry that one on their own, and a wrong secret
  // retried in a loop is what this reason exists to stop.
  AUTHENTICATION_THROTTLED: status.RESOURCE_EXHAUSTED,
  APPROVAL_REQUIRED: status.FAILED_PRECONDITION,
  APPROVAL_PENDING: status.FAILED_PRECONDITION,
  APPROVAL_DENIED: status.PERMISSION_DENIED,
  APPROVAL_EXPIRED: status.FAILED_PRECONDITION,
  APPROVAL_USED: status.FAILED_PRECONDITION,
  APPROVAL_MISMATCH: status.PERMISSION_DENIED,
  APPROVAL_NOT_PENDING: status.FAILED_PRECONDITION,
  APPROVER_NOT_ELIGIBLE: status.PERMISSION_DENIED,
  APPROVER_DISABLED: status.PERMISSION_DENIED,
  TASK_LIFETIME_EXCEEDED: status.FAILED_PRECONDITION,
};

const INTERNAL_MESSAGE = "internal error; the broker logged it with the request id";

/** Error codes from `pg` that mean "the database is not reachable right now". */
function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return (
    code === "ECONNREFUSED" ||
    code === "ECONNRESET" ||
    code === "57P01" || // admin_shutdown
    code === "57P03" || // cannot_connect_now
    (typeof code === "string" && code.startsWith("08")) // connection exceptions
  );
}

export interface MappedError {
  readonly code: status;
  readonly reason: ErrorReason | "INTERNAL";
  readonly message: string;
  readonly metadata: Record<string, string>;
  /** Sent as a google.rpc.RetryInfo when set: how long to wait before retrying. */
  readonly retryAfterMs?: number;
  /** True when the cause must be logged (it is not a caller's mistake). */
  readonly unexpected: boolean;
}

export function mapError(err: unknown, requestId: string): MappedError {
  if (err instanceof BatonError) {
    const retry = err instanceof RetryLaterError ? { retryAfterMs: err.retryAfterMs } : {};
    return { code: CODES[err.reason], reason: err.reason, message: err.message, metadata: { ...err.details }, ...retry, unexpected: false };
  }
  if (isDatabaseUnavailable(err)) {
    return { code: status.UNAVAILABLE, reason: "UNAVAILABLE", message: "the broker cannot reach its database; retry", metadata: { request_id: requestId }, unexpected: true };
  }
  return { code: status.INTERNAL, reason: "INTERNAL", message: INTERNAL_MESSAGE, metadata: { request_id: requestId }, unexpected: true };
}

export function toServiceError(m: MappedError): ServiceError {
  const info = ErrorInfo.encode({ reason: m.reason, domain: ERROR_DOMAIN, metadata: m.metadata }).finish();
  const anys = [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(info) }];
  if (m.retryAfterMs !== undefined) {
    const ms = m.retryAfterMs;
    const retry = RetryInfo.encode({ retryDelay: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 } }).finish();
    anys.push({ typeUrl: "type.googleapis.com/google.rpc.RetryInfo", value: Buffer.from(retry) });
  }
  const details = Status.encode({ code: m.code, message: m.message, details: anys }).finish();
  const metadata = new Metadata();
  metadata.set("grpc-status-details-bin", Buffer.from(details));
  const e = new Error(m.message) as ServiceError;
  e.code = m.code;
  e.details = m.message;
  e.metadata = metadata;
  return e;
}
