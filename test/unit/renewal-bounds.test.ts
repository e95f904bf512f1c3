// decideRenewal (issue 8): a renewed token never expires after the task's
// end (task start + maximum), its parent, or now + the app's maximum TTL; a
// TTL above the app or parent bound is refused unless clamping is allowed;
// the task's end always shortens instead of refusing, and less than one
// second left is TASK_LIFETIME_EXCEEDED with the task's end in the details.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ParentExpiredError, TaskLifetimeExceededError, TtlExceedsMaximumError } from "../../server/domain/errors.js";
import { decideRenewal, type RenewalRequest } from "../../server/domain/lifetimes.js";

const T0 = Date.UTC(2026, 11, 3, 10, 0, 0);

const request = fc.record({
  requestedSeconds: fc.option(fc.integer({ min: 1, max: 100_000 }), { nil: null }),
  allowClamp: fc.boolean(),
  defaultSeconds: fc.integer({ min: 1, max: 3600 }),
  appMaxSeconds: fc.integer({ min: 1, max: 86_400 }),
  parentExpiresAtMs: fc.option(fc.integer({ min: T0 - 10_000, max: T0 + 200_000_000 }), { nil: null }),
  taskStartMs: fc.integer({ min: T0 - 200_000_000, max: T0 }),
  maxTaskSeconds: fc.integer({ min: 1, max: 30 * 86_400 }),
  nowMs: fc.integer({ min: T0, max: T0 + 5_000 }),
});

describe("decideRenewal", () => {
  it("never expires after the task's end, the parent or the app's maximum, and refuses only by the documented rules", () => {
    fc.assert(
      fc.property(request, (r: RenewalRequest) => {
        const start = Math.floor(r.nowMs / 1000) * 1000;
        const taskEnd = r.taskStartMs + r.maxTaskSeconds * 1000;
        let d;
        try {
          d = decideRenewal(r);
        } catch (err) {
          if (err instanceof TaskLifetimeExceededError) {
            expect(taskEnd - start).toBeLessThan(1000);
            expect(err.details.task_expire_time).toBe(new Date(taskEnd).toISOString());
          } else if (err instanceof ParentExpiredError) {
            expect(r.parentExpiresAtMs! - start).toBeLessThan(1000);
          } else if (err instanceof TtlExceedsMaximumError) {
            expect(r.allowClamp).toBe(false);
            expect(r.requestedSeconds).not.toBeNull();
            const parentBound = r.parentExpiresAtMs === null ? Infinity : r.parentExpiresAtMs - start;
            expect(r.requestedSeconds! * 1000 > Math.min(r.appMaxSeconds * 1000, parentBound)).toBe(true);
          } else {
            throw err;
          }
          return;
        }
        expect(d.notBeforeMs).toBe(start);
        expect(d.expiresAtMs).toBeLessThanOrEqual(taskEnd);
        expect(d.expiresAtMs).toBeLessThanOrEqual(start + r.appMaxSeconds * 1000);
        if (r.parentExpiresAtMs !== null) expect(d.expiresAtMs).toBeLessThanOrEqual(r.parentExpiresAtMs);
        expect(d.expiresAtMs - start).toBeGreaterThanOrEqual(1000);
        expect((d.expiresAtMs - start) % 1000).toBe(0);
        expect(d.taskExpiresAtMs).toBe(taskEnd);
        const asked = (r.requestedSeconds ?? r.defaultSeconds) * 1000;
        expect(d.expiresAtMs - start).toBeLessThanOrEqual(asked);
        // Granted as asked unless a bound shortened it; a shortened explicit TTL is reported.
        if (r.requestedSeconds !== null) expect(d.clamped).toBe(d.expiresAtMs - start < asked);
        else expect(d.clamped).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it("the task's end shortens a TTL even when clamping is not allowed", () => {
    const d = decideRenewal({
      requestedSeconds: 600, allowClamp: false, defaultSeconds: 300, appMaxSeconds: 3600,
      parentExpiresAtMs: null, taskStartMs: T0 - 3_598_500, maxTaskSeconds: 3600, nowMs: T0,
    });
    expect(d.expiresAtMs).toBe(T0 + 1000);
    expect(d.clamped).toBe(true);
  });

  it("less than a second left is TASK_LIFETIME_EXCEEDED, whatever else is asked", () => {
    const base = { requestedSeconds: null, allowClamp: true, defaultSeconds: 300, appMaxSeconds: 3600, parentExpiresAtMs: null, maxTaskSeconds: 60 };
    expect(() => decideRenewal({ ...base, taskStartMs: T0 - 59_001, nowMs: T0 })).toThrow(TaskLifetimeExceededError);
    expect(() => decideRenewal({ ...base, taskStartMs: T0 - 61_000, nowMs: T0 })).toThrow(TaskLifetimeExceededError);
    expect(decideRenewal({ ...base, taskStartMs: T0 - 59_000, nowMs: T0 }).expiresAtMs).toBe(T0 + 1000);
    expect(() => decideRenewal({ ...base, taskStartMs: T0 - 60_000, nowMs: T0 + 500 })).toThrow(TaskLifetimeExceededError);
  });
});
