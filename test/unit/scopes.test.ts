// Scope coverage (DESIGN §3), the security core: nothing is ever granted
// outside a ceiling. These properties check `covers`, `coveredBy` and
// `uncoveredScopes` against an independent reference written from the design
// text alone: a scope denotes the set of concrete `action:resource:identifier`
// triples it matches (`*` as a whole segment = any value), and B covers A
// exactly when A's set is a subset of B's. Evaluated over a finite universe
// that always contains a value no scope names, this makes "a requested `*`
// is covered only by `*`" a consequence rather than a copied rule. Also:
// parser robustness (random text either parses or throws InvalidScopeError),
// the length bound, and format/parse round-trips.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidScopeError } from "../../server/domain/errors.js";
import {
  covers,
  coveredBy,
  formatScope,
  MAX_SCOPE_LENGTH,
  normalizeScopes,
  parseScope,
  parseScopes,
  uncoveredScopes,
  WILDCARD,
} from "../../server/domain/scopes.js";

// ---- Independent reference ------------------------------------------------

type Triple = readonly [string, string, string];

/** Splits on the first two colons (the identifier may contain colons). */
function segments(scope: string): Triple {
  const m = /^([^:]*):([^:]*):(.*)$/s.exec(scope);
  if (!m) throw new Error(`reference: not a scope: ${scope}`);
  return [m[1]!, m[2]!, m[3]!];
}

/** Does the scope match one concrete triple? `*` as a whole segment matches any value. */
function matchesConcrete(scope: Triple, concrete: Triple): boolean {
  return scope.every((seg, i) => seg === "*" || seg === concrete[i]);
}

const FRESH = "zz-fresh-value"; // a value no generated scope ever names

/** The concrete values worth enumerating for each segment position. */
function universe(scopes: readonly Triple[]): Triple[] {
  const values = [0, 1, 2].map((i) => [...new Set([FRESH, ...scopes.map((s) => s[i]!).filter((v) => v !== "*")])]);
  const out: Triple[] = [];
  for (const a of values[0]!) for (const r of values[1]!) for (const id of values[2]!) out.push([a, r, id]);
  return out;
}

/** Reference: `granted` covers `requested` iff every concrete triple `requested` matches, `granted` matches too. */
function refCovers(granted: string, requested: string): boolean {
  const g = segments(granted);
  const r = segments(requested);
  return universe([g, r]).every((t) => !matchesConcrete(r, t) || matchesConcrete(g, t));
}

function refCoveredByCeiling(ceiling: readonly string[], requested: string): boolean {
  // Set semantics for a ceiling: the union of its scopes' sets. A request is
  // covered when one ceiling scope covers it (the design grants per scope).
  return ceiling.some((c) => refCovers(c, requested));
}

// ---- Generators -------------------------------------------------------------

// A small alphabet so that coverage actually happens often; identifiers with
// colons exercise the "split on the first two colons" rule.
const ACTIONS = ["read", "write", "*", "admin.x"];
const RESOURCES = ["data", "db", "*", "db-2"];
const IDENTIFIERS = ["x", "y", "*", "x:y", "x:*", "a/b@c"];

// `x:*` is not a wildcard identifier (only a whole `*` segment is), and `*`
// is outside the identifier character set, so it is never a valid scope.
const VALID_IDENTIFIERS = IDENTIFIERS.filter((i) => i !== "x:*");

const scopeArb = fc
  .tuple(fc.constantFrom(...ACTIONS), fc.constantFrom(...RESOURCES), fc.constantFrom(...VALID_IDENTIFIERS))
  .map(([a, r, i]) => `${a}:${r}:${i}`);
const scopeListArb = fc.array(scopeArb, { minLength: 0, maxLength: 6 });

const RUNS = { numRuns: 1000 };

// ---- Coverage properties ------------------------------------------------------

