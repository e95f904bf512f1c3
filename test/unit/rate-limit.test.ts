// The token bucket's arithmetic (domain/rate-limit.ts), the per-source
// throttle built on it and the source keys (service/rate-limits.ts): no
// window admits more than the burst plus what the rate refills, a caller at
// or under the rate is never refused, the wait reported is exactly when the
// next request is accepted, and a clock that steps back mints nothing.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AuthenticationThrottledError, RateLimitedError } from "../../server/domain/errors.js";
import { type Bucket, fullBucket, peek, type Rate, take, tokensIn } from "../../server/domain/rate-limit.js";
import { RateLimits, sourceKey } from "../../server/service/rate-limits.js";

const rateArb: fc.Arbitrary<Rate> = fc.record({
  count: fc.integer({ min: 1, max: 2000 }),
  periodMs: fc.constantFrom(1, 7, 1000, 10_000, 60_000),
  burst: fc.integer({ min: 1, max: 50 }),
});

/** Runs requests at the given times (sorted) from a full bucket; returns which were admitted. */
function run(rate: Rate, times: readonly number[]): boolean[] {
  let b: Bucket = fullBucket(rate, times[0] ?? 0);
  return times.map((t) => {
    const r = take(b, rate, t);
    b = r.bucket;
    return r.ok;
  });
}

const timesArb = fc.array(fc.integer({ min: 0, max: 120_000 }), { minLength: 1, maxLength: 150 }).map((xs) => xs.sort((a, b) => a - b));

