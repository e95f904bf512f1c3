// Typed errors for Baton calls. Every error the broker returns carries a
// `grpc-status-details-bin` trailer: a google.rpc.Status whose details hold
// one google.rpc.ErrorInfo with domain "baton.dev", a reason (an ErrorReason
// value name without the `ERROR_REASON_` prefix) and metadata naming the
// offending input. `fromServiceError` turns a failed call into a BatonError
// that exposes them; errors raised by gRPC itself (deadline, unreachable
// broker) become BatonErrors with an empty reason. A refusal for a passing
// reason (RATE_LIMITED, AUTHENTICATION_THROTTLED) also carries a
// google.rpc.RetryInfo, exposed as `retryAfterMs`.

import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ErrorReason } from "./gen/baton/v1/errors.js";
import { ErrorInfo, RetryInfo } from "./gen/google/rpc/error_details.js";
import { Status } from "./gen/google/rpc/status.js";

/** The `google.rpc.ErrorInfo` domain of Baton's errors. */
export const ERROR_DOMAIN = "baton.dev";

const ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";
const RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo";
const REASON_PREFIX = "ERROR_REASON_";

/**
 * An error returned by the broker, or by gRPC on the way to it.
 *
 * Messages and metadata come from the broker, which never puts a token, a
 * secret or a key in them; the SDK adds none either.
 */
export class BatonError extends Error {
  /** The gRPC status code, for example `status.PERMISSION_DENIED`. */
  readonly code: status;
  /**
   * The ErrorInfo reason, for example `"SCOPE_NOT_COVERED"`. Empty when the
   * error carries no Baton ErrorInfo, as for a deadline exceeded or a broker
   * that cannot be reached.
   */
  readonly reason: string;
  /** The ErrorInfo metadata naming the offending input (for example `excess_scopes`). */
  readonly metadata: Readonly<Record<string, string>>;
  /**
   * How long to wait before retrying, in milliseconds, from the error's
   * google.rpc.RetryInfo (sent with RATE_LIMITED and
   * AUTHENTICATION_THROTTLED); undefined when the error carries none.
   */
  readonly retryAfterMs: number | undefined;

  /**
   * @param code - the gRPC status code
   * @param message - the status message, short and for people
   * @param reason - the ErrorInfo reason, or `""`
   * @param metadata - the ErrorInfo metadata
   * @param retryAfterMs - the RetryInfo delay in milliseconds, if any
   */
  constructor(code: status, message: string, reason = "", metadata: Record<string, string> = {}, retryAfterMs?: number) {
    super(message);
    this.name = "BatonError";
    this.code = code;
    this.reason = reason;
    this.metadata = Object.freeze({ ...metadata });
    this.retryAfterMs = retryAfterMs;
  }

  /** The gRPC status code's name, for example `"PERMISSION_DENIED"`. */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }

  /** `reason` as an ErrorReason, or `ERROR_REASON_UNSPECIFIED` when empty or unknown to this SDK. */
  get errorReason(): ErrorReason {
    const value = (ErrorReason as unknown as Record<string, unknown>)[REASON_PREFIX + this.reason];
    return typeof value === "number" ? (value as ErrorReason) : ErrorReason.ERROR_REASON_UNSPECIFIED;
  }

  /** `BatonError: PERMISSION_DENIED SCOPE_NOT_COVERED: <message>`. */
  override toString(): string {
    return `${this.name}: ${this.codeName}${this.reason ? ` ${this.reason}` : ""}: ${this.message}`;
  }
}

/** The ErrorInfo reason string of an ErrorReason, for comparing with {@link BatonError.reason}. */
export function reasonOf(reason: ErrorReason): string {
  const name = (ErrorReason as unknown as Record<number, string>)[reason] ?? "";
  return name.startsWith(REASON_PREFIX) ? name.slice(REASON_PREFIX.length) : name;
}

function isServiceError(err: unknown): err is ServiceError {
  return typeof err === "object" && err !== null && typeof (err as { code?: unknown }).code === "number" && "details" in err;
}

/** What a status trailer says: the Baton ErrorInfo and the RetryInfo delay, if any. */
interface TrailerDetails {
  readonly info: ErrorInfo | null;
  readonly retryAfterMs: number | undefined;
}

