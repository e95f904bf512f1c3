// Property tests over random delegation trees, against a live broker:
//  - no token ever holds a scope or audience not covered by every ancestor,
//    never outlives an ancestor, never exceeds the app's depth limit, and a
//    request breaking one of these rules is refused with that rule's reason;
//  - revoking any node (token, agent or chain) invalidates exactly what
//    DESIGN §6 says and nothing outside it.
// Coverage is decided here by an independent reference matcher, not by the
// broker's code.

import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus, type DelegateResponse } from "../../server/gen/baton/v1/broker.js";
import { agentMd } from "../helpers/agent-key.js";
import { call, createApp, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

const MAX_DEPTH = 3;
const CEILING = ["read:*:*", "write:records:*"];
const AUDIENCES = ["aud-a", "aud-b", "aud-c"];
const SEGMENTS = [["read", "write", "*"], ["records", "data", "*"], ["P-1", "P-2", "*"]] as const;
const SCOPES = SEGMENTS[0].flatMap((a) => SEGMENTS[1].flatMap((r) => SEGMENTS[2].map((i) => `${a}:${r}:${i}`)));

/** DESIGN §3, written out independently: B covers A when each segment of B is `*` or equal. */
const refCovers = (granted: string, requested: string): boolean => {
  const g = granted.split(":");
  const r = requested.split(":");
  return g.every((seg, i) => seg === "*" || seg === r[i]);
};
const refCoveredBy = (held: readonly string[], s: string) => held.some((h) => refCovers(h, s));

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker();
  app = await createApp(b, { ceiling: CEILING, audiences: AUDIENCES, maxTtlSeconds: 900, maxDelegationDepth: MAX_DEPTH });
});
afterAll(async () => b?.stop());

interface Node {
  readonly token: string;
  readonly tokenId: string;
  readonly agentId: string;
  readonly parent: number | null;
  readonly scopes: string[];
  readonly audiences: string[];
  readonly expireMs: number;
  readonly depth: number;
}

const ancestorsOf = (nodes: Node[], i: number): Node[] => {
  const out: Node[] = [];
  for (let p = nodes[i]!.parent; p !== null; p = nodes[p]!.parent) out.push(nodes[p]!);
  return out;
};

const isIn = (nodes: Node[], i: number, root: number): boolean => {
  for (let n: number | null = i; n !== null; n = nodes[n]!.parent) if (n === root) return true;
  return false;
};

const subset = <T>(xs: readonly T[], min = 1) => fc.subarray([...xs], { minLength: min, maxLength: 3 });

const step = fc.record({
  parent: fc.nat(),
  scopes: subset(SCOPES),
  audiences: subset(AUDIENCES, 0),
  ttl: fc.constantFrom<number | null>(null, 30, 120, 5000),
  clamp: fc.boolean(),
});

const tree = fc.record({
  rootScopes: subset(SCOPES.filter((s) => refCoveredBy(CEILING, s))),
  rootAudiences: subset(AUDIENCES),
  rootTtl: fc.integer({ min: 60, max: 900 }),
  steps: fc.array(step, { minLength: 1, maxLength: 8 }),
  revokeAt: fc.nat(),
  revokeKind: fc.constantFrom("token", "agent", "chain"),
});

let run = 0;

type Tree = typeof tree extends fc.Arbitrary<infer T> ? T : never;

