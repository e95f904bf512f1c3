// The group-commit batcher: every request answered with its own result, in
// batches that take turns (server/service/batcher.ts).

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Batcher } from "../../server/service/batcher.js";

/** A write that records its batches and answers each input doubled once `release` is called. */
function recorder(): { batches: number[][]; write: (b: readonly number[]) => Promise<number[]>; release: () => void } {
  const batches: number[][] = [];
  let waiting: (() => void)[] = [];
  return {
    batches,
    write: (b) => {
      batches.push([...b]);
      return new Promise((resolve) => waiting.push(() => resolve(b.map((x) => x * 2))));
    },
    release: () => {
      const w = waiting;
      waiting = [];
      for (const f of w) f();
    },
  };
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("Batcher", () => {
  it("splits a burst in two halves, not a batch of one and the rest, so half can be prepared while the other half is written", async () => {
    const r = recorder();
    const b = new Batcher(r.write);
    const out = Array.from({ length: 64 }, (_, i) => b.submit(i));
    await turn();
    expect(r.batches.map((x) => x.length)).toEqual([32]);
    r.release();
    await turn();
    expect(r.batches.map((x) => x.length)).toEqual([32, 32]);
    expect(r.batches[1]![0]).toBe(32);
    r.release();
    expect(await Promise.all(out)).toEqual(Array.from({ length: 64 }, (_, i) => i * 2));
  });

  it("never exceeds maxBatch, and one request alone is written alone", async () => {
    const r = recorder();
    const b = new Batcher(r.write, 10);
    const one = b.submit(7);
    await turn();
    expect(r.batches).toEqual([[7]]);
    r.release();
    expect(await one).toBe(14);
    const many = Array.from({ length: 50 }, (_, i) => b.submit(i));
    await turn();
    expect(r.batches[1]!.length).toBe(10);
    for (let i = 0; i < 5; i++) {
      r.release();
      await turn();
    }
    expect(await Promise.all(many)).toEqual(Array.from({ length: 50 }, (_, i) => i * 2));
  });

  it("fails exactly the requests of a failed batch", async () => {
    let n = 0;
    const b = new Batcher<number, number>(async (batch) => {
      if (n++ === 0) throw new Error("boom");
      return batch.map((x) => x + 1);
    });
    // Four at once: two batches of two, the first of which fails.
    const out = await Promise.allSettled([1, 2, 3, 4].map((x) => b.submit(x)));
    expect(out.map((r) => (r.status === "rejected" ? (r.reason as Error).message : r.value))).toEqual(["boom", "boom", 4, 5]);
  });

  it("answers every request with its own result, one batch in flight at a time, whatever the arrivals (property)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 64 }), async (bursts, maxBatch) => {
        let inFlight = 0;
        let most = 0;
        const sizes: number[] = [];
        const b = new Batcher<number, number>(async (batch) => {
          inFlight++;
          most = Math.max(most, inFlight);
          sizes.push(batch.length);
          await turn();
          inFlight--;
          return batch.map((x) => -x);
        }, maxBatch);
        const all: Promise<number>[] = [];
        let next = 0;
        for (const burst of bursts) {
          for (let i = 0; i < burst; i++) all.push(b.submit(next++));
          await turn();
        }
        const out = await Promise.all(all);
        expect(out).toEqual(Array.from({ length: next }, (_, i) => -i));
        expect(most).toBeLessThanOrEqual(1);
        expect(sizes.every((s) => s >= 1 && s <= maxBatch)).toBe(true);
        expect(sizes.reduce((a, s) => a + s, 0)).toBe(next);
      }),
      { numRuns: 200 },
    );
  });
});
