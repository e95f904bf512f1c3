// Approvals (issue 8): the approver's client, and the wait for a decision
// that BrokerClient.waitForApproval and issueWithApproval use.
//
// An Issue or Delegate for a scope the app's policy says needs human approval
// fails with an ApprovalRequiredError naming a new pending approval. Approvers
// (named humans, `apv_...` credentials) list it, approve or deny it with a
// reason; the requester follows it through WatchApproval and, once APPROVED,
// sends the same request again with `approvalId`.

import { Metadata, status } from "@grpc/grpc-js";
import { ApprovalServiceClient, ApprovalState, type Approval } from "./gen/baton/v1/approvals.js";
import { optionalUint32, paginate, type PageRequest } from "./admin.js";
import { optionalString, requiredObject, requiredString } from "./args.js";
import {
  callerMetadata,
  channelSettings,
  present,
  unaryCall,
  type AppOrOperator,
  type BrokerClientOptions,
  type CallOptions,
  type UnaryMethod,
} from "./client.js";
import { ApprovalError, BatonError, fromServiceError } from "./errors.js";

/** How long a wait for a decision lasts when the call does not say: the broker's default approval window, 15 minutes. */
export const DEFAULT_APPROVAL_WAIT_MS: number = 15 * 60_000;

/** The longest approve or deny reason the broker accepts, in characters. */
export const MAX_DECISION_REASON_LENGTH: number = 512;

/** The first and the longest pause before following an approval again after its stream broke, in ms. */
const RESUBSCRIBE_BASE_MS = 200;
const RESUBSCRIBE_MAX_MS = 5000;

/** Stream failures worth following again: the broker restarting, a proxy dropping the stream, a passing limit. */
const RESUBSCRIBE_CODES: ReadonlySet<status> = new Set([status.UNAVAILABLE, status.INTERNAL, status.UNKNOWN, status.ABORTED, status.RESOURCE_EXHAUSTED]);

/** The states an approval never leaves. */
const TERMINAL: ReadonlySet<ApprovalState> = new Set([
  ApprovalState.APPROVAL_STATE_APPROVED,
  ApprovalState.APPROVAL_STATE_DENIED,
  ApprovalState.APPROVAL_STATE_EXPIRED,
  ApprovalState.APPROVAL_STATE_USED,
]);

/** Whether an approval is decided for good (APPROVED, DENIED, EXPIRED or USED). */
export function isTerminal(approval: Approval): boolean {
  return TERMINAL.has(approval.state);
}

/** An approver: its client id (`apv_...`) and secret from AdminClient.createApprover, sent as `authorization: Basic`. */
export interface ApproverCredentials {
  /** The approver's id, `apv_...`. */
  readonly clientId: string;
  /** Its client secret. */
  readonly clientSecret: string;
}

/** Options of a wait for an approval's decision. */
export interface WaitOptions {
  /** How long to wait in all, in ms; default {@link DEFAULT_APPROVAL_WAIT_MS}. */
  readonly timeoutMs?: number | undefined;
  /** Stops the wait; it then fails with CANCELLED. */
  readonly signal?: AbortSignal | undefined;
}

/** The approval states by name, for {@link ListApprovalsRequest.state}. */
export type ApprovalStateName = "pending" | "approved" | "denied" | "expired" | "used";

const STATES: Record<ApprovalStateName, ApprovalState> = {
  pending: ApprovalState.APPROVAL_STATE_PENDING,
  approved: ApprovalState.APPROVAL_STATE_APPROVED,
  denied: ApprovalState.APPROVAL_STATE_DENIED,
  expired: ApprovalState.APPROVAL_STATE_EXPIRED,
  used: ApprovalState.APPROVAL_STATE_USED,
};

/** A ListApprovals filter and page. */
export interface ListApprovalsRequest extends PageRequest {
  /** Only approvals in this state; all when unset. */
  readonly state?: ApprovalState | ApprovalStateName;
  /** Only approvals of this app. */
  readonly appId?: string;
}

function stateOf(value: unknown): ApprovalState {
  if (value === undefined) return ApprovalState.APPROVAL_STATE_UNSPECIFIED;
  if (typeof value === "string" && Object.hasOwn(STATES, value)) return STATES[value as ApprovalStateName];
  if (typeof value === "number" && Object.values(STATES).includes(value)) return value;
  throw new TypeError(`request.state: unknown approval state: ${typeof value === "string" ? value.slice(0, 32) : typeof value}`);
}