describe("token bucket", () => {
  it("admits at most burst + rate x duration in any window", () => {
    fc.assert(
      fc.property(rateArb, timesArb, (rate, times) => {
        const ok = run(rate, times);
        for (let i = 0; i < times.length; i++) {
          let admitted = 0;
          for (let j = i; j < times.length; j++) {
            if (ok[j]) admitted++;
            const refilled = Math.floor(((times[j]! - times[i]!) * rate.count) / rate.periodMs);
            if (admitted > rate.burst + refilled) return false;
          }
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });

  it("never refuses a caller that keeps to the rate", () => {
    fc.assert(
      fc.property(rateArb, fc.array(fc.integer({ min: 0, max: 5000 }), { maxLength: 100 }), (rate, extra) => {
        const gap = Math.ceil(rate.periodMs / rate.count);
        let t = 1_000_000;
        const times = extra.map((e) => (t += gap + e));
        return run(rate, times).every(Boolean);
      }),
      { numRuns: 500 },
    );
  });

  it("admits exactly burst requests at one instant, then refuses", () => {
    fc.assert(
      fc.property(rateArb, fc.integer({ min: 0, max: 1e12 }), (rate, t) => {
        const ok = run(rate, Array.from({ length: rate.burst + 1 }, () => t));
        return ok.slice(0, rate.burst).every(Boolean) && ok[rate.burst] === false;
      }),
      { numRuns: 500 },
    );
  });

  it("reports the exact wait: served at now + retryAfter, refused a millisecond earlier", () => {
    fc.assert(
      fc.property(rateArb, timesArb, (rate, times) => {
        let b: Bucket = fullBucket(rate, times[0]!);
        for (const t of times) {
          const r = take(b, rate, t);
          if (!r.ok) {
            if (r.retryAfterMs < 1) return false;
            if (!take(r.bucket, rate, t + r.retryAfterMs).ok) return false;
            if (take(r.bucket, rate, t + r.retryAfterMs - 1).ok) return false;
            // The wait is never longer than one token's worth.
            if (r.retryAfterMs > Math.ceil(rate.periodMs / rate.count)) return false;
          }
          b = r.bucket;
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });

  it("a refused take costs nothing; peek never takes", () => {
    fc.assert(
      fc.property(rateArb, fc.integer({ min: 0, max: 1e9 }), fc.integer({ min: 0, max: 100_000 }), (rate, t, dt) => {
        let b = fullBucket(rate, t);
        for (let i = 0; i < rate.burst; i++) b = take(b, rate, t).bucket;
        const taken = take(b, rate, t + dt);
        const peeked = peek(b, rate, t + dt);
        if (taken.ok !== peeked.ok) return false;
        return taken.ok ? taken.bucket.credit === peeked.bucket.credit - rate.periodMs : taken.bucket.credit === peeked.bucket.credit;
      }),
      { numRuns: 500 },
    );
  });

  it("a clock that steps back adds nothing", () => {
    fc.assert(
      fc.property(rateArb, fc.integer({ min: 10_000, max: 1e9 }), fc.integer({ min: 1, max: 10_000 }), (rate, t, back) => {
        let b = fullBucket(rate, t);
        for (let i = 0; i < rate.burst; i++) b = take(b, rate, t).bucket;
        return tokensIn(b, rate, t - back) === 0 && !take(b, rate, t - back).ok;
      }),
      { numRuns: 300 },
    );
  });

  it("a lowered burst applies at once to a fuller bucket", () => {
    const high: Rate = { count: 1, periodMs: 1000, burst: 100 };
    const low: Rate = { count: 1, periodMs: 1000, burst: 2 };
    let b = fullBucket(high, 0);
    const ok = [1, 2, 3].map(() => {
      const r = take(b, low, 0);
      b = r.bucket;
      return r.ok;
    });
    expect(ok).toEqual([true, true, false]);
  });
});

describe("per-source authentication throttle", () => {
  it("refuses a source after N failures, with the wait; other sources and successes are unaffected", () => {
    let now = 1_000_000;
    const limits = new RateLimits({ appPerSecond: 10, appBurst: 10, authFailures: 5, authFailureWindowSeconds: 10, now: () => now });
    for (let i = 0; i < 5; i++) {
      limits.checkSource("10.0.0.1");
      limits.sourceFailed("10.0.0.1");
    }
    let thrown: unknown;
    try {
      limits.checkSource("10.0.0.1");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(AuthenticationThrottledError);
    // 5 per 10 s: one attempt back every 2 s.
    expect((thrown as AuthenticationThrottledError).retryAfterMs).toBe(2000);
    expect(() => limits.checkSource("10.0.0.2")).not.toThrow();
    now += 1999;
    expect(() => limits.checkSource("10.0.0.1")).toThrow(AuthenticationThrottledError);
    now += 1;
    expect(() => limits.checkSource("10.0.0.1")).not.toThrow();
    expect(limits.authThrottled).toBe(2);
  });

  it("keeps at most 100,000 sources, forgetting the least recently failed", () => {
    const limits = new RateLimits({ appPerSecond: 10, appBurst: 10, authFailures: 1, authFailureWindowSeconds: 3600, now: () => 0 });
    limits.sourceFailed("10.0.0.1");
    expect(() => limits.checkSource("10.0.0.1")).toThrow(AuthenticationThrottledError);
    for (let i = 0; i < 99_999; i++) limits.sourceFailed(`s${i}`);
    expect(() => limits.checkSource("10.0.0.1")).toThrow(AuthenticationThrottledError);
    limits.sourceFailed("one-too-many");
    expect(() => limits.checkSource("10.0.0.1")).not.toThrow();
    expect(() => limits.checkSource("one-too-many")).toThrow(AuthenticationThrottledError);
  });

  it("charges apps against their own rate, or the default", () => {
    const now = 5_000;
    const limits = new RateLimits({ appPerSecond: 100, appBurst: 3, authFailures: 5, authFailureWindowSeconds: 10, now: () => now });
    const dflt = limits.rateOf({ ratePerSecond: 0, rateBurst: 0 });
    expect(dflt).toEqual({ count: 100, periodMs: 1000, burst: 3 });
    for (let i = 0; i < 3; i++) limits.chargeApp("app_a", dflt);
    expect(() => limits.chargeApp("app_a", dflt)).toThrow(RateLimitedError);
    // Another app has its own bucket.
    expect(() => limits.chargeApp("app_b", limits.rateOf({ ratePerSecond: 1, rateBurst: 1 }))).not.toThrow();
    expect(() => limits.chargeApp("app_b", limits.rateOf({ ratePerSecond: 1, rateBurst: 1 }))).toThrow(RateLimitedError);
    expect(limits.rateLimited).toBe(2);
  });
});

describe("sourceKey", () => {
  it.each([
    ["127.0.0.1:54321", "127.0.0.1"],
    ["10.1.2.3:1", "10.1.2.3"],
    ["::ffff:10.1.2.3:4444", "10.1.2.3"],
    ["::1:50000", "0:0:0:0::/64"],
    ["2001:db8:aa:bb:1:2:3:4:443", "2001:db8:aa:bb::/64"],
    ["2001:db8:aa:bb::99:443", "2001:db8:aa:bb::/64"],
    ["2001:0db8:00aa:00bb:ffff::1:443", "2001:db8:aa:bb::/64"],
    ["[2001:db8::1]:443", "2001:db8:0:0::/64"],
    ["unknown", "local"],
    ["/tmp/baton.sock", "local"],
  ])("%s -> %s", (peer, key) => {
    expect(sourceKey(peer)).toBe(key);
  });

  it("puts every address of one IPv6 /64 under one key", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.integer({ min: 1, max: 65535 }), (g, port) => {
        const full = g.map((x) => x.toString(16)).join(":");
        return sourceKey(`${full}:${port}`) === `${g.slice(0, 4).map((x) => x.toString(16)).join(":")}::/64`;
      }),
      { numRuns: 300 },
    );
  });
});
