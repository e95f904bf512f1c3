// RevocationSet (DESIGN §6): on a random delegation forest, revoking by each
// target kind reports exactly the expected tokens revoked, computed here from
// an explicit parent-pointer tree rather than from the lineage claims the
// set reads:
//   token  -> that token and everything delegated from it
//   agent  -> every token of that agent and everything delegated from them
//   chain  -> the whole tree from its root, root included
//   task   -> tokens of that (app, task) whose chain's root was issued at or
//             before the revocation (a task id reused later is not poisoned;
//             a child delegated later from a revoked root is still revoked)
//   app    -> the same cutoff, for every token of the app
// Tokens outside the target are never affected, several revocations act as
// their union, duplicates (same cursor) are held once, and pruning forgets an
// entry only once nothing it matches can still be accepted.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Revocation, RevocationSet, type RevocationTarget } from "../../server/domain/revocations.js";
import type { LineageEntry } from "../../server/domain/tokens.js";

// ---- The forest -----------------------------------------------------------

interface Node {
  readonly tokenId: string;
  readonly agentId: string;
  readonly appId: string;
  readonly taskId: string;
  readonly issuedAtMs: number;
  readonly expiresAtMs: number;
  readonly parent: number | null; // index into the forest
  readonly lineage: readonly LineageEntry[];
  readonly rootIssuedAtMs: number;
}

interface Step {
  readonly newRoot: boolean;
  readonly parentPick: number;
  readonly agent: number;
  readonly app: number;
  readonly task: number;
  readonly delayMs: number;
  readonly ttlMs: number;
}

const APPS = ["app_a", "app_b"];
const TASKS = ["task-1", "task-2"];
const AGENTS = ["spiffe://t/agent/0", "spiffe://t/agent/1", "spiffe://t/agent/2", "spiffe://t/agent/3", "spiffe://t/agent/4"];

const stepArb: fc.Arbitrary<Step> = fc.record({
  newRoot: fc.boolean(),
  parentPick: fc.nat(),
  agent: fc.nat({ max: AGENTS.length - 1 }),
  app: fc.nat({ max: APPS.length - 1 }),
  task: fc.nat({ max: TASKS.length - 1 }),
  delayMs: fc.integer({ min: 0, max: 400 }),
  ttlMs: fc.integer({ min: 1, max: 5_000 }),
});

/** Builds a forest the way the broker does: a child inherits app, task and root time, and never outlives its parent. */
function buildForest(steps: readonly Step[]): Node[] {
  const nodes: Node[] = [];
  steps.forEach((s, i) => {
    const tokenId = `tok-${i}`;
    const agentId = AGENTS[s.agent]!;
    if (nodes.length === 0 || s.newRoot) {
      const issuedAtMs = 1_000 + s.delayMs * (i + 1);
      nodes.push({
        tokenId,
        agentId,
        appId: APPS[s.app]!,
        taskId: TASKS[s.task]!,
        issuedAtMs,
        expiresAtMs: issuedAtMs + s.ttlMs,
        parent: null,
        lineage: [],
        rootIssuedAtMs: issuedAtMs,
      });
      return;
    }
    const parentIndex = s.parentPick % nodes.length;
    const p = nodes[parentIndex]!;
    const issuedAtMs = p.issuedAtMs + s.delayMs;
    nodes.push({
      tokenId,
      agentId,
      appId: p.appId,
      taskId: p.taskId,
      issuedAtMs,
      expiresAtMs: Math.min(p.expiresAtMs, issuedAtMs + s.ttlMs),
      parent: parentIndex,
      lineage: [...p.lineage, { tokenId: p.tokenId, agentId: p.agentId }],
      rootIssuedAtMs: p.rootIssuedAtMs,
    });
  });
  return nodes;
}

/** The node itself, then its parent, up to the root, by parent pointers. */
function ancestorsOrSelf(forest: readonly Node[], i: number): Node[] {
  const out: Node[] = [];
  for (let k: number | null = i; k !== null; k = forest[k]!.parent) out.push(forest[k]!);
  return out;
}
const rootOf = (forest: readonly Node[], i: number): Node => ancestorsOrSelf(forest, i).at(-1)!;