function timeoutOf(options: WaitOptions | undefined): number {
  if (options !== undefined) requiredObject(options, "options");
  const ms = options?.timeoutMs ?? DEFAULT_APPROVAL_WAIT_MS;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms <= 0) throw new TypeError("options.timeoutMs must be a positive number of milliseconds");
  return ms;
}

/** A decision's reason: required, at most {@link MAX_DECISION_REASON_LENGTH} characters (checked here so a mistake costs no call). */
function reasonOf(value: unknown): string {
  const reason = requiredString(value, "reason");
  const length = [...reason].length;
  if (reason.trim() === "" || length > MAX_DECISION_REASON_LENGTH) {
    throw new TypeError(`reason must be 1 to ${MAX_DECISION_REASON_LENGTH} characters (the audit trail records why), not ${length}`);
  }
  return reason;
}

function approverMetadata(approver: ApproverCredentials): Metadata {
  requiredObject(approver, "approver");
  if (!("clientId" in approver)) throw new TypeError("approver must be { clientId, clientSecret }: approvals are decided by named approvers only");
  return callerMetadata(approver, "approver");
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** How one WatchApproval stream ended: with a decided approval, or not (an error, or an end before a decision). */
type WatchOutcome = { readonly approval: Approval } | { readonly approval?: undefined; readonly error?: BatonError };

function watchOnce(stub: ApprovalServiceClient, md: Metadata, approvalId: string, deadline: number, signal: AbortSignal | undefined): Promise<WatchOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    const settle = (outcome: WatchOutcome): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      resolve(outcome);
    };
    const call = stub.watchApproval({ approvalId }, md, { deadline });
    const onAbort = (): void => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    call.on("data", (res: { approval?: Approval }) => {
      if (res.approval && isTerminal(res.approval)) {
        settle({ approval: res.approval });
        call.cancel();
      }
    });
    call.on("error", (err: unknown) => settle({ error: fromServiceError(err) }));
    call.on("end", () => settle({}));
  });
}

/**
 * Follows an approval through WatchApproval until it is decided for good,
 * following it again (after a pause) when the stream breaks or ends early.
 * `metadata` is asked for each stream: an agent needs a fresh proof each time.
 *
 * @returns the approval, APPROVED, DENIED, EXPIRED or USED
 * @throws ApprovalError with reason APPROVAL_PENDING and code DEADLINE_EXCEEDED when still undecided after `timeoutMs`
 * @throws BatonError for a refusal (unknown approval, not the caller's, bad credentials) or CANCELLED when `signal` aborts
 */
export async function waitForDecision(
  stub: ApprovalServiceClient,
  metadata: () => Promise<Metadata> | Metadata,
  approvalId: string,
  options?: WaitOptions,
): Promise<Approval> {
  const id = requiredString(approvalId, "approvalId");
  const timeoutMs = timeoutOf(options);
  const signal = options?.signal;
  const deadline = Date.now() + timeoutMs;
  let pause = RESUBSCRIBE_BASE_MS;
  for (;;) {
    if (signal?.aborted) throw new BatonError(status.CANCELLED, "cancelled while waiting for the approval");
    const outcome = await watchOnce(stub, await metadata(), id, deadline, signal);
    if (outcome.approval) return outcome.approval;
    const err = outcome.error;
    if (err?.code === status.DEADLINE_EXCEEDED || Date.now() >= deadline) {
      throw new ApprovalError(status.DEADLINE_EXCEEDED, `approval ${id} was not decided within ${timeoutMs} ms`, "APPROVAL_PENDING", { approval_id: id });
    }
    if (err && !RESUBSCRIBE_CODES.has(err.code)) throw err;
    await sleep(Math.min(Math.max(pause, err?.retryAfterMs ?? 0), deadline - Date.now()), signal);
    pause = Math.min(pause * 2, RESUBSCRIBE_MAX_MS);
  }
}

/**
 * A connection to a Baton broker's ApprovalService, for approvers (and
 * operators, who may list and follow approvals but never decide them). The
 * requester's side (waiting for its own approval) is on BrokerClient.
 *
 * @example
 * ```ts
 * const approvals = new ApprovalClient("127.0.0.1:7443");
 * const me = { clientId: "apv_...", clientSecret: process.env.APPROVER_SECRET! };
 * for await (const a of approvals.allApprovals(me, { state: "pending" })) {
 *   await approvals.approve(me, a.approvalId, "checked the dosage with the ward");
 * }
 * ```
 */
