// Revocation at every level on real PostgreSQL, persistence across a broker
// restart, app disable and narrowing, and the task-id reuse rule.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { type IssueRequest, RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";

const MASTER = MasterKey.generate();
let database: TestDatabase;
let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  database = await freshDatabase();
  b = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  app = await createApp(b, { ceiling: ["read:records:*", "write:notes:*"], audiences: ["ehr-api"], maxTtlSeconds: 900 });
});
afterAll(async () => {
  await b?.stop();
  await database?.drop();
});

const req = (over: Partial<IssueRequest> = {}): IssueRequest => issueRequest({ taskId: "task-a", ...over });
const issue = (over: Partial<IssueRequest> = {}, a: TestApp = app, broker: TestBroker = b) =>
  call(broker.client.issue, broker.client, req(over), a.md);
const statusOf = async (token: string, a: TestApp = app, broker: TestBroker = b) =>
  (await call(broker.client.validate, broker.client, { token, audience: "ehr-api", requiredScopes: [] }, a.md)).status;
const revoke = (target: RevocationTarget, id: string, md = operatorMd(), appId = "") =>
  call(b.client.revoke, b.client, { target, id, appId, reason: "test" }, md);

describe("every revocation level", () => {
  it("token: kills that token only", async () => {
    const x = await issue();
    const y = await issue();
    await revoke(RevocationTarget.REVOCATION_TARGET_TOKEN, x.claims!.tokenId);
    expect(await statusOf(x.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(y.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("agent: kills the agent's token", async () => {
    const x = await issue();
    const y = await issue();
    await revoke(RevocationTarget.REVOCATION_TARGET_AGENT, x.claims!.agentId);
    expect(await statusOf(x.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(y.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("chain: kills the tree rooted at the token", async () => {
    const x = await issue();
    const r = await revoke(RevocationTarget.REVOCATION_TARGET_CHAIN, x.claims!.tokenId);
    expect(r.revocation!.id).toBe(x.claims!.tokenId);
    expect(await statusOf(x.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("task: kills the task's tokens issued so far, not a later reuse of the id, nor another task", async () => {
    const before = await issue({ taskId: "task-reused" });
    const other = await issue({ taskId: "task-other" });
    await revoke(RevocationTarget.REVOCATION_TARGET_TASK, "task-reused", app.md);
    const after = await issue({ taskId: "task-reused" });
    expect(await statusOf(before.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(other.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(after.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("task: the same task id in another app is untouched", async () => {
    const other = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const mine = await issue({ taskId: "shared-task" });
    const theirs = await issue({ taskId: "shared-task" }, other);
    await revoke(RevocationTarget.REVOCATION_TARGET_TASK, "shared-task", operatorMd(), app.appId);
    expect(await statusOf(mine.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(theirs.accessToken, other)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("task: an operator must name the app", async () => {
    const e = await refusal(revoke(RevocationTarget.REVOCATION_TARGET_TASK, "task-a"));
    expect(e.reason).toBe("INVALID_REQUEST");
    expect(e.metadata.field).toBe("app_id");
  });

  it("app: kills everything the app issued so far; the app keeps issuing", async () => {
    const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const old = await issue({}, a);
    await revoke(RevocationTarget.REVOCATION_TARGET_APP, a.appId, a.md);
    const fresh = await issue({}, a);
    expect(await statusOf(old.accessToken, a)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(fresh.accessToken, a)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("an app cannot revoke another app", async () => {
    const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const e = await refusal(revoke(RevocationTarget.REVOCATION_TARGET_APP, app.appId, a.md));
    expect(e.reason).toBe("NOT_FOUND");
  });
});

describe("app changes", () => {
  it("disabling an app revokes its tokens and refuses its credentials", async () => {
    const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const t = await issue({}, a);
    await call(b.admin.disableApp, b.admin, { appId: a.appId, reason: "compromised" }, operatorMd());
    // Asked as the operator: a disabled app cannot call, and another app is not answered about its tokens.
    const v = await call(b.client.validate, b.client, { token: t.accessToken, audience: "ehr-api", requiredScopes: [] }, operatorMd());
    expect(v.status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    const e = await refusal(issue({}, a));
    expect(e.reason).toBe("APP_DISABLED");
  });

  it("narrowing the ceiling revokes exactly the live tokens that no longer fit", async () => {
    const a = await createApp(b, { ceiling: ["read:records:*", "write:notes:*"], audiences: ["ehr-api"] });
    const reader = await issue({ scopes: ["read:records:P-1"] }, a);
    const writer = await issue({ scopes: ["write:notes:N-1"] }, a);
    const res = await call(b.admin.updateApp, b.admin, {
      appId: a.appId, name: undefined, updateScopeCeiling: true, scopeCeiling: ["read:records:*"],
      updateAudiences: false, audiences: [], maxTtl: undefined, maxDelegationDepth: undefined,
      approvalPolicy: [], maxTaskLifetime: undefined, updateApprovalPolicy: false,
    }, operatorMd());
    expect(res.revokedTokenCount).toBe(1);
    expect(await statusOf(reader.accessToken, a)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(writer.accessToken, a)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect((await refusal(issue({ scopes: ["write:notes:N-2"] }, a))).reason).toBe("SCOPE_NOT_COVERED");
  });

  it("a rotated secret replaces the old one at once", async () => {
    const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const r = await call(b.admin.rotateAppSecret, b.admin, { appId: a.appId }, operatorMd());
    expect((await refusal(issue({}, a))).reason).toBe("CREDENTIALS_INVALID");
    const { basic } = await import("../helpers/broker.js");
    expect((await issue({}, { ...a, md: basic(a.appId, r.clientSecret) })).accessToken).toBeTruthy();
  });
});

describe("persistence", () => {
  it("revocations and keys survive a broker restart; old tokens keep validating", async () => {
    const alive = await issue();
    const dead = await issue();
    await revoke(RevocationTarget.REVOCATION_TARGET_TOKEN, dead.claims!.tokenId);
    await b.stop();
    b = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
    expect(await statusOf(alive.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(dead.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("a broker with the wrong master key refuses to start", async () => {
    await expect(startTestBroker({ BATON_MASTER_KEY: MasterKey.generate() }, database)).rejects.toThrow();
  });
});