// ---- Expected semantics -------------------------------------------------------

interface Target {
  readonly target: RevocationTarget;
  readonly id: string;
  readonly appId: string;
  readonly revokedAtMs: number;
}

/** Which tokens the design says one revocation kills. */
function expectedKilled(forest: readonly Node[], t: Target): Set<string> {
  const killed = new Set<string>();
  forest.forEach((n, i) => {
    const up = ancestorsOrSelf(forest, i);
    const root = rootOf(forest, i);
    let hit = false;
    switch (t.target) {
      case "token":
        hit = up.some((a) => a.tokenId === t.id);
        break;
      case "agent":
        hit = up.some((a) => a.agentId === t.id);
        break;
      case "chain":
        hit = root.tokenId === t.id;
        break;
      case "task":
        hit = n.appId === t.appId && n.taskId === t.id && root.issuedAtMs <= t.revokedAtMs;
        break;
      case "app":
        hit = n.appId === t.appId && root.issuedAtMs <= t.revokedAtMs;
        break;
    }
    if (hit) killed.add(n.tokenId);
  });
  return killed;
}

const LEEWAY_MS = 30;

/** A revocation as the service would make it: it lives until the last token it matches can no longer be accepted. */
function revocationFor(forest: readonly Node[], t: Target, cursor: bigint): Revocation {
  const killed = expectedKilled(forest, t);
  const lastExpiry = Math.max(t.revokedAtMs, ...forest.filter((n) => killed.has(n.tokenId)).map((n) => n.expiresAtMs));
  return { ...t, expiresAtMs: lastExpiry + LEEWAY_MS, cursor };
}

const KINDS: readonly RevocationTarget[] = ["token", "agent", "task", "chain", "app"];

/** Turns a random pick into a revocation target aimed at (or around) a node of the forest. */
function targetFor(forest: readonly Node[], kind: RevocationTarget, pick: number, timeShiftMs: number): Target {
  const n = forest[pick % forest.length]!;
  const root = rootOf(forest, pick % forest.length);
  switch (kind) {
    case "token":
      return { target: kind, id: n.tokenId, appId: n.appId, revokedAtMs: n.issuedAtMs + timeShiftMs };
    case "agent":
      return { target: kind, id: n.agentId, appId: n.appId, revokedAtMs: n.issuedAtMs + timeShiftMs };
    case "chain":
      return { target: kind, id: root.tokenId, appId: n.appId, revokedAtMs: n.issuedAtMs + timeShiftMs };
    case "task":
    case "app":
      // Around the node's root time, so the cutoff falls on both sides of real roots (and on ties).
      return { target: kind, id: kind === "app" ? n.appId : n.taskId, appId: n.appId, revokedAtMs: root.issuedAtMs + timeShiftMs };
  }
}

const revokedNow = (set: RevocationSet, forest: readonly Node[]): Set<string> =>
  new Set(forest.filter((n) => set.isRevoked(n)).map((n) => n.tokenId));

const forestArb = fc.array(stepArb, { minLength: 1, maxLength: 25 }).map(buildForest);
const shiftArb = fc.oneof(fc.constant(0), fc.integer({ min: -500, max: 500 }));

// ---- Properties -------------------------------------------------------------

