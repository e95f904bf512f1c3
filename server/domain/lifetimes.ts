// Token lifetimes (DESIGN §4): a requested TTL above the maximum is refused,
// not silently shortened, unless the request says shortening is fine.

import { InvalidRequestError, ParentExpiredError, TaskLifetimeExceededError, TtlExceedsMaximumError, type TtlRule } from "./errors.js";

export interface TtlDecision {
  readonly seconds: number;
  readonly clamped: boolean;
}

export interface TtlRequest {
  /** The TTL asked for, in seconds; null when the request left it unset. */
  readonly requestedSeconds: number | null;
  readonly allowClamp: boolean;
  /** The broker's default TTL. */
  readonly defaultSeconds: number;
  /** The longest TTL allowed here (app maximum, or parent's remaining life). */
  readonly maximumSeconds: number;
  readonly rule: TtlRule;
}

export function decideTtl(req: TtlRequest): TtlDecision {
  const max = Math.floor(req.maximumSeconds);
  if (req.requestedSeconds === null) {
    // Unset: the default, quietly shortened to the maximum. Nobody asked for
    // more, so nothing is refused.
    return { seconds: Math.min(req.defaultSeconds, max), clamped: false };
  }
  const asked = req.requestedSeconds;
  if (!Number.isFinite(asked) || asked < 1) throw new InvalidRequestError("ttl", "must be at least 1 second");
  const seconds = Math.floor(asked);
  if (seconds <= max) return { seconds, clamped: false };
  if (req.allowClamp) return { seconds: max, clamped: true };
  throw new TtlExceedsMaximumError(seconds, max, req.rule);
}

export interface RenewalRequest {
  /** The TTL asked for, in seconds; null when the request left it unset. */
  readonly requestedSeconds: number | null;
  readonly allowClamp: boolean;
  readonly defaultSeconds: number;
  /** The app's maximum TTL. */
  readonly appMaxSeconds: number;
  /** A delegated token's parent's expiry; null for a token issued by an app. */
  readonly parentExpiresAtMs: number | null;
  /** When the renewal line began: the issue time of its first token. */
  readonly taskStartMs: number;
  /** The app's task lifetime maximum. */
  readonly maxTaskSeconds: number;
  readonly nowMs: number;
}

export interface RenewalDecision {
  readonly notBeforeMs: number;
  readonly expiresAtMs: number;
  /** True when a requested TTL was shortened (to a bound the request allowed clamping to, or to the task's end). */
  readonly clamped: boolean;
  readonly taskExpiresAtMs: number;
}

/**
 * The new token's validity on Renew: at most the TTL asked for (or the
 * default), the app's maximum TTL and the parent's remaining life, as on
 * Issue and Delegate (refused above them unless clamping is allowed), and
 * never past the task's end (task start + maximum). The task's end always
 * shortens the TTL instead of refusing it: the last token of a line simply
 * ends with the task. Less than one whole second left is refused.
 */
export function decideRenewal(r: RenewalRequest): RenewalDecision {
  const start = Math.floor(r.nowMs / 1000) * 1000;
  const taskExpiresAtMs = r.taskStartMs + r.maxTaskSeconds * 1000;
  // Whole seconds, as exp is: the new exp can never pass the task's end.
  const taskRemaining = Math.floor((taskExpiresAtMs - start) / 1000);
  if (taskRemaining < 1) throw new TaskLifetimeExceededError(taskExpiresAtMs);
  let maximum = r.appMaxSeconds;
  let rule: TtlRule = "app_maximum";
  if (r.parentExpiresAtMs !== null) {
    const parentRemaining = Math.floor((r.parentExpiresAtMs - start) / 1000);
    if (parentRemaining < 1) throw new ParentExpiredError();
    if (parentRemaining < maximum) [maximum, rule] = [parentRemaining, "parent_remaining"];
  }
  const ttl = decideTtl({ requestedSeconds: r.requestedSeconds, allowClamp: r.allowClamp, defaultSeconds: r.defaultSeconds, maximumSeconds: maximum, rule });
  const seconds = Math.min(ttl.seconds, taskRemaining);
  const clamped = ttl.clamped || (r.requestedSeconds !== null && seconds < ttl.seconds);
  return { notBeforeMs: start, expiresAtMs: start + seconds * 1000, clamped, taskExpiresAtMs };
}
