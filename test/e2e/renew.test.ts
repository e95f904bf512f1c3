// Renewal end to end (issue 8): the new token carries the old one's
// authority and lineage and names it (`rnw`); the old token is revoked at
// once, on the stream, with its descendants, in the transaction that stores
// the new grant; key-bound tokens need a proof for Renew; the app's task
// lifetime maximum ends a renewal line; refusals store nothing but their
// audit event.
//
// The broker's own skew allowance is raised to 30 s here, so that a token
// at the end of its task is still accepted as a credential and the refusal
// seen is the task lifetime's, not the token's expiry, however slow the
// machine is.

import { status } from "@grpc/grpc-js";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { countGrants } from "../../server/storage/grants.js";
import { agentMd, TestAgentKey } from "../helpers/agent-key.js";
import { basic, call, clinicalIssuer, createApp, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { openStream } from "../helpers/stream.js";

const RENEW = "/baton.v1.BrokerService/Renew";

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker({ BATON_VALIDATE_SKEW_SECONDS: "30" });
  app = await createApp(b, { ceiling: ["read:records:*", "write:prescriptions:*"], audiences: ["ehr-api", "pharmacy-api"], maxTtlSeconds: 900 });
});
afterAll(async () => b?.stop());

const issue = clinicalIssuer(() => b, () => app, { taskId: "task-renew", orchestrationId: "orch-7" });

const delegate = async (token: string, scopes: string[], o: { ttlSeconds?: number; holder?: TestAgentKey } = {}) =>
  call(b.client.delegate, b.client, {
    scopes,
    audiences: [],
    ttl: o.ttlSeconds ? { seconds: o.ttlSeconds, nanos: 0 } : undefined,
    allowTtlClamp: false,
    agentPublicKeyJwk: "",
    approvalId: "",
  }, agentMd(token, o.holder ? await o.holder.proof(token) : undefined));

interface RenewOptions {
  ttlSeconds?: number;
  clamp?: boolean;
  holder?: TestAgentKey;
  proofMethod?: string;
}

const renew = async (token: string, o: RenewOptions = {}) =>
  call(b.client.renew, b.client, {
    ttl: o.ttlSeconds ? { seconds: o.ttlSeconds, nanos: 0 } : undefined,
    allowTtlClamp: o.clamp ?? false,
  }, agentMd(token, o.holder ? await o.holder.proof(token, { method: o.proofMethod ?? RENEW }) : undefined));

const statusOf = async (token: string, audience = "ehr-api") =>
  (await call(b.client.validate, b.client, { token, audience, requiredScopes: [] }, operatorMd())).status;

const setMaxTask = (a: TestApp, seconds: number) =>
  call(b.admin.updateApp, b.admin, {
    appId: a.appId,
    updateScopeCeiling: false,
    scopeCeiling: [],
    updateAudiences: false,
    audiences: [],
    updateApprovalPolicy: false,
    approvalPolicy: [],
    maxTtl: undefined,
    maxTaskLifetime: { seconds, nanos: 0 },
  }, operatorMd());

