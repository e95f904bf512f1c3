// The audit chain's pure parts (DESIGN §9): canonicalJson gives one stable
// text per value whatever the key order (so a re-computed hash matches), is
// valid JSON that parses back to the same value, and chainHash =
// sha256(prev || payload) changes whenever either input changes, so editing
// or reordering an event breaks the chain from that point on.

import fc from "fast-check";
import { createHash } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { canonicalJson, chainHash, payloadAt, payloadParts, payloadPartsAround } from "../../server/storage/audit.js";

/** The same value with every object's keys in another order (recursively). */
function reorder(v: unknown, seed: number): unknown {
  if (Array.isArray(v)) return v.map((x, i) => reorder(x, seed + i));
  if (v === null || typeof v !== "object") return v;
  const entries = Object.entries(v as Record<string, unknown>);
  // A deterministic shuffle driven by the seed.
  const shuffled = entries
    .map(([k, x], i) => ({ k, x, r: ((i + 1) * 2654435761 + seed * 40503) % 1000 }))
    .sort((a, b) => a.r - b.r);
  const out: Record<string, unknown> = {};
  for (const { k, x } of shuffled) Object.defineProperty(out, k, { value: reorder(x, seed + 1), enumerable: true, writable: true, configurable: true });
  return out;
}

const jsonArb = fc.jsonValue({ maxDepth: 4 });

describe("canonicalJson", () => {
  it("does not depend on key order", () => {
    fc.assert(
      fc.property(jsonArb, fc.integer({ min: 0, max: 1_000 }), (v, seed) => {
        expect(canonicalJson(reorder(v, seed))).toBe(canonicalJson(v));
      }),
      { numRuns: 500 },
    );
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: null } })).toBe(canonicalJson({ a: { c: null, d: [1, { y: 2, z: 1 }] }, b: 1 }));
  });

  it("is valid JSON for the same value, and a fixed point", () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        const text = canonicalJson(v);
        const back = JSON.parse(text) as unknown;
        expect(back).toEqual(JSON.parse(JSON.stringify(v)));
        expect(canonicalJson(back)).toBe(text);
      }),
      { numRuns: 500 },
    );
  });

  it("keeps array order (it is significant) and distinguishes different values", () => {
    expect(canonicalJson([1, 2])).not.toBe(canonicalJson([2, 1]));
    // Pairs that are equal up to key order, and pairs that are not.
    const pairArb = fc.oneof(
      fc.tuple(jsonArb, jsonArb),
      fc.tuple(jsonArb, fc.nat()).map(([a, seed]) => [a, reorder(a, seed)] as const),
    );
    let equalPairs = 0;
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const same = isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));
        if (same) equalPairs += 1;
        expect(canonicalJson(a) === canonicalJson(b)).toBe(same);
      }),
      { numRuns: 500 },
    );
    expect(equalPairs).toBeGreaterThan(100);
  });

  it("orders keys by code unit, not insertion or integer-key order", () => {
    expect(canonicalJson({ b: 1, "10": 2, a: 3, "": 4, "9": 5, B: 6 })).toBe(`{"":4,"10":2,"9":5,"B":6,"a":3,"b":1}`);
  });

  it("writes dates as ISO strings and drops undefined properties", () => {
    const t = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 6));
    expect(canonicalJson({ time: t, gone: undefined, kept: null })).toBe(`{"kept":null,"time":"2030-01-02T03:04:05.006Z"}`);
  });

  it("escapes keys and strings so a value cannot forge structure", () => {
    const sneaky = { 'a","b':"c", x: 'y"}' };
    const text = canonicalJson(sneaky);
    expect(JSON.parse(text)).toEqual(sneaky);
    expect(text).not.toBe(canonicalJson({ a: "", b: "c" }));
  });
});

