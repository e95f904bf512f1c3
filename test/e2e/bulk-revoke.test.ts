// RevokeMany over real gRPC on real PostgreSQL: all-or-nothing, consecutive
// cursors in request order, the target limit, cascade to delegated tokens,
// who may call it, and one rate-limit token per call.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RevokeRequest, RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { agentMd } from "../helpers/agent-key.js";
import { call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { openStream } from "../helpers/stream.js";

const { REVOCATION_TARGET_TOKEN: TOKEN, REVOCATION_TARGET_AGENT: AGENT, REVOCATION_TARGET_TASK: TASK, REVOCATION_TARGET_CHAIN: CHAIN } = RevocationTarget;

let b: TestBroker;
let app: TestApp;
let other: TestApp;

beforeAll(async () => {
  b = await startTestBroker({ BATON_APP_RATE_PER_SECOND: "100000", BATON_APP_BURST: "100000" });
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxDelegationDepth: 3 });
  other = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
});
afterAll(async () => b?.stop());

const issue = (taskId: string, a: TestApp = app, broker: TestBroker = b) =>
  call(broker.client.issue, broker.client, issueRequest({ taskId, scopes: ["read:records:P-1"] }), a.md);
const statusOf = async (token: string) =>
  (await call(b.client.validate, b.client, { token, audience: "ehr-api", requiredScopes: [] }, operatorMd())).status;
const target = (t: RevocationTarget, id: string, appId = ""): RevokeRequest => ({ target: t, id, appId, reason: "incident 42" });
const revokeMany = (targets: RevokeRequest[], md = app.md, broker: TestBroker = b) =>
  call(broker.client.revokeMany, broker.client, { targets }, md);
const storedCount = async () =>
  Number((await b.database.db.query<{ n: string }>("SELECT count(*) AS n FROM revocations")).rows[0]!.n);

