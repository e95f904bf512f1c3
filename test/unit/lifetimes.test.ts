// decideTtl (DESIGN §4): an unset TTL gets the default (never more than the
// maximum); a TTL within the maximum is granted as asked (whole seconds); a
// TTL above it is refused with TtlExceedsMaximumError naming the numbers and
// the rule, unless the request allows clamping, in which case it is exactly
// the maximum and marked clamped; a TTL below one second or not finite is an
// invalid request. Whatever is granted never exceeds the maximum.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidRequestError, TtlExceedsMaximumError, type TtlRule } from "../../server/domain/errors.js";
import { decideTtl, type TtlRequest } from "../../server/domain/lifetimes.js";

const ruleArb = fc.constantFrom<TtlRule>("app_maximum", "parent_remaining");
const maxArb = fc.integer({ min: 1, max: 86_400 });
const defaultArb = fc.integer({ min: 1, max: 86_400 });

const req = (r: Partial<TtlRequest>): TtlRequest => ({
  requestedSeconds: null,
  allowClamp: false,
  defaultSeconds: 300,
  maximumSeconds: 3_600,
  rule: "app_maximum",
  ...r,
});

describe("decideTtl", () => {
  it("unset: the default, shortened to the maximum without refusing and without reporting a clamp", () => {
    fc.assert(
      fc.property(defaultArb, maxArb, fc.boolean(), ruleArb, (def, max, allowClamp, rule) => {
        const d = decideTtl(req({ requestedSeconds: null, defaultSeconds: def, maximumSeconds: max, allowClamp, rule }));
        expect(d.seconds).toBe(def <= max ? def : max);
        expect(d.clamped).toBe(false);
      }),
      { numRuns: 1000 },
    );
    expect(decideTtl(req({ defaultSeconds: 300, maximumSeconds: 3_600 }))).toEqual({ seconds: 300, clamped: false });
  });

  it("within the maximum: granted as asked (whole seconds), clamp flag irrelevant", () => {
    fc.assert(
      fc.property(maxArb, fc.boolean(), ruleArb, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (max, allowClamp, rule, frac) => {
        const asked = 1 + Math.floor(frac * max); // 1..max
        const d = decideTtl(req({ requestedSeconds: asked, maximumSeconds: max, allowClamp, rule }));
        expect(d).toEqual({ seconds: asked, clamped: false });
      }),
      { numRuns: 1000 },
    );
  });

  it("above the maximum without clamping: refused with the requested and maximum seconds and the rule", () => {
    fc.assert(
      fc.property(maxArb, fc.integer({ min: 1, max: 1_000_000 }), ruleArb, (max, over, rule) => {
        const asked = max + over;
        let caught: unknown;
        try {
          decideTtl(req({ requestedSeconds: asked, maximumSeconds: max, allowClamp: false, rule }));
        } catch (err) {
          caught = err;
        }
        expect(caught).toBeInstanceOf(TtlExceedsMaximumError);
        const e = caught as TtlExceedsMaximumError;
        expect(e.reason).toBe("TTL_EXCEEDS_MAXIMUM");
        expect(e.details).toEqual({ requested_seconds: String(asked), maximum_seconds: String(max), rule });
        expect(e.message).toContain(`${asked}s`);
        expect(e.message).toContain(`${max}s`);
      }),
      { numRuns: 1000 },
    );
  });

  it("above the maximum with clamping allowed: exactly the maximum, marked clamped", () => {
    fc.assert(
      fc.property(maxArb, fc.integer({ min: 1, max: 1_000_000 }), ruleArb, (max, over, rule) => {
        const d = decideTtl(req({ requestedSeconds: max + over, maximumSeconds: max, allowClamp: true, rule }));
        expect(d).toEqual({ seconds: max, clamped: true });
      }),
      { numRuns: 1000 },
    );
  });

  it("never grants more than the (whole-second) maximum, for any request that is not refused", () => {
    const requested = fc.oneof(fc.constant(null), fc.double({ min: 1, max: 1e9, noNaN: true }), fc.integer({ min: 1, max: 200_000 }));
    fc.assert(
      fc.property(requested, fc.double({ min: 1, max: 100_000, noNaN: true }), defaultArb, fc.boolean(), ruleArb, (asked, max, def, allowClamp, rule) => {
        let d;
        try {
          d = decideTtl(req({ requestedSeconds: asked, maximumSeconds: max, defaultSeconds: def, allowClamp, rule }));
        } catch (err) {
          // Refusal is only ever "too long", and only when clamping was not allowed.
          expect(err).toBeInstanceOf(TtlExceedsMaximumError);
          expect(allowClamp).toBe(false);
          expect(Math.floor(asked as number)).toBeGreaterThan(Math.floor(max));
          return;
        }
        expect(d.seconds).toBeLessThanOrEqual(Math.floor(max));
        expect(d.seconds).toBeGreaterThanOrEqual(1);
        expect(Number.isInteger(d.seconds)).toBe(true);
        if (asked !== null) expect(d.seconds).toBeLessThanOrEqual(asked);
        expect(d.clamped).toBe(asked !== null && Math.floor(asked) > Math.floor(max));
      }),
      { numRuns: 2000 },
    );
  });

  it("a fractional maximum (a parent's remaining life) is floored: 10.9s left grants at most 10s", () => {
    expect(() => decideTtl(req({ requestedSeconds: 11, maximumSeconds: 10.9, rule: "parent_remaining" }))).toThrow(TtlExceedsMaximumError);
    expect(decideTtl(req({ requestedSeconds: 11, maximumSeconds: 10.9, allowClamp: true }))).toEqual({ seconds: 10, clamped: true });
    expect(decideTtl(req({ requestedSeconds: 10.9, maximumSeconds: 10.9 }))).toEqual({ seconds: 10, clamped: false });
  });

  it("refuses a TTL below one second or not finite as an invalid request (even when clamping is allowed)", () => {
    const bad = fc.oneof(
      fc.double({ min: -1e9, max: 1, noNaN: true, maxExcluded: true }),
      fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0, 0.999),
    );
    fc.assert(
      fc.property(bad, fc.boolean(), maxArb, (asked, allowClamp, max) => {
        expect(() => decideTtl(req({ requestedSeconds: asked, allowClamp, maximumSeconds: max }))).toThrow(InvalidRequestError);
      }),
      { numRuns: 500 },
    );
    try {
      decideTtl(req({ requestedSeconds: 0 }));
      expect.unreachable();
    } catch (err) {
      expect((err as InvalidRequestError).details.field).toBe("ttl");
    }
  });
});
