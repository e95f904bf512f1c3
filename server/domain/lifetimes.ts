// Token lifetimes (DESIGN §4): a requested TTL above the maximum is refused,
// not silently shortened, unless the request says shortening is fine.

import { InvalidRequestError, TtlExceedsMaximumError, type TtlRule } from "./errors.js";

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