describe("chainHash", () => {
  const hashArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a));

  it("is sha256(prev || payload), 32 bytes, deterministic", () => {
    fc.assert(
      fc.property(hashArb, fc.string(), (prev, payload) => {
        const h = chainHash(prev, payload);
        expect(h.length).toBe(32);
        expect(h.equals(chainHash(Buffer.from(prev), payload))).toBe(true);
        expect(h.equals(createHash("sha256").update(Buffer.concat([prev, Buffer.from(payload, "utf8")])).digest())).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("changes when the previous hash changes", () => {
    fc.assert(
      fc.property(hashArb, hashArb, fc.string(), (a, b, payload) => {
        fc.pre(!a.equals(b));
        expect(chainHash(a, payload).equals(chainHash(b, payload))).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("changes when the payload changes", () => {
    fc.assert(
      fc.property(hashArb, fc.string(), fc.string(), (prev, p, q) => {
        fc.pre(p !== q);
        expect(chainHash(prev, p).equals(chainHash(prev, q))).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("a chain breaks from an edited or reordered event onward", () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue({ maxDepth: 2 }), { minLength: 2, maxLength: 8 }), fc.nat(), (events, pick) => {
        const payloads = events.map((e, i) => canonicalJson({ seq: String(i + 1), data: e }));
        const chain = (ps: readonly string[]): Buffer[] => {
          let prev: Buffer = Buffer.alloc(32);
          return ps.map((p) => (prev = chainHash(prev, p)));
        };
        const original = chain(payloads);
        const i = pick % payloads.length;
        const edited = [...payloads];
        edited[i] = canonicalJson({ seq: String(i + 1), data: { edited: events[i] ?? null } });
        const after = chain(edited);
        for (let k = 0; k < payloads.length; k++) expect(after[k]!.equals(original[k]!)).toBe(k < i);
        // Swapping two events also changes the head.
        const swapped = [payloads[1]!, payloads[0]!, ...payloads.slice(2)];
        expect(chain(swapped).at(-1)!.equals(original.at(-1)!)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});

describe("payloadParts", () => {
  const text = fc.string({ unit: "grapheme", maxLength: 12 });
  /** Audit events whose data comes from `data`. */
  const eventWith = (data: fc.Arbitrary<Record<string, unknown>>) =>
    fc.record({
      kind: text,
      time: fc.date({ min: new Date(0), max: new Date(4_000_000_000_000), noInvalidDate: true }),
      appId: fc.option(text, { nil: null }),
      requestId: fc.option(text, { nil: null }),
      actor: text,
      data,
    });

  it("joined around any seq, the parts are exactly the canonical JSON of the event with that seq (what PostgreSQL joins in baton_append_audit)", () => {
    // Nested keys named like the top-level ones, "seq" included, must not confuse the split.
    const event = eventWith(fc.dictionary(fc.constantFrom("seq", "time", "actor", "data", "x", "é"), fc.jsonValue({ maxDepth: 2 })));
    fc.assert(
      fc.property(event, fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }), (e, seq) => {
        const whole = canonicalJson({ seq: seq.toString(), time: e.time.toISOString(), kind: e.kind, app_id: e.appId, request_id: e.requestId, actor: e.actor, data: e.data });
        expect(payloadAt(payloadParts(e), seq)).toBe(whole);
      }),
      { numRuns: 2000 },
    );
  });

  it("around a data member too (a revocation's cursor): the three parts joined around its value and the seq are exactly the canonical JSON", () => {
    // Keys before and after "cursor", none, or only one side; undefined members are left out.
    const event = eventWith(
      fc.dictionary(fc.constantFrom("agent_id", "audiences", "human", "id", "seq", "target", "a", "z", "é"), fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined })),
    );
    fc.assert(
      fc.property(event, fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }), fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }), (e, cursor, seq) => {
        const data = { ...e.data, cursor: cursor.toString() };
        const whole = canonicalJson({ seq: seq.toString(), time: e.time.toISOString(), kind: e.kind, app_id: e.appId, request_id: e.requestId, actor: e.actor, data });
        const p = payloadPartsAround({ ...e, data }, "cursor");
        expect(`${p.beforeValue}"${cursor}"${p.beforeSeq}"seq":"${seq}",${p.afterSeq}`).toBe(whole);
      }),
      { numRuns: 2000 },
    );
  });
});