describe("RevokeMany", () => {
  it("revokes every target in one call, with consecutive cursors in request order and one audit event each", async () => {
    const [x, y, z] = await Promise.all([issue("bulk-x"), issue("bulk-y"), issue("bulk-z")]);
    const survivor = await issue("bulk-survivor");
    const res = await revokeMany([target(TOKEN, x.claims!.tokenId), target(AGENT, y.claims!.agentId), target(TASK, "bulk-z")]);

    expect(res.revocations.map((r) => [r.target, r.id])).toEqual([
      [TOKEN, x.claims!.tokenId],
      [AGENT, y.claims!.agentId],
      [TASK, "bulk-z"],
    ]);
    const cursors = res.revocations.map((r) => BigInt(r.cursor));
    expect(cursors).toEqual([cursors[0]!, cursors[0]! + 1n, cursors[0]! + 2n]);
    for (const t of [x, y, z]) expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(survivor.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);

    // All in one transaction, each with its own audit event.
    const { rows } = await b.database.db.query<{ n: string }>(
      "SELECT count(DISTINCT xmin::text) AS n FROM revocations WHERE cursor = ANY($1::bigint[])",
      [cursors.map(String)],
    );
    expect(Number(rows[0]!.n)).toBe(1);
    const events = await b.database.db.query<{ payload: string }>("SELECT payload FROM audit_events WHERE kind = 'revocation.created'");
    const audited = events.rows.map((e) => (JSON.parse(e.payload) as { data: { cursor: string; reason: string } }).data);
    for (const c of cursors) expect(audited.find((d) => d.cursor === c.toString())?.reason).toBe("incident 42");
  });

  it("cascades: a token or chain target kills what was delegated from it", async () => {
    const root = await issue("bulk-cascade");
    const child = await call(b.client.delegate, b.client, { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, agentPublicKeyJwk: "", allowTtlClamp: false, approvalId: "" }, agentMd(root.accessToken));
    const grandchild = await call(b.client.delegate, b.client, { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, agentPublicKeyJwk: "", allowTtlClamp: false, approvalId: "" }, agentMd(child.accessToken));
    const other1 = await issue("bulk-cascade-2");
    const otherChild = await call(b.client.delegate, b.client, { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, agentPublicKeyJwk: "", allowTtlClamp: false, approvalId: "" }, agentMd(other1.accessToken));

    // A chain named by a descendant is stored as its root.
    const res = await revokeMany([target(TOKEN, child.claims!.tokenId), target(CHAIN, otherChild.claims!.tokenId)]);
    expect(res.revocations[1]!.id).toBe(other1.claims!.tokenId);
    expect(await statusOf(root.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(child.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(grandchild.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(other1.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(otherChild.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("is all-or-nothing: one refused target refuses the call, says which, and nothing is stored or streamed", async () => {
    const [x, y] = await Promise.all([issue("atomic-x"), issue("atomic-y")]);
    const foreign = await issue("atomic-foreign", other);
    const stream = openStream(b.client, "", operatorMd());
    await stream.waitFor((s) => s.events.some((e) => e.snapshotComplete), 10_000, "snapshot");
    const seen = stream.cursors.length; // the snapshot's
    const before = await storedCount();
    const cursorBefore = (await b.database.db.query<{ value: string }>("SELECT value FROM revocation_cursor WHERE id = 1")).rows[0]!.value;

    // Another app's token, at index 2: NOT_FOUND, as Revoke would say.
    const e = await refusal(revokeMany([target(TOKEN, x.claims!.tokenId), target(AGENT, y.claims!.agentId), target(TOKEN, foreign.claims!.tokenId)]));
    expect([e.code, e.reason, e.metadata.index, e.metadata.kind]).toEqual([5, "NOT_FOUND", "2", "token"]);
    // An unspecified target at index 1: INVALID_ARGUMENT, with the field.
    const bad = await refusal(revokeMany([target(TOKEN, x.claims!.tokenId), target(RevocationTarget.REVOCATION_TARGET_UNSPECIFIED, "x")]));
    expect([bad.code, bad.reason, bad.metadata.index, bad.metadata.field]).toEqual([3, "INVALID_REQUEST", "1", "target"]);
    // A reason that is too long, at index 0.
    const long = await refusal(revokeMany([{ ...target(TOKEN, x.claims!.tokenId), reason: "r".repeat(300) }, target(TOKEN, y.claims!.tokenId)]));
    expect([long.code, long.metadata.index, long.metadata.field]).toEqual([3, "0", "reason"]);

    expect(await storedCount()).toBe(before);
    expect((await b.database.db.query<{ value: string }>("SELECT value FROM revocation_cursor WHERE id = 1")).rows[0]!.value).toBe(cursorBefore);
    expect(await statusOf(x.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(y.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    // The next event on the stream is the next real revocation.
    const next = await call(b.client.revoke, b.client, target(TOKEN, x.claims!.tokenId), app.md);
    await stream.waitFor((s) => s.cursors.length > seen, 10_000, "a revocation event");
    expect(stream.cursors.slice(seen)).toEqual([BigInt(next.revocation!.cursor)]);
    stream.cancel();
  });

  it("enforces its limit: none or more than 1000 targets is INVALID_ARGUMENT; 1000 is accepted", async () => {
    const none = await refusal(revokeMany([]));
    expect([none.code, none.reason, none.metadata.field]).toEqual([3, "INVALID_REQUEST", "targets"]);
    const before = await storedCount();
    const tooMany = await refusal(revokeMany(Array.from({ length: 1001 }, (_, i) => target(TASK, `limit-${i}`))));
    expect([tooMany.code, tooMany.reason, tooMany.metadata.field]).toEqual([3, "INVALID_REQUEST", "targets"]);
    expect(await storedCount()).toBe(before);

    const res = await revokeMany(Array.from({ length: 1000 }, (_, i) => target(TASK, `limit-${i}`)));
    expect(res.revocations.length).toBe(1000);
    expect(await storedCount()).toBe(before + 1000);
  });

  it("the operator may name any app's targets; an agent may not call it", async () => {
    const t = await issue("op-bulk", other);
    const res = await revokeMany([target(TOKEN, t.claims!.tokenId), target(TASK, "op-bulk", other.appId)], operatorMd());
    expect(res.revocations.map((r) => r.appId)).toEqual([other.appId, other.appId]);

    const agent = await issue("agent-bulk");
    const e = await refusal(revokeMany([target(TOKEN, agent.claims!.tokenId)], agentMd(agent.accessToken)));
    expect(e.code).toBe(7); // PERMISSION_DENIED
    expect(await statusOf(agent.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });
});

describe("RevokeMany and the app rate limit", () => {
  let limited: TestBroker;
  let limitedApp: TestApp;
  beforeAll(async () => {
    limited = await startTestBroker({ BATON_APP_RATE_PER_SECOND: "1", BATON_APP_BURST: "5" });
    limitedApp = await createApp(limited, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
  });
  afterAll(async () => limited?.stop());

  it("charges one token per call, however many targets", async () => {
    const tokens = [];
    for (let i = 0; i < 3; i++) tokens.push(await issue(`rl-${i}`, limitedApp, limited)); // 3 of 5
    // Six targets for one token: charged per target it would be refused.
    await revokeMany([...tokens.map((t) => target(TOKEN, t.claims!.tokenId)), ...["a", "b", "c"].map((x) => target(TASK, `rl-${x}`))], limitedApp.md, limited);
    await revokeMany([target(TASK, "rl-d")], limitedApp.md, limited); // 5 of 5
    const e = await refusal(revokeMany([target(TASK, "rl-e")], limitedApp.md, limited));
    expect(e.reason).toBe("RATE_LIMITED");
  });
});