describe("RevocationSet: each target kind kills exactly what the design says", () => {
  for (const kind of KINDS) {
    it(`${kind}: exactly the expected tokens are revoked, nothing outside them`, () => {
      let partial = 0;
      fc.assert(
        fc.property(forestArb, fc.nat(), shiftArb, (forest, pick, shift) => {
          const t = targetFor(forest, kind, pick, shift);
          const set = new RevocationSet();
          set.add(revocationFor(forest, t, 1n));
          const expected = expectedKilled(forest, t);
          expect(revokedNow(set, forest)).toEqual(expected);
          if (expected.size > 0 && expected.size < forest.length) partial += 1;
        }),
        { numRuns: 500 },
      );
      // Most runs must separate revoked from untouched tokens, or the check says little.
      expect(partial).toBeGreaterThan(100);
    });
  }

  it("several revocations of mixed kinds revoke exactly the union of what each revokes", () => {
    const targetsArb = fc.array(fc.tuple(fc.constantFrom(...KINDS), fc.nat(), shiftArb), { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(forestArb, targetsArb, (forest, picks) => {
        const set = new RevocationSet();
        const expected = new Set<string>();
        picks.forEach(([kind, pick, shift], i) => {
          const t = targetFor(forest, kind, pick, shift);
          set.add(revocationFor(forest, t, BigInt(i + 1)));
          for (const id of expectedKilled(forest, t)) expected.add(id);
        });
        expect(revokedNow(set, forest)).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("an empty set revokes nothing", () => {
    fc.assert(
      fc.property(forestArb, (forest) => {
        expect(revokedNow(new RevocationSet(), forest).size).toBe(0);
      }),
    );
  });
});

describe("RevocationSet: examples of the cut-offs a user relies on", () => {
  const root = (tokenId: string, agentId: string, appId: string, taskId: string, issuedAtMs: number) => ({
    tokenId,
    agentId,
    appId,
    taskId,
    lineage: [] as LineageEntry[],
    rootIssuedAtMs: issuedAtMs,
  });
  const rev = (target: RevocationTarget, id: string, appId: string, revokedAtMs: number, cursor = 1n): Revocation => ({
    target,
    id,
    appId,
    revokedAtMs,
    expiresAtMs: revokedAtMs + 10_000,
    cursor,
  });

  it("task: a task id reused after the revocation is not poisoned; the same task id in another app is untouched", () => {
    const set = new RevocationSet();
    set.add(rev("task", "t1", "app_a", 5_000));
    expect(set.isRevoked(root("old", "ag1", "app_a", "t1", 4_999))).toBe(true);
    expect(set.isRevoked(root("tie", "ag2", "app_a", "t1", 5_000))).toBe(true);
    expect(set.isRevoked(root("reused", "ag3", "app_a", "t1", 5_001))).toBe(false);
    expect(set.isRevoked(root("other-app", "ag4", "app_b", "t1", 1_000))).toBe(false);
    expect(set.isRevoked(root("other-task", "ag5", "app_a", "t2", 1_000))).toBe(false);
  });

  it("task: a child delegated after the revocation from a revoked root is revoked too", () => {
    const set = new RevocationSet();
    set.add(rev("task", "t1", "app_a", 5_000));
    const child = { ...root("child", "ag2", "app_a", "t1", 6_000), lineage: [{ tokenId: "old", agentId: "ag1" }], rootIssuedAtMs: 4_000 };
    expect(set.isRevoked(child)).toBe(true);
  });

  it("app: only tokens rooted at or before the revocation; a second, later app revocation extends the cut-off", () => {
    const set = new RevocationSet();
    set.add(rev("app", "app_a", "app_a", 5_000, 1n));
    expect(set.isRevoked(root("before", "ag1", "app_a", "t1", 5_000))).toBe(true);
    expect(set.isRevoked(root("after", "ag2", "app_a", "t1", 7_000))).toBe(false);
    expect(set.isRevoked(root("other", "ag3", "app_b", "t1", 1_000))).toBe(false);
    set.add(rev("app", "app_a", "app_a", 8_000, 2n));
    expect(set.isRevoked(root("after", "ag2", "app_a", "t1", 7_000))).toBe(true);
  });

  it("chain: revoking by the root id kills the root and every descendant, not a sibling tree", () => {
    const set = new RevocationSet();
    set.add(rev("chain", "r1", "app_a", 5_000));
    const deep = { ...root("c2", "ag3", "app_a", "t1", 5_500), lineage: [{ tokenId: "r1", agentId: "ag1" }, { tokenId: "c1", agentId: "ag2" }], rootIssuedAtMs: 4_000 };
    const otherRoot = root("r2", "ag1", "app_a", "t1", 4_000);
    expect(set.isRevoked(root("r1", "ag1", "app_a", "t1", 4_000))).toBe(true);
    expect(set.isRevoked(deep)).toBe(true);
    expect(set.isRevoked(otherRoot)).toBe(false);
  });

  it("the same task or app revocation delivered twice (same cursor) is held once; a distinct one is held separately", () => {
    const set = new RevocationSet();
    set.add(rev("task", "t1", "app_a", 5_000, 7n));
    set.add(rev("task", "t1", "app_a", 5_000, 7n));
    set.add(rev("app", "app_a", "app_a", 5_000, 8n));
    set.add(rev("app", "app_a", "app_a", 5_000, 8n));
    expect(set.size).toBe(2);
    set.add(rev("task", "t1", "app_a", 6_000, 9n));
    expect(set.size).toBe(3);
  });
});

describe("RevocationSet: pruning", () => {
  it("never forgets a revocation while a token it matches can still be accepted, and forgets every entry past its expiry", () => {
    const targetsArb = fc.array(fc.tuple(fc.constantFrom(...KINDS), fc.nat(), shiftArb), { minLength: 1, maxLength: 6 });
    let pruned = 0;
    let keptAlive = 0;
    fc.assert(
      fc.property(forestArb, targetsArb, fc.integer({ min: 0, max: 20_000 }), (forest, picks, pruneAt) => {
        const set = new RevocationSet();
        const revocations = picks.map(([kind, pick, shift], i) => revocationFor(forest, targetFor(forest, kind, pick, shift), BigInt(i + 1)));
        for (const r of revocations) set.add(r);
        const before = revokedNow(set, forest);
        const sizeBefore = set.size;

        const removed = set.prune(pruneAt);

        expect(set.size).toBe(sizeBefore - removed);
        // A token a verifier could still accept at `pruneAt` (now < exp + leeway) stays revoked.
        const after = revokedNow(set, forest);
        for (const n of forest) {
          if (before.has(n.tokenId) && pruneAt < n.expiresAtMs + LEEWAY_MS) {
            keptAlive += 1;
            expect(after.has(n.tokenId), `${n.tokenId} forgotten while still alive`).toBe(true);
          }
        }
        // Nothing is ever un-revoked beyond what was revoked, and pruning never adds.
        for (const id of after) expect(before.has(id)).toBe(true);
        // Entries whose every revocation expired before `pruneAt` are gone; the rest stay.
        const fresh = new RevocationSet();
        for (const r of revocations) if (r.expiresAtMs >= pruneAt) fresh.add(r);
        expect(set.size).toBe(fresh.size);
        expect(after).toEqual(revokedNow(fresh, forest));
        if (removed > 0) pruned += 1;
      }),
      { numRuns: 500 },
    );
    expect(pruned).toBeGreaterThan(50);
    expect(keptAlive).toBeGreaterThan(50);
  });

  it("keeps the latest expiry when the same token, agent or chain is revoked twice", () => {
    for (const target of ["token", "agent", "chain"] as const) {
      const set = new RevocationSet();
      set.add({ target, id: "x", appId: "app_a", revokedAtMs: 0, expiresAtMs: 9_000, cursor: 1n });
      set.add({ target, id: "x", appId: "app_a", revokedAtMs: 0, expiresAtMs: 3_000, cursor: 2n });
      expect(set.size).toBe(1);
      expect(set.prune(5_000)).toBe(0);
      const token = { tokenId: "x", agentId: "x", appId: "app_a", taskId: "t", lineage: [], rootIssuedAtMs: 0 };
      expect(set.isRevoked(token)).toBe(true);
      expect(set.prune(9_001)).toBe(1);
      expect(set.isRevoked(token)).toBe(false);
      expect(set.size).toBe(0);
    }
  });

  it("an entry expiring exactly at the prune instant is kept (forgotten only strictly after)", () => {
    const set = new RevocationSet();
    set.add({ target: "task", id: "t1", appId: "app_a", revokedAtMs: 0, expiresAtMs: 5_000, cursor: 1n });
    expect(set.prune(5_000)).toBe(0);
    expect(set.size).toBe(1);
    expect(set.prune(5_001)).toBe(1);
    expect(set.size).toBe(0);
  });
});