export class ApprovalClient {
  readonly #client: ApprovalServiceClient;
  readonly #timeoutMs: number;

  /**
   * Opens a channel to the broker at `address`, as BrokerClient does
   * (plaintext only on loopback unless `credentials` are given).
   *
   * @throws TypeError when `address` is not a loopback address and no `credentials` are given
   */
  constructor(address: string, options: BrokerClientOptions = {}) {
    const { creds, timeoutMs } = channelSettings(address, options);
    this.#timeoutMs = timeoutMs;
    this.#client = new ApprovalServiceClient(address, creds, options.channelOptions);
  }

  /** The generated client; calls on it get neither credentials, deadline nor BatonError conversion. */
  get stub(): ApprovalServiceClient {
    return this.#client;
  }

  /** One page of approvals the caller may see, newest first; `nextPageToken` is empty on the last. See {@link allApprovals}. */
  async listApprovals(
    caller: ApproverCredentials | AppOrOperator,
    request: ListApprovalsRequest = {},
    options?: CallOptions,
  ): Promise<{ approvals: Approval[]; nextPageToken: string }> {
    requiredObject(request, "request");
    const req = {
      state: stateOf(request.state),
      appId: optionalString(request.appId, "request.appId"),
      pageSize: optionalUint32(request.pageSize, "request.pageSize") ?? 0,
      pageToken: optionalString(request.pageToken, "request.pageToken"),
    };
    const res = await this.#unary(this.#client.listApprovals, req, callerMetadata(caller), options);
    return { approvals: res.approvals, nextPageToken: res.nextPageToken };
  }

  /** Every approval the caller may see, page after page (each page one call, made as the iteration reaches it). */
  async *allApprovals(
    caller: ApproverCredentials | AppOrOperator,
    request: Omit<ListApprovalsRequest, "pageToken"> = {},
    options?: CallOptions,
  ): AsyncGenerator<Approval> {
    yield* paginate((pageToken) => this.listApprovals(caller, { ...request, pageToken }, options).then((r) => ({ items: r.approvals, next: r.nextPageToken })));
  }

  /** One approval, by id. */
  async getApproval(caller: ApproverCredentials | AppOrOperator, approvalId: string, options?: CallOptions): Promise<Approval> {
    const req = { approvalId: requiredString(approvalId, "approvalId") };
    const res = await this.#unary(this.#client.getApproval, req, callerMetadata(caller), options);
    return present(res.approval, "approval");
  }

  /** Waits until the approval is decided for good; see BrokerClient.waitForApproval. */
  async waitForApproval(caller: ApproverCredentials | AppOrOperator, approvalId: string, options?: WaitOptions): Promise<Approval> {
    const md = callerMetadata(caller);
    return waitForDecision(this.#client, () => md.clone(), approvalId, options);
  }

  /**
   * Approves, as this approver. The approval becomes APPROVED once enough
   * distinct approvers approved; resolves with it after this decision.
   *
   * @throws TypeError when `reason` is empty or longer than {@link MAX_DECISION_REASON_LENGTH} characters
   */
  async approve(approver: ApproverCredentials, approvalId: string, reason: string, options?: CallOptions): Promise<Approval> {
    const req = { approvalId: requiredString(approvalId, "approvalId"), reason: reasonOf(reason) };
    const res = await this.#unary(this.#client.approve, req, approverMetadata(approver), options);
    return present(res.approval, "approval");
  }

  /**
   * Denies, as this approver: the request can never be minted.
   *
   * @throws TypeError when `reason` is empty or longer than {@link MAX_DECISION_REASON_LENGTH} characters
   */
  async deny(approver: ApproverCredentials, approvalId: string, reason: string, options?: CallOptions): Promise<Approval> {
    const req = { approvalId: requiredString(approvalId, "approvalId"), reason: reasonOf(reason) };
    const res = await this.#unary(this.#client.deny, req, approverMetadata(approver), options);
    return present(res.approval, "approval");
  }

  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void {
    this.#client.close();
  }

  #unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, metadata: Metadata, options?: CallOptions): Promise<Res> {
    return unaryCall(this.#client, this.#timeoutMs, method, request, metadata, options);
  }
}
