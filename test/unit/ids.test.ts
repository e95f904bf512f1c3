// Random ids (token ids, agent-id suffixes) come from a pooled CSPRNG buffer:
// each is 128 bits, base64url, and no bytes are handed out twice, across
// refills of the pool too.

import { describe, expect, it } from "vitest";
import { randomId } from "../../server/crypto/secrets.js";

describe("randomId", () => {
  it("gives 22 base64url characters (128 bits) and never repeats, over many refills of the pool", () => {
    const n = 50_000; // about 195 refills of a 256-id pool
    const ids = Array.from({ length: n }, randomId);
    for (const id of ids.slice(0, 1000)) expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(new Set(ids).size).toBe(n);
  });

  it("spreads its bits: every base64url character appears in the first position, none dominates", () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 64_000; i++) {
      const c = randomId()[0]!;
      counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    expect(counts.size).toBe(64);
    // 1,000 expected each; a fixed or reused pool would be far off.
    for (const v of counts.values()) {
      expect(v).toBeGreaterThan(800);
      expect(v).toBeLessThan(1200);
    }
  });
});