describe("scope coverage agrees with the design's set semantics", () => {
  it("covers(B, A) is exactly the reference (sound and complete), and coverage is common in the sample", () => {
    let covered = 0;
    let total = 0;
    fc.assert(
      fc.property(scopeArb, scopeArb, (b, a) => {
        const actual = covers(parseScope(b), parseScope(a));
        total += 1;
        if (actual) covered += 1;
        expect(actual).toBe(refCovers(b, a));
      }),
      RUNS,
    );
    // The check is only meaningful if both outcomes happen a fair amount.
    expect(covered / total).toBeGreaterThan(0.05);
    expect(covered / total).toBeLessThan(0.95);
  });

  it("uncoveredScopes returns exactly the requested scopes (as given, in order) no ceiling scope covers", () => {
    let grantedSome = 0;
    let refusedSome = 0;
    fc.assert(
      fc.property(scopeListArb, scopeListArb, (ceiling, requested) => {
        const expected = requested.filter((r) => !refCoveredByCeiling(ceiling, r));
        const actual = uncoveredScopes(ceiling, requested);
        expect(actual).toEqual(expected);
        if (actual.length < requested.length) grantedSome += 1;
        if (actual.length > 0) refusedSome += 1;
      }),
      RUNS,
    );
    expect(grantedSome).toBeGreaterThan(RUNS.numRuns / 10);
    expect(refusedSome).toBeGreaterThan(RUNS.numRuns / 10);
  });

  it("soundness: every scope granted within a ceiling matches only concrete scopes the ceiling matches", () => {
    fc.assert(
      fc.property(scopeListArb, scopeListArb, (ceiling, requested) => {
        const uncovered = new Set(uncoveredScopes(ceiling, requested));
        const granted = requested.filter((r) => !uncovered.has(r));
        const all = [...ceiling, ...requested].map(segments);
        for (const g of granted) {
          const gs = segments(g);
          for (const t of universe(all)) {
            if (matchesConcrete(gs, t)) {
              expect(ceiling.some((c) => matchesConcrete(segments(c), t)), `${g} grants ${t.join(":")} outside ${ceiling.join(" ")}`).toBe(true);
            }
          }
        }
      }),
      RUNS,
    );
  });

  it("an empty ceiling covers nothing", () => {
    fc.assert(
      fc.property(scopeListArb, (requested) => {
        expect(uncoveredScopes([], requested)).toEqual(requested);
      }),
    );
  });

  it("coveredBy(ceiling, s) is true iff some ceiling scope covers s", () => {
    fc.assert(
      fc.property(scopeListArb, scopeArb, (ceiling, s) => {
        expect(coveredBy(parseScopes(ceiling), parseScope(s))).toBe(refCoveredByCeiling(ceiling, s));
      }),
      RUNS,
    );
  });

  it("is reflexive", () => {
    fc.assert(
      fc.property(scopeArb, (s) => {
        expect(covers(parseScope(s), parseScope(s))).toBe(true);
        expect(uncoveredScopes([s], [s])).toEqual([]);
      }),
      RUNS,
    );
  });

  it("is transitive: a covers b and b covers c imply a covers c", () => {
    // Independent random triples rarely chain, so also draw c, then b by
    // widening some of c's segments to `*`, then a by widening b's.
    const widen = (s: string, mask: readonly boolean[]): string =>
      segments(s)
        .map((seg, i) => (mask[i] ? WILDCARD : seg))
        .join(":");
    const mask = fc.array(fc.boolean(), { minLength: 3, maxLength: 3 });
    const chained = fc.tuple(scopeArb, mask, mask).map(([c, m1, m2]) => {
      const b = widen(c, m1);
      return [widen(b, m2), b, c] as const;
    });
    let chains = 0;
    fc.assert(
      fc.property(fc.oneof(fc.tuple(scopeArb, scopeArb, scopeArb), chained), ([a, b, c]) => {
        const [pa, pb, pc] = [parseScope(a), parseScope(b), parseScope(c)];
        if (covers(pa, pb) && covers(pb, pc)) {
          chains += 1;
          expect(covers(pa, pc)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
    expect(chains).toBeGreaterThan(500);
  });

  it("a requested `*` at a position is covered only by `*` at that position (read:*:x is not covered by read:data:x)", () => {
    fc.assert(
      fc.property(scopeArb, scopeArb, fc.integer({ min: 0, max: 2 }), (g, r, pos) => {
        const gs = [...segments(g)];
        const rs = [...segments(r)];
        rs[pos] = WILDCARD;
        if (gs[pos] === WILDCARD) gs[pos] = pos === 2 ? "x" : "read";
        const granted = gs.join(":");
        const requested = rs.join(":");
        expect(covers(parseScope(granted), parseScope(requested))).toBe(false);
        expect(uncoveredScopes([granted], [requested])).toEqual([requested]);
      }),
      RUNS,
    );
    // The named examples, spelled out.
    expect(uncoveredScopes(["read:data:x"], ["read:*:x"])).toEqual(["read:*:x"]);
    expect(uncoveredScopes(["read:data:x"], ["*:data:x"])).toEqual(["*:data:x"]);
    expect(uncoveredScopes(["read:data:x"], ["read:data:*"])).toEqual(["read:data:*"]);
    expect(uncoveredScopes(["read:*:x"], ["read:*:x", "read:data:x"])).toEqual([]);
    expect(uncoveredScopes(["*:*:*"], ["read:*:x", "*:*:*"])).toEqual([]);
  });

  it("the identifier is everything after the second colon: `read:data:*` covers `read:data:x:y`, `read:data:x` does not", () => {
    expect(uncoveredScopes(["read:data:*"], ["read:data:x:y"])).toEqual([]);
    expect(uncoveredScopes(["read:data:x"], ["read:data:x:y"])).toEqual(["read:data:x:y"]);
    expect(uncoveredScopes(["read:data:x:y"], ["read:data:x"])).toEqual(["read:data:x"]);
  });

  it("is monotone: adding scopes to the ceiling never uncovers a request", () => {
    fc.assert(
      fc.property(scopeListArb, scopeListArb, scopeListArb, (ceiling, extra, requested) => {
        const before = uncoveredScopes(ceiling, requested);
        const after = uncoveredScopes([...ceiling, ...extra], requested);
        for (const s of after) expect(before).toContain(s);
        expect(after.length).toBeLessThanOrEqual(before.length);
      }),
      RUNS,
    );
  });

  it("narrowing a request never uncovers it: a subset of a granted request is granted", () => {
    fc.assert(
      fc.property(scopeListArb, scopeListArb, fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }), (ceiling, requested, keep) => {
        fc.pre(uncoveredScopes(ceiling, requested).length === 0);
        const subset = requested.filter((_, i) => keep[i]);
        expect(uncoveredScopes(ceiling, subset)).toEqual([]);
      }),
      { numRuns: 500 },
    );
  });

  it("does not depend on the order or duplication of the ceiling", () => {
    fc.assert(
      fc.property(scopeListArb, scopeListArb, (ceiling, requested) => {
        const shuffled = [...ceiling].reverse().concat(ceiling);
        expect(uncoveredScopes(shuffled, requested)).toEqual(uncoveredScopes(ceiling, requested));
        expect(uncoveredScopes(normalizeScopes(ceiling), requested)).toEqual(uncoveredScopes(ceiling, requested));
      }),
      RUNS,
    );
  });

  it("refuses malformed scopes in either list with InvalidScopeError rather than treating them as covered", () => {
    expect(() => uncoveredScopes(["*:*:*"], ["read:data"])).toThrow(InvalidScopeError);
    expect(() => uncoveredScopes(["*:*"], ["read:data:x"])).toThrow(InvalidScopeError);
  });
});

// ---- Parsing ------------------------------------------------------------------

/** Text that looks enough like a scope to reach every branch of the parser. */
const SCOPEISH_CHARS = ["r", "e", "A", "9", "_", ".", "-", ":", "*", "@", "/", "+", "=", " ", "\n", "é", "\u0000", "a"];
const scopeishSegment = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom("read", "data", "x", "*", "a.b-c", "9x", "x:y", "*x", "da*", "**", "x y") },
  { weight: 2, arbitrary: fc.string({ unit: fc.constantFrom(...SCOPEISH_CHARS), maxLength: 5 }) },
);
const scopeishArb = fc.oneof(
  fc.string({ unit: fc.constantFrom(...SCOPEISH_CHARS), maxLength: 24 }),
  fc.array(scopeishSegment, { minLength: 1, maxLength: 4 }).map((segs) => segs.join(":")),
);

function parseOutcome(text: string): { ok: true; value: ReturnType<typeof parseScope> } | { ok: false; err: unknown } {
  try {
    return { ok: true, value: parseScope(text) };
  } catch (err) {
    return { ok: false, err };
  }
}

describe("parseScope", () => {
  it("on any text either returns a scope or throws InvalidScopeError naming it; never anything else", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 40 }), scopeishArb), (text) => {
        const o = parseOutcome(text);
        if (!o.ok) {
          expect(o.err).toBeInstanceOf(InvalidScopeError);
          expect((o.err as InvalidScopeError).reason).toBe("INVALID_SCOPE");
          expect((o.err as InvalidScopeError).details.scope).toBe(text.length > 128 ? `${text.slice(0, 128)}…` : text);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("accepts only well-formed scopes: three non-empty segments, `*` only as a whole segment, no whitespace, bounded length", () => {
    let accepted = 0;
    fc.assert(
      fc.property(scopeishArb, (text) => {
        const o = parseOutcome(text);
        if (!o.ok) return;
        accepted += 1;
        const [a, r, i] = segments(text);
        for (const seg of [a, r, i]) {
          expect(seg.length).toBeGreaterThan(0);
          if (seg.includes("*")) expect(seg).toBe("*");
        }
        expect(text).not.toMatch(/\s|\p{Cc}/u);
        expect(text.length).toBeLessThanOrEqual(MAX_SCOPE_LENGTH);
        expect(o.value).toEqual({ action: a, resource: r, identifier: i });
      }),
      { numRuns: 3000 },
    );
    expect(accepted).toBeGreaterThan(10);
  });

  it("round-trips: formatScope(parseScope(s)) === s for valid s", () => {
    const name = fc.oneof(
      fc.constant("*"),
      fc
        .tuple(fc.constantFrom(..."abcXYZ"), fc.string({ unit: fc.constantFrom(..."abZ09_.-"), maxLength: 63 }))
        .map(([h, t]) => h + t),
    );
    const identifier = fc.oneof(fc.constant("*"), fc.string({ unit: fc.constantFrom(..."aZ09_.:@/+=-"), minLength: 1, maxLength: 120 }));
    fc.assert(
      fc.property(name, name, identifier, (a, r, i) => {
        const s = `${a}:${r}:${i}`;
        fc.pre(s.length <= MAX_SCOPE_LENGTH);
        const parsed = parseScope(s);
        expect(parsed).toEqual({ action: a, resource: r, identifier: i });
        expect(formatScope(parsed)).toBe(s);
      }),
      RUNS,
    );
  });

  it("rejects anything longer than MAX_SCOPE_LENGTH even when every segment is otherwise valid", () => {
    fc.assert(
      fc.property(fc.integer({ min: MAX_SCOPE_LENGTH + 1, max: MAX_SCOPE_LENGTH + 200 }), (len) => {
        const s = `read:data:${"x".repeat(len - "read:data:".length)}`;
        expect(s.length).toBe(len);
        expect(() => parseScope(s)).toThrow(InvalidScopeError);
        expect(() => parseScope(s)).toThrow(/longer than/);
      }),
      { numRuns: 200 },
    );
    const atLimit = `read:data:${"x".repeat(MAX_SCOPE_LENGTH - "read:data:".length)}`;
    // The identifier's own bound (200) is what refuses this one, so use a longer action instead.
    const longAction = `${"a".repeat(64)}:${"b".repeat(64)}:${"c".repeat(MAX_SCOPE_LENGTH - 130)}`;
    expect(longAction.length).toBe(MAX_SCOPE_LENGTH);
    expect(formatScope(parseScope(longAction))).toBe(longAction);
    expect(() => parseScope(`${longAction}c`)).toThrow(InvalidScopeError);
    expect(atLimit.length).toBe(MAX_SCOPE_LENGTH);
  });

  it.each([
    ["", "empty"],
    ["read", "one segment"],
    ["read:data", "two segments"],
    ["read::x", "empty resource"],
    [":data:x", "empty action"],
    ["read:data:", "empty identifier"],
    ["read:da*:x", "partial wildcard in resource"],
    ["re*d:data:x", "partial wildcard in action"],
    ["*read:data:x", "wildcard prefix in action"],
    ["read:data*:x", "wildcard suffix in resource"],
    ["read:data:**", "double wildcard identifier"],
    ["read:data:x*", "partial wildcard in identifier"],
    ["read:data:x y", "space (scopes are space-separated in the token)"],
    ["read:data:x\n", "trailing newline"],
    ["read:data:x\u0000", "NUL"],
    ["1read:data:x", "action starting with a digit"],
    ["read:dätä:x", "non-ASCII"],
  ])("rejects %j (%s)", (text) => {
    expect(() => parseScope(text)).toThrow(InvalidScopeError);
  });

  it("parseScopes throws on the first malformed scope and names it", () => {
    try {
      parseScopes(["read:data:x", "bad scope", "also bad"]);
      expect.unreachable("parseScopes accepted a malformed scope");
    } catch (err) {
      expect(err).toBeInstanceOf(InvalidScopeError);
      expect((err as InvalidScopeError).details.scope).toBe("bad scope");
      expect((err as InvalidScopeError).message).toContain("bad scope");
    }
  });
});

describe("normalizeScopes", () => {
  it("is the sorted set of its input, and idempotent", () => {
    fc.assert(
      fc.property(scopeListArb, (scopes) => {
        const n = normalizeScopes(scopes);
        expect(new Set(n)).toEqual(new Set(scopes));
        expect(n.length).toBe(new Set(scopes).size);
        for (let i = 1; i < n.length; i++) expect(n[i - 1]! < n[i]!).toBe(true);
        expect(normalizeScopes(n)).toEqual(n);
      }),
      RUNS,
    );
  });
});