/** The details in a status's trailers; undecodable bytes count as none. */
function detailsOf(metadata: Metadata | undefined): TrailerDetails {
  const bin = metadata?.get("grpc-status-details-bin")[0];
  if (!(bin instanceof Buffer)) return { info: null, retryAfterMs: undefined };
  let info: ErrorInfo | null = null;
  let retryAfterMs: number | undefined;
  try {
    const st = Status.decode(bin);
    for (const detail of st.details) {
      if (detail.typeUrl === ERROR_INFO_TYPE && info === null) {
        const decoded = ErrorInfo.decode(detail.value);
        if (decoded.domain === ERROR_DOMAIN) info = decoded;
      } else if (detail.typeUrl === RETRY_INFO_TYPE && retryAfterMs === undefined) {
        const delay = RetryInfo.decode(detail.value).retryDelay;
        const ms = delay ? delay.seconds * 1000 + Math.ceil(delay.nanos / 1e6) : NaN;
        // A negative or absurd delay is no advice: left undefined rather than trusted.
        if (Number.isFinite(ms) && ms >= 0) retryAfterMs = ms;
      }
    }
  } catch {
    // A malformed trailer is treated as no detail: the status code still stands.
    return { info: null, retryAfterMs: undefined };
  }
  return { info, retryAfterMs };
}

/**
 * Converts the error of a failed gRPC call to a BatonError. A BatonError is
 * returned as is; anything that is not a gRPC ServiceError becomes UNKNOWN
 * with its message.
 */
export function fromServiceError(err: unknown): BatonError {
  if (err instanceof BatonError) return err;
  if (!isServiceError(err)) {
    const message = err instanceof Error ? err.message : "unexpected error";
    return new BatonError(status.UNKNOWN, message);
  }
  const { info, retryAfterMs } = detailsOf(err.metadata);
  const message = err.details || (status[err.code] ?? "error");
  const reason = info?.reason ?? "";
  const metadata = info?.metadata ?? {};
  if (reason === "APPROVAL_REQUIRED") return new ApprovalRequiredError(err.code, message, metadata);
  if (APPROVAL_REASONS.has(reason)) return new ApprovalError(err.code, message, reason, metadata);
  return new BatonError(err.code, message, reason, metadata, retryAfterMs);
}

// ---- Approvals (issue 8) ----

/** The reasons, besides APPROVAL_REQUIRED, that concern one approval; each becomes an {@link ApprovalError}. */
const APPROVAL_REASONS: ReadonlySet<string> = new Set([
  "APPROVAL_PENDING",
  "APPROVAL_DENIED",
  "APPROVAL_EXPIRED",
  "APPROVAL_USED",
  "APPROVAL_MISMATCH",
  "APPROVAL_NOT_PENDING",
]);

/**
 * A refusal about one approval: APPROVAL_PENDING, APPROVAL_DENIED,
 * APPROVAL_EXPIRED, APPROVAL_USED, APPROVAL_MISMATCH or APPROVAL_NOT_PENDING
 * (see `reason`), and APPROVAL_REQUIRED as its subclass
 * {@link ApprovalRequiredError}.
 */
export class ApprovalError extends BatonError {
  /** The approval concerned (`apr_...`, ErrorInfo metadata `approval_id`); empty when the broker did not name one. */
  readonly approvalId: string;

  constructor(code: status, message: string, reason: string, metadata: Record<string, string> = {}) {
    super(code, message, reason, metadata);
    this.name = "ApprovalError";
    this.approvalId = metadata.approval_id ?? "";
  }
}

/**
 * APPROVAL_REQUIRED: a requested scope needs human approval under the app's
 * policy. Nothing was minted; a pending approval was created. Wait for it
 * (BrokerClient.waitForApproval), then send the same request again with
 * `approvalId` (or use BrokerClient.issueWithApproval, which does both).
 */
export class ApprovalRequiredError extends ApprovalError {
  /** How many distinct approvers must approve (metadata `approvals_required`); 0 when absent. */
  readonly approvalsRequired: number;
  /** The group whose members may decide (metadata `approver_group`). */
  readonly approverGroup: string;
  /** When the approval expires if not decided and used (metadata `expire_time`); undefined when absent or unreadable. */
  readonly expireTime: Date | undefined;

  constructor(code: status, message: string, metadata: Record<string, string> = {}) {
    super(code, message, "APPROVAL_REQUIRED", metadata);
    this.name = "ApprovalRequiredError";
    const n = Number(metadata.approvals_required ?? "");
    this.approvalsRequired = Number.isInteger(n) && n >= 0 ? n : 0;
    this.approverGroup = metadata.approver_group ?? "";
    const t = metadata.expire_time === undefined ? NaN : Date.parse(metadata.expire_time);
    this.expireTime = Number.isNaN(t) ? undefined : new Date(t);
  }
}