/** Rows a refused call must not have added. */
const stored = async () => {
  const { rows } = await b.broker.db.query<{ revocations: string; audit: string }>(
    "SELECT (SELECT count(*) FROM revocations) AS revocations, (SELECT count(*) FROM audit_events WHERE kind <> 'renewal.refused') AS audit",
  );
  return { grants: await countGrants(b.broker.db), revocations: Number(rows[0]!.revocations), audit: Number(rows[0]!.audit) };
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("Renew", () => {
  it("returns a new token with the same agent, authority and lineage, naming the old one; the old one is revoked at once and on the stream", async () => {
    const stream = openStream(b.client, "", operatorMd());
    await stream.waitFor((s) => s.events.some((e) => e.snapshotComplete), 10_000, "snapshot");
    const old = await issue();
    const r = await renew(old.accessToken, { ttlSeconds: 120 });
    const o = old.claims!;
    const n = r.claims!;
    expect(n.tokenId).not.toBe(o.tokenId);
    expect(n.renewedFromTokenId).toBe(o.tokenId);
    for (const k of ["agentId", "appId", "taskId", "orchestrationId", "humanPrincipal", "scopes", "audiences", "lineage", "depth", "keyThumbprint"] as const) {
      expect(n[k]).toEqual(o[k]);
    }
    expect(n.expireTime!.getTime() - n.notBeforeTime!.getTime()).toBe(120_000);
    expect(r.ttlClamped).toBe(false);
    const jwt = decodeJwt(r.accessToken) as { rnw?: string; root_iat?: number; iat: number };
    expect(jwt.rnw).toBe(o.tokenId);
    // The line's start stays the chain's root time: a task revocation covers it.
    expect(jwt.root_iat! * 1000).toBe(o.issueTime!.getTime());
    expect(decodeJwt(old.accessToken).rnw).toBeUndefined();

    expect(await statusOf(old.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    const v = await call(b.client.validate, b.client, { token: r.accessToken, audience: "ehr-api", requiredScopes: [] }, app.md);
    expect(v.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(v.claims!.renewedFromTokenId).toBe(o.tokenId);
    await stream.waitFor(
      (s) => s.events.some((e) => e.revocation?.target === RevocationTarget.REVOCATION_TARGET_TOKEN && e.revocation.id === o.tokenId),
      10_000,
      "the old token's revocation",
    );
    stream.cancel();
  });

  it("stores the new grant, the revocation and both audit events in one transaction", async () => {
    const old = await issue();
    const r = await renew(old.accessToken);
    const db = b.broker.db;
    const grant = await db.query<{ x: string; task_start_time: Date; parent_token_id: string | null }>(
      "SELECT xmin::text AS x, task_start_time, parent_token_id FROM grants WHERE token_id = $1",
      [r.claims!.tokenId],
    );
    const rev = await db.query<{ x: string; reason: string }>("SELECT xmin::text AS x, reason FROM revocations WHERE target = 'token' AND target_id = $1", [old.claims!.tokenId]);
    const events = await db.query<{ x: string; kind: string; payload: string }>(
      "SELECT xmin::text AS x, kind, payload FROM audit_events WHERE request_id = (SELECT request_id FROM audit_events WHERE kind = 'token.renewed' ORDER BY seq DESC LIMIT 1) ORDER BY seq",
    );
    expect(rev.rows[0]!.reason).toBe("renewed");
    expect(events.rows.map((e) => e.kind)).toEqual(["revocation.created", "token.renewed"]);
    expect(new Set([grant.rows[0]!.x, rev.rows[0]!.x, ...events.rows.map((e) => e.x)]).size).toBe(1);
    expect(grant.rows[0]!.task_start_time.getTime()).toBe(old.claims!.issueTime!.getTime());
    const data = (JSON.parse(events.rows[1]!.payload) as { data: Record<string, unknown> }).data;
    expect(data).toMatchObject({
      token_id: r.claims!.tokenId,
      renewed_from: old.claims!.tokenId,
      agent_id: old.claims!.agentId,
      task_id: "task-renew",
      orchestration_id: "orch-7",
      human: "user:dr-grey",
      lineage: [],
      scopes: old.claims!.scopes,
      audiences: old.claims!.audiences,
      expire_time: r.claims!.expireTime!.toISOString(),
      ttl_seconds: 300,
    });
    expect(events.rows.map((e) => e.payload).join()).not.toContain(r.accessToken.split(".")[2]!);

    // Renewing again copies the line's start.
    const again = await renew(r.accessToken);
    const g2 = await db.query<{ task_start_time: Date }>("SELECT task_start_time FROM grants WHERE token_id = $1", [again.claims!.tokenId]);
    expect(g2.rows[0]!.task_start_time.getTime()).toBe(old.claims!.issueTime!.getTime());
  });

  it("revokes what was delegated from the old token; a child keeps its expiry and its parent", async () => {
    const parent = await issue();
    const child = await delegate(parent.accessToken, ["read:records:P-1042"], { ttlSeconds: 60 });
    const renewedParent = await renew(parent.accessToken);
    expect(await statusOf(child.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(renewedParent.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);

    // A child renews under the same parent, never past it.
    const p2 = await issue({ ttlSeconds: 60 });
    const c2 = await delegate(p2.accessToken, ["read:records:P-1042"], { ttlSeconds: 30 });
    const rc = await renew(c2.accessToken, { ttlSeconds: 61, clamp: true });
    expect(rc.claims!.lineage).toEqual(c2.claims!.lineage);
    expect(rc.claims!.agentId).toBe(c2.claims!.agentId);
    expect(rc.claims!.expireTime!.getTime()).toBeLessThanOrEqual(p2.claims!.expireTime!.getTime());
    expect(rc.ttlClamped).toBe(true);
    expect(await statusOf(p2.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    const tooLong = await refusal(renew(rc.accessToken, { ttlSeconds: 600 }));
    expect(tooLong.reason).toBe("TTL_EXCEEDS_MAXIMUM");
    expect(tooLong.metadata.rule).toBe("parent_remaining");
    // The refused call revoked nothing.
    expect(await statusOf(rc.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    // Revoking the parent still reaches the renewed child.
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: p2.claims!.tokenId, appId: "", reason: "t" }, operatorMd());
    expect(await statusOf(rc.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("a TTL above the app's maximum is refused unless clamping is allowed", async () => {
    const t = await issue();
    const e = await refusal(renew(t.accessToken, { ttlSeconds: 901 }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.reason).toBe("TTL_EXCEEDS_MAXIMUM");
    expect(e.metadata.rule).toBe("app_maximum");
    const r = await renew(t.accessToken, { ttlSeconds: 5000, clamp: true });
    expect(r.ttlClamped).toBe(true);
    expect(r.claims!.expireTime!.getTime() - r.claims!.notBeforeTime!.getTime()).toBe(900_000);
  });

  it("a key-bound token needs a proof made for Renew, and the new token stays bound to the same key", async () => {
    const key = await TestAgentKey.generate();
    const t = await issue({ key });
    expect((await refusal(renew(t.accessToken))).reason).toBe("PROOF_REQUIRED");
    expect((await refusal(renew(t.accessToken, { holder: key, proofMethod: "/baton.v1.BrokerService/Delegate" }))).reason).toBe("PROOF_INVALID");
    const other = await TestAgentKey.generate();
    expect((await refusal(renew(t.accessToken, { holder: other }))).reason).toBe("PROOF_INVALID");
    expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    const r = await renew(t.accessToken, { holder: key });
    expect(r.claims!.keyThumbprint).toBe(t.claims!.keyThumbprint);
    expect((decodeJwt(r.accessToken) as { cnf?: { jkt: string } }).cnf?.jkt).toBe(t.claims!.keyThumbprint);
    expect((await refusal(renew(r.accessToken))).reason).toBe("PROOF_REQUIRED");
    await renew(r.accessToken, { holder: key });
  });

  it("a revoked or already renewed token cannot renew (TOKEN_INVALID), and only an agent may call", async () => {
    const t = await issue();
    await renew(t.accessToken);
    const again = await refusal(renew(t.accessToken));
    expect(again.code).toBe(status.UNAUTHENTICATED);
    expect(again.reason).toBe("TOKEN_INVALID");
    expect(again.metadata.token_status).toBe("REVOKED");
    const byApp = await refusal(call(b.client.renew, b.client, { ttl: undefined, allowTtlClamp: false }, basic(app.appId, app.secret)));
    expect(byApp.reason).toBe("NOT_PERMITTED");
  });

  it("concurrent renewals of one token: exactly one succeeds", async () => {
    const t = await issue();
    const before = await stored();
    const results = await Promise.allSettled(Array.from({ length: 6 }, () => renew(t.accessToken)));
    const ok = results.filter((r) => r.status === "fulfilled");
    expect(ok).toHaveLength(1);
    for (const r of results) {
      if (r.status === "rejected") expect((await refusal(Promise.reject(r.reason))).reason).toBe("TOKEN_INVALID");
    }
    const after = await stored();
    expect(after.grants).toBe(before.grants + 1);
    expect(after.revocations).toBe(before.revocations + 1);
  });

  it("a hostile TTL is INVALID_ARGUMENT, stores nothing, and the token still renews", async () => {
    const t = await issue();
    const before = await stored();
    for (const ttl of [{ seconds: -5, nanos: 0 }, { seconds: 0, nanos: 0 }, { seconds: 10, nanos: -1 }, { seconds: Number.MAX_SAFE_INTEGER, nanos: 0 }]) {
      const e = await refusal(call(b.client.renew, b.client, { ttl, allowTtlClamp: false }, agentMd(t.accessToken)));
      expect(e.code, JSON.stringify(ttl)).toBe(status.INVALID_ARGUMENT);
      expect(["INVALID_REQUEST", "TTL_EXCEEDS_MAXIMUM"]).toContain(e.reason);
    }
    expect(await stored()).toEqual(before);
    expect((await renew(t.accessToken)).claims!.renewedFromTokenId).toBe(t.claims!.tokenId);
  });

  it("a disabled app's tokens cannot renew", async () => {
    const other = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const t = await call(b.client.issue, b.client, {
      taskId: "t", orchestrationId: "", humanPrincipal: "", scopes: ["read:records:P-1"], audiences: ["ehr-api"],
      ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "",
    }, other.md);
    await call(b.admin.disableApp, b.admin, { appId: other.appId, reason: "" }, operatorMd());
    const e = await refusal(renew(t.accessToken));
    expect(e.reason).toBe("TOKEN_INVALID");
  });
});

describe("the task lifetime maximum", () => {
  it("is set and returned per app; unset means the broker's default", async () => {
    const a = await createApp(b);
    const got = await call(b.admin.getApp, b.admin, { appId: a.appId }, operatorMd());
    expect(got.app!.maxTaskLifetime).toBeUndefined();
    const u = await setMaxTask(a, 7200);
    expect(u.app!.maxTaskLifetime).toEqual({ seconds: 7200, nanos: 0 });
    for (const bad of [0, 30 * 86_400 + 1]) {
      const e = await refusal(setMaxTask(a, bad));
      expect(e.code).toBe(status.INVALID_ARGUMENT);
      expect(e.metadata.field).toBe("max_task_lifetime");
    }
    const frac = await refusal(call(b.admin.updateApp, b.admin, {
      appId: a.appId, updateScopeCeiling: false, scopeCeiling: [], updateAudiences: false, audiences: [],
      updateApprovalPolicy: false, approvalPolicy: [], maxTtl: undefined, maxTaskLifetime: { seconds: 10, nanos: 500_000_000 },
    }, operatorMd()));
    expect(frac.metadata.field).toBe("max_task_lifetime");
    expect((await call(b.admin.getApp, b.admin, { appId: a.appId }, operatorMd())).app!.maxTaskLifetime).toEqual({ seconds: 7200, nanos: 0 });
    const created = await call(b.admin.createApp, b.admin, {
      name: `mt-${Math.random().toString(36).slice(2, 8)}`, scopeCeiling: ["read:records:*"], audiences: ["ehr-api"],
      maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: { seconds: 60, nanos: 0 },
    }, operatorMd());
    expect(created.app!.maxTaskLifetime).toEqual({ seconds: 60, nanos: 0 });
  });

  it("bounds a renewal line: renewing in a loop ends in TASK_LIFETIME_EXCEEDED, never past task start + maximum", async () => {
    const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    await setMaxTask(a, 3);
    let current = await issue({ into: a, scopes: ["read:records:P-1"] });
    const taskEnd = current.claims!.issueTime!.getTime() + 3000;
    let renewals = 0;
    const deadline = Date.now() + 20_000;
    let refused: Awaited<ReturnType<typeof refusal>> | null = null;
    while (refused === null && Date.now() < deadline) {
      try {
        const r = await renew(current.accessToken, { ttlSeconds: 60 });
        expect(r.claims!.expireTime!.getTime()).toBeLessThanOrEqual(taskEnd);
        // Shortened to the task's end, not refused.
        expect(r.ttlClamped).toBe(true);
        current = r;
        renewals += 1;
        await sleep(200);
      } catch (err) {
        refused = await refusal(Promise.reject(err));
      }
    }
    expect(refused).not.toBeNull();
    expect(renewals).toBeGreaterThanOrEqual(1);
    expect(refused!.code).toBe(status.FAILED_PRECONDITION);
    expect(refused!.reason).toBe("TASK_LIFETIME_EXCEEDED");
    expect(refused!.metadata.task_expire_time).toBe(new Date(taskEnd).toISOString());
  });

  it("a refusal stores nothing but its audit event; lowering the maximum applies to the next Renew, revoking nothing", async () => {
    const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const t = await issue({ into: a, scopes: ["read:records:P-1"], ttlSeconds: 300 });
    await setMaxTask(a, 1);
    // Lowering it revoked nothing.
    expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    await sleep(1200);
    const before = await stored();
    const e = await refusal(renew(t.accessToken));
    expect(e.reason).toBe("TASK_LIFETIME_EXCEEDED");
    expect(e.metadata.task_expire_time).toBe(new Date(t.claims!.issueTime!.getTime() + 1000).toISOString());
    expect(await stored()).toEqual(before);
    expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    const r = await b.broker.db.query<{ payload: string }>(
      "SELECT payload FROM audit_events WHERE kind = 'renewal.refused' ORDER BY seq DESC LIMIT 1",
    );
    const event = JSON.parse(r.rows[0]!.payload) as { actor: string; data: Record<string, unknown> };
    const data = event.data;
    expect(data).toMatchObject({
      reason: "TASK_LIFETIME_EXCEEDED", token_id: t.claims!.tokenId, agent_id: t.claims!.agentId, task_id: "task-renew",
      orchestration_id: "orch-7", human: "user:dr-grey", lineage: [],
    });
    expect(event.actor).toBe(`agent:${t.claims!.agentId}`);
    expect(r.rows[0]!.payload).not.toContain(t.accessToken.split(".")[2]!);
    // Raising it again lets the line continue.
    await setMaxTask(a, 3600);
    await renew(t.accessToken);
  });
});
