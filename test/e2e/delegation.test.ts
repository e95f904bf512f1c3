// Delegation end to end: narrowing only, lineage in the token and in
// Validate, cascading revocation, key-bound tokens with proofs of possession,
// and the refusals that name the rule that refused.

import { status } from "@grpc/grpc-js";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { countGrants } from "../../server/storage/grants.js";
import { agentMd, REVOKE, TestAgentKey } from "../helpers/agent-key.js";
import { call, clinicalIssuer, createApp, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker();
  app = await createApp(b, {
    ceiling: ["read:records:*", "write:prescriptions:*", "read:data:*"],
    audiences: ["ehr-api", "pharmacy-api"],
    maxTtlSeconds: 900,
  });
});
afterAll(async () => b?.stop());

const issue = clinicalIssuer(() => b, () => app, { taskId: "task-deleg", orchestrationId: "orch-1" });

interface DelegateOptions {
  scopes: string[];
  audiences?: string[];
  ttlSeconds?: number;
  clamp?: boolean;
  key?: TestAgentKey;
}

/** Delegates from `token`; signs a proof with `holder` when given. */
async function delegate(token: string, o: DelegateOptions, holder?: TestAgentKey) {
  const proof = holder ? await holder.proof(token) : undefined;
  return call(b.client.delegate, b.client, {
    scopes: o.scopes,
    audiences: o.audiences ?? [],
    ttl: o.ttlSeconds ? { seconds: o.ttlSeconds, nanos: 0 } : undefined,
    allowTtlClamp: o.clamp ?? false,
    agentPublicKeyJwk: o.key?.jwkJson ?? "",
    approvalId: "",
  }, agentMd(token, proof));
}

const validate = (token: string, audience = "ehr-api", requiredScopes: string[] = []) =>
  call(b.client.validate, b.client, { token, audience, requiredScopes }, app.md);

const statusOf = async (token: string, audience = "ehr-api") => (await validate(token, audience)).status;

const revoke = (target: RevocationTarget, id: string) =>
  call(b.client.revoke, b.client, { target, id, appId: "", reason: "test" }, operatorMd());

describe("the clinical scenario", () => {
  it("a prescription agent gets exactly one scope, names its parent, and dies with it", async () => {
    const clinicalKey = await TestAgentKey.generate();
    const clinical = await issue({ key: clinicalKey });
    const child = await delegate(clinical.accessToken, { scopes: ["write:prescriptions:P-1042"], audiences: ["pharmacy-api"] }, clinicalKey);

    const v = await validate(child.accessToken, "pharmacy-api", ["write:prescriptions:P-1042"]);
    expect(v.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(v.claims!.scopes).toEqual(["write:prescriptions:P-1042"]);
    expect(v.claims!.lineage).toEqual([{ tokenId: clinical.claims!.tokenId, agentId: clinical.claims!.agentId }]);
    expect(v.claims!.depth).toBe(1);
    expect(v.claims!.humanPrincipal).toBe("user:dr-grey");
    expect(v.claims!.taskId).toBe("task-deleg");
    expect(v.claims!.agentId).not.toBe(clinical.claims!.agentId);
    // A scope the child was not given is not granted by Validate.
    expect((await validate(child.accessToken, "pharmacy-api", ["read:records:P-1042"])).status).toBe(TokenStatus.TOKEN_STATUS_INSUFFICIENT_SCOPE);

    const other = await refusal(delegate(clinical.accessToken, { scopes: ["read:records:P-2187"] }, clinicalKey));
    expect(other.code).toBe(status.PERMISSION_DENIED);
    expect(other.reason).toBe("SCOPE_NOT_COVERED");
    expect(other.message).toContain("read:records:P-2187");
    const wider = await refusal(delegate(clinical.accessToken, { scopes: ["write:prescriptions:*"] }, clinicalKey));
    expect(wider.reason).toBe("SCOPE_NOT_COVERED");
    expect(wider.message).toContain("write:prescriptions:*");

    // The clinical agent releases its token (with a proof for Revoke).
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: "", appId: "", reason: "done" },
      agentMd(clinical.accessToken, await clinicalKey.proof(clinical.accessToken, { method: REVOKE })));
    expect(await statusOf(clinical.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(child.accessToken, "pharmacy-api")).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });
});

