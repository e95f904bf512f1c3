// Token bucket: `burst` tokens at most, refilled with `count` tokens every
// `periodMs`; each request takes one. Pure integer arithmetic on times in
// whole milliseconds (Date.now()): credit is counted in 1/periodMs of a
// token, so one millisecond adds exactly `count` units and the wait reported
// is exact, never rounded down.

export interface Rate {
  /** Tokens added per `periodMs`; a whole number >= 1. */
  readonly count: number;
  /** A whole number of milliseconds >= 1. */
  readonly periodMs: number;
  /** Capacity: the most requests accepted at once after a quiet spell; a whole number >= 1. */
  readonly burst: number;
}

export interface Bucket {
  /** Units of 1/periodMs of a token, 0 to burst * periodMs. */
  readonly credit: number;
  /** When `credit` was computed, in whole milliseconds. */
  readonly atMs: number;
}

export type Take =
  | { readonly ok: true; readonly bucket: Bucket }
  | { readonly ok: false; readonly bucket: Bucket; readonly retryAfterMs: number };

export const perSecond = (count: number, burst: number): Rate => ({ count, periodMs: 1000, burst });

/** A bucket that has not been used: full. */
export const fullBucket = (rate: Rate, nowMs: number): Bucket => ({ credit: rate.burst * rate.periodMs, atMs: nowMs });

/**
 * The bucket as of `nowMs`, never above `rate`'s burst (which may have been
 * lowered since). A clock that moved backwards adds nothing (and keeps the
 * later time), so a stepped clock cannot mint tokens.
 */
export function refill(b: Bucket, rate: Rate, nowMs: number): Bucket {
  const elapsed = Math.max(0, nowMs - b.atMs);
  return { credit: Math.min(rate.burst * rate.periodMs, b.credit + elapsed * rate.count), atMs: Math.max(nowMs, b.atMs) };
}

/** Whether a token is there now, without taking it; if not, how long until one is. */
export function peek(b: Bucket, rate: Rate, nowMs: number): Take {
  const now = refill(b, rate, nowMs);
  if (now.credit >= rate.periodMs) return { ok: true, bucket: now };
  return { ok: false, bucket: now, retryAfterMs: Math.ceil((rate.periodMs - now.credit) / rate.count) };
}

/**
 * Takes one token, or says how long until one is there. A refused take
 * leaves the bucket as it was (refilled): being refused costs nothing, so a
 * caller that waits `retryAfterMs` is served.
 */
export function take(b: Bucket, rate: Rate, nowMs: number): Take {
  const p = peek(b, rate, nowMs);
  return p.ok ? { ok: true, bucket: { credit: p.bucket.credit - rate.periodMs, atMs: p.bucket.atMs } } : p;
}

/** Whole tokens in the bucket at `nowMs`. */
export const tokensIn = (b: Bucket, rate: Rate, nowMs: number): number => Math.floor(refill(b, rate, nowMs).credit / rate.periodMs);