async function grow(t: Tree): Promise<Node[]> {
  run++;
  const root = await call(b.client.issue, b.client, {
    taskId: `prop-${run}`,
    orchestrationId: "",
    humanPrincipal: "user:prop",
    scopes: t.rootScopes,
    audiences: t.rootAudiences,
    ttl: { seconds: t.rootTtl, nanos: 0 },
    allowTtlClamp: false,
    agentPublicKeyJwk: "",
    approvalId: "",
  }, app.md);
  const nodeOf = (r: DelegateResponse, parent: number | null): Node => ({
    token: r.accessToken,
    tokenId: r.claims!.tokenId,
    agentId: r.claims!.agentId,
    parent,
    scopes: r.claims!.scopes,
    audiences: r.claims!.audiences,
    expireMs: r.claims!.expireTime!.getTime(),
    depth: r.claims!.depth,
  });
  const nodes: Node[] = [nodeOf(root, null)];

  for (const s of t.steps) {
    const pi = s.parent % nodes.length;
    const parent = nodes[pi]!;
    // Which rules does this request break, by the reference rules?
    const broken = new Set<string>();
    if (parent.depth + 1 > MAX_DEPTH) broken.add("DELEGATION_DEPTH_EXCEEDED");
    if (s.scopes.some((x) => !refCoveredBy(parent.scopes, x))) broken.add("SCOPE_NOT_COVERED");
    if (s.audiences.some((a) => !parent.audiences.includes(a))) broken.add("AUDIENCE_NOT_ALLOWED");
    const remaining = (parent.expireMs - Date.now()) / 1000;
    const ttlAmbiguous = s.ttl !== null && !s.clamp && Math.abs(s.ttl - remaining) < 3;
    if (s.ttl !== null && !s.clamp && s.ttl > remaining + 3) broken.add("TTL_EXCEEDS_MAXIMUM");

    const request = call(b.client.delegate, b.client, {
      scopes: s.scopes,
      audiences: s.audiences,
      ttl: s.ttl === null ? undefined : { seconds: s.ttl, nanos: 0 },
      allowTtlClamp: s.clamp,
      agentPublicKeyJwk: "",
      approvalId: "",
    }, agentMd(parent.token));

    if (broken.size > 0) {
      const e = await refusal(request);
      expect([...broken]).toContain(e.reason);
      continue;
    }
    let child: DelegateResponse;
    try {
      child = await request;
    } catch (err) {
      if (ttlAmbiguous) continue; // at the edge of the parent's remaining life either answer is right
      throw err;
    }
    const node = nodeOf(child, pi);
    nodes.push(node);
    expect(node.scopes.sort()).toEqual([...new Set(s.scopes)].sort());
    expect(node.audiences.sort()).toEqual((s.audiences.length > 0 ? [...new Set(s.audiences)] : parent.audiences).sort());
    expect(node.depth).toBe(parent.depth + 1);
  }
  return nodes;
}

describe("random delegation trees", () => {
  it("every token stays within every ancestor's scopes, audiences, lifetime and the depth limit", async () => {
    await fc.assert(
      fc.asyncProperty(tree, async (t) => {
        const nodes = await grow(t);
        for (let i = 0; i < nodes.length; i++) {
          const n = nodes[i]!;
          expect(n.depth).toBeLessThanOrEqual(MAX_DEPTH);
          for (const s of n.scopes) expect(refCoveredBy(CEILING, s)).toBe(true);
          for (const a of ancestorsOf(nodes, i)) {
            for (const s of n.scopes) expect(refCoveredBy(a.scopes, s), `${s} under ${a.scopes.join(" ")}`).toBe(true);
            for (const aud of n.audiences) expect(a.audiences).toContain(aud);
            expect(n.expireMs).toBeLessThanOrEqual(a.expireMs);
          }
          // What the broker says on Validate is what the token says.
          const v = await call(b.client.validate, b.client, { token: n.token, audience: n.audiences[0]!, requiredScopes: [] }, app.md);
          expect(v.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
          expect(v.claims!.lineage.map((e) => e.tokenId)).toEqual(ancestorsOf(nodes, i).reverse().map((a) => a.tokenId));
        }
      }),
      { numRuns: 40 },
    );
  });

  it("revoking any node invalidates exactly its subtree (or, for a chain, its whole tree)", async () => {
    await fc.assert(
      fc.asyncProperty(tree, async (t) => {
        const nodes = await grow(t);
        const bystanders = await grow({ ...t, steps: t.steps.slice(0, 2) });
        const at = t.revokeAt % nodes.length;
        const target = {
          token: { kind: RevocationTarget.REVOCATION_TARGET_TOKEN, id: nodes[at]!.tokenId },
          agent: { kind: RevocationTarget.REVOCATION_TARGET_AGENT, id: nodes[at]!.agentId },
          chain: { kind: RevocationTarget.REVOCATION_TARGET_CHAIN, id: nodes[at]!.tokenId },
        }[t.revokeKind as "token" | "agent" | "chain"];
        await call(b.client.revoke, b.client, { target: target.kind, id: target.id, appId: "", reason: "property" }, operatorMd());

        const dead = (i: number) => (t.revokeKind === "chain" ? true : isIn(nodes, i, at));
        for (let i = 0; i < nodes.length; i++) {
          const v = await call(b.client.validate, b.client, { token: nodes[i]!.token, audience: nodes[i]!.audiences[0]!, requiredScopes: [] }, app.md);
          expect(v.status, `node ${i} (revoked ${t.revokeKind} at ${at})`).toBe(dead(i) ? TokenStatus.TOKEN_STATUS_REVOKED : TokenStatus.TOKEN_STATUS_VALID);
        }
        for (const n of bystanders) {
          const v = await call(b.client.validate, b.client, { token: n.token, audience: n.audiences[0]!, requiredScopes: [] }, app.md);
          expect(v.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
        }
      }),
      { numRuns: 40 },
    );
  });
});