describe("a chain A → B → C", () => {
  async function chain() {
    const a = await issue({ scopes: ["read:records:*"] });
    const bb = await delegate(a.accessToken, { scopes: ["read:records:P-1"] });
    const c = await delegate(bb.accessToken, { scopes: ["read:records:P-1"] });
    return { a, b: bb, c };
  }

  it("C's token and Validate name A then B, root first; the JWT carries the same lineage", async () => {
    const { a, b: bb, c } = await chain();
    const v = await validate(c.accessToken);
    expect(v.claims!.lineage).toEqual([
      { tokenId: a.claims!.tokenId, agentId: a.claims!.agentId },
      { tokenId: bb.claims!.tokenId, agentId: bb.claims!.agentId },
    ]);
    expect(v.claims!.depth).toBe(2);
    const jwt = decodeJwt(c.accessToken) as { lineage: { jti: string; sub: string }[] };
    expect(jwt.lineage.map((e) => e.jti)).toEqual([a.claims!.tokenId, bb.claims!.tokenId]);
  });

  it("revoking B kills B and C, not A", async () => {
    const { a, b: bb, c } = await chain();
    await revoke(RevocationTarget.REVOCATION_TARGET_TOKEN, bb.claims!.tokenId);
    expect(await statusOf(a.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(bb.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(c.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("revoking B's agent kills B and C, not A", async () => {
    const { a, b: bb, c } = await chain();
    await revoke(RevocationTarget.REVOCATION_TARGET_AGENT, bb.claims!.agentId);
    expect(await statusOf(a.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(bb.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(c.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("revoking the chain, named by any member, kills all three and nothing else", async () => {
    const { a, b: bb, c } = await chain();
    const bystander = await chain();
    const r = await revoke(RevocationTarget.REVOCATION_TARGET_CHAIN, c.claims!.tokenId);
    expect(r.revocation!.id).toBe(a.claims!.tokenId);
    for (const t of [a, bb, c]) expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    for (const t of [bystander.a, bystander.b, bystander.c]) expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("an app revokes its own delegated tokens but cannot touch another app's", async () => {
    const { a, b: bb } = await chain();
    const stranger = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const e = await refusal(call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: bb.claims!.tokenId, appId: "", reason: "" }, stranger.md));
    expect(e.reason).toBe("NOT_FOUND");
    expect(await statusOf(bb.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: bb.claims!.tokenId, appId: "", reason: "" }, app.md);
    expect(await statusOf(bb.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(a.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });
});

describe("key-bound tokens", () => {
  it("the token carries cnf.jkt; the holder delegates; a thief without the key cannot delegate or release", async () => {
    const key = await TestAgentKey.generate();
    const t = await issue({ key });
    expect((decodeJwt(t.accessToken) as { cnf?: { jkt: string } }).cnf?.jkt).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const noProof = await refusal(delegate(t.accessToken, { scopes: ["read:records:P-1042"] }));
    expect(noProof.code).toBe(status.UNAUTHENTICATED);
    expect(noProof.reason).toBe("PROOF_REQUIRED");

    const thief = await TestAgentKey.generate();
    const wrongKey = await refusal(delegate(t.accessToken, { scopes: ["read:records:P-1042"] }, thief));
    expect(wrongKey.reason).toBe("PROOF_INVALID");

    const release = (proof?: string) =>
      call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: "", appId: "", reason: "" }, agentMd(t.accessToken, proof));
    expect((await refusal(release())).reason).toBe("PROOF_REQUIRED");
    expect((await refusal(release(await thief.proof(t.accessToken, { method: REVOKE })))).reason).toBe("PROOF_INVALID");
    expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);

    const child = await delegate(t.accessToken, { scopes: ["read:records:P-1042"] }, key);
    expect(child.claims!.lineage[0]!.tokenId).toBe(t.claims!.tokenId);
    await release(await key.proof(t.accessToken, { method: REVOKE }));
    expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(child.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("a proof is accepted once, for one method, one token and one moment", async () => {
    const key = await TestAgentKey.generate();
    const t = await issue({ key });
    const other = await issue({ key });
    const req = { scopes: ["read:records:P-1042"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" };
    const withProof = (proof: string) => call(b.client.delegate, b.client, req, agentMd(t.accessToken, proof));

    const proof = await key.proof(t.accessToken);
    await withProof(proof);
    const replay = await refusal(withProof(proof));
    expect(replay.code).toBe(status.UNAUTHENTICATED);
    expect(replay.reason).toBe("PROOF_REPLAYED");

    const bad: [string, Parameters<TestAgentKey["proof"]>[1]][] = [
      ["another method", { method: REVOKE }],
      ["another token", { forToken: other.accessToken }],
      ["stale", { iatSeconds: Math.floor(Date.now() / 1000) - 600 }],
      ["from the future", { iatSeconds: Math.floor(Date.now() / 1000) + 600 }],
      ["wrong typ", { typ: "dpop+jwt" }],
      ["short jti", { jti: "abc" }],
    ];
    for (const [what, o] of bad) {
      const e = await refusal(withProof(await key.proof(t.accessToken, o)));
      expect(e.reason, what).toBe("PROOF_INVALID");
      expect(e.code, what).toBe(status.UNAUTHENTICATED);
    }
    const garbage = await refusal(withProof("not.a.proof"));
    expect(garbage.reason).toBe("PROOF_INVALID");
    // The holder, with a fresh proof, still succeeds.
    await withProof(await key.proof(t.accessToken));
  });

  it("a delegated token can be bound to the delegatee's key, which alone can use it", async () => {
    const parentKey = await TestAgentKey.generate();
    const childKey = await TestAgentKey.generate();
    const parent = await issue({ key: parentKey });
    const child = await delegate(parent.accessToken, { scopes: ["read:records:P-1042"], key: childKey }, parentKey);
    expect((await refusal(delegate(child.accessToken, { scopes: ["read:records:P-1042"] }, parentKey))).reason).toBe("PROOF_INVALID");
    const grandchild = await delegate(child.accessToken, { scopes: ["read:records:P-1042"] }, childKey);
    expect(grandchild.claims!.depth).toBe(2);
  });
});

describe("refusals name the rule", () => {
  it("audience outside the parent's", async () => {
    const t = await issue({ audiences: ["ehr-api"] });
    const e = await refusal(delegate(t.accessToken, { scopes: ["read:records:P-1042"], audiences: ["pharmacy-api"] }));
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.reason).toBe("AUDIENCE_NOT_ALLOWED");
    expect(e.message).toContain("pharmacy-api");
  });

  it("TTL beyond the parent's remaining life: refused, or clamped to it when asked", async () => {
    const t = await issue({ ttlSeconds: 60 });
    const e = await refusal(delegate(t.accessToken, { scopes: ["read:records:P-1042"], ttlSeconds: 600 }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.reason).toBe("TTL_EXCEEDS_MAXIMUM");
    const clamped = await delegate(t.accessToken, { scopes: ["read:records:P-1042"], ttlSeconds: 600, clamp: true });
    expect(clamped.ttlClamped).toBe(true);
    expect(clamped.claims!.expireTime!.getTime()).toBeLessThanOrEqual(t.claims!.expireTime!.getTime());
    // With no TTL asked, the default is cut to the parent's remaining life.
    const byDefault = await delegate(t.accessToken, { scopes: ["read:records:P-1042"], clamp: true });
    expect(byDefault.claims!.expireTime!.getTime()).toBeLessThanOrEqual(t.claims!.expireTime!.getTime());
  });

  it("widening hidden in wildcards", async () => {
    const t = await issue({ scopes: ["read:data:x"] });
    for (const wide of ["read:*:x", "read:data:*", "*:data:x", "*:*:*"]) {
      const e = await refusal(delegate(t.accessToken, { scopes: [wide] }));
      expect(e.reason, wide).toBe("SCOPE_NOT_COVERED");
      expect(e.message, wide).toContain(wide);
    }
  });

  it("depth overflow: the app's limit holds however the chain is built, and loops cannot happen", async () => {
    const shallow = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxDelegationDepth: 2 });
    let t = await issue({ scopes: ["read:records:*"], into: shallow });
    const seen = new Set([t.claims!.agentId]);
    for (let depth = 1; depth <= 2; depth++) {
      t = await delegate(t.accessToken, { scopes: ["read:records:*"] });
      expect(t.claims!.depth).toBe(depth);
      // Every delegatee is a new agent: a token can never come back to an ancestor.
      expect(seen.has(t.claims!.agentId)).toBe(false);
      seen.add(t.claims!.agentId);
    }
    const before = await countGrants(b.broker.db);
    const e = await refusal(delegate(t.accessToken, { scopes: ["read:records:*"] }));
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.reason).toBe("DELEGATION_DEPTH_EXCEEDED");
    expect(await countGrants(b.broker.db)).toBe(before);
  });

  it("a token at the default maximum depth stays small", async () => {
    let t = await issue({ scopes: ["read:records:*"] });
    for (let i = 0; i < 5; i++) t = await delegate(t.accessToken, { scopes: ["read:records:*"] });
    expect(t.claims!.depth).toBe(5);
    expect(t.accessToken.length).toBeLessThan(4096);
    expect((await refusal(delegate(t.accessToken, { scopes: ["read:records:*"] }))).reason).toBe("DELEGATION_DEPTH_EXCEEDED");
  });

  it("a revoked parent, or one whose ancestor is revoked, cannot delegate", async () => {
    const a = await issue();
    const child = await delegate(a.accessToken, { scopes: ["read:records:P-1042"] });
    await revoke(RevocationTarget.REVOCATION_TARGET_TOKEN, a.claims!.tokenId);
    for (const t of [a, child]) {
      const e = await refusal(delegate(t.accessToken, { scopes: ["read:records:P-1042"] }));
      expect(e.code).toBe(status.PERMISSION_DENIED);
      expect(e.reason).toBe("PARENT_REVOKED");
    }
  });

  it("a token of a disabled app cannot delegate", async () => {
    const gone = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const t = await issue({ scopes: ["read:records:*"], into: gone });
    await call(b.admin.disableApp, b.admin, { appId: gone.appId, reason: "offboarded" }, operatorMd());
    const e = await refusal(delegate(t.accessToken, { scopes: ["read:records:*"] }));
    expect(e.reason).toBe("PARENT_REVOKED");
    expect(e.code).toBe(status.PERMISSION_DENIED);
  });

  it("only an agent's own token delegates: app credentials, the operator and forged lineage are refused", async () => {
    const asApp = await refusal(call(b.client.delegate, b.client, { scopes: ["read:records:P-1042"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, app.md));
    expect(asApp.code).toBe(status.PERMISSION_DENIED);
    const asOperator = await refusal(call(b.client.delegate, b.client, { scopes: ["read:records:P-1042"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, operatorMd()));
    expect(asOperator.code).toBe(status.PERMISSION_DENIED);

    // A token whose payload was rewritten to carry a long lineage (and wider
    // scopes) keeps its old signature: refused as an invalid token.
    const t = await issue();
    const [h, p, s] = t.accessToken.split(".");
    const payload = JSON.parse(Buffer.from(p!, "base64url").toString()) as Record<string, unknown>;
    payload.scope = "*:*:*";
    payload.lineage = Array.from({ length: 200 }, (_, i) => ({ jti: `t${i}`, sub: `a${i}` }));
    const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.${s}`;
    // Under the 16 KiB credential limit, so the signature check is what refuses it.
    expect(forged.length).toBeLessThanOrEqual(16_384);
    const e = await refusal(delegate(forged, { scopes: ["*:*:*"] }));
    expect(e.code).toBe(status.UNAUTHENTICATED);
    expect(e.reason).toBe("TOKEN_INVALID");
  });

  it("an expired parent cannot delegate", async () => {
    const strict = await startTestBroker({ BATON_LEEWAY_SECONDS: "0" });
    try {
      const a = await createApp(strict, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
      const t = await call(strict.client.issue, strict.client, {
        taskId: "short", orchestrationId: "", humanPrincipal: "", scopes: ["read:records:*"], audiences: ["ehr-api"],
        ttl: { seconds: 1, nanos: 0 }, allowTtlClamp: false, agentPublicKeyJwk: "",
        approvalId: "",
      }, a.md);
      await new Promise((r) => setTimeout(r, Math.max(0, t.claims!.expireTime!.getTime() - Date.now()) + 1100));
      const e = await refusal(call(strict.client.delegate, strict.client, {
        scopes: ["read:records:*"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "",
        approvalId: "",
      }, agentMd(t.accessToken)));
      expect(e.code).toBe(status.PERMISSION_DENIED);
      expect(e.reason).toBe("PARENT_EXPIRED");
    } finally {
      await strict.stop();
    }
  });

  it("nothing from a refused delegation is stored, and the refusal is audited", async () => {
    const t = await issue({ scopes: ["read:data:x"] });
    const before = await countGrants(b.broker.db);
    await refusal(delegate(t.accessToken, { scopes: ["read:*:x"] }));
    expect(await countGrants(b.broker.db)).toBe(before);
    const r = await b.broker.db.query<{ payload: string }>(
      "SELECT payload FROM audit_events WHERE kind = 'delegation.refused' ORDER BY seq DESC LIMIT 1",
    );
    const event = JSON.parse(r.rows[0]!.payload) as { data: { reason: string; lineage: { token_id: string }[] } };
    expect(event.data.reason).toBe("SCOPE_NOT_COVERED");
    expect(event.data.lineage.map((e) => e.token_id)).toEqual([t.claims!.tokenId]);
    expect(r.rows[0]!.payload).not.toContain(t.accessToken.split(".")[2]!);
  });

  it("the delegation's audit event carries the whole lineage", async () => {
    const a = await issue();
    const c = await delegate((await delegate(a.accessToken, { scopes: ["read:records:P-1042"] })).accessToken, { scopes: ["read:records:P-1042"] });
    const r = await b.broker.db.query<{ payload: string }>(
      "SELECT payload FROM audit_events WHERE kind = 'token.delegated' ORDER BY seq DESC LIMIT 1",
    );
    const event = JSON.parse(r.rows[0]!.payload) as { data: { token_id: string; lineage: { token_id: string; agent_id: string }[] } };
    expect(event.data.token_id).toBe(c.claims!.tokenId);
    expect(event.data.lineage).toEqual(c.claims!.lineage.map((e) => ({ token_id: e.tokenId, agent_id: e.agentId })));
  });
});
