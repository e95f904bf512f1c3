// AdminClient and BrokerClient.revokeMany against a real broker on
// 127.0.0.1:0 over a fresh database (test/helpers/broker.ts): every admin
// call with the operator credential, the pagination helpers, resource-server
// credentials used as app credentials (Validate, with the new
// AUDIENCE_NOT_SERVED and RESOURCE_SERVER_DISABLED reasons), all-or-nothing
// bulk revocation, and a live RATE_LIMITED refusal with its RetryInfo delay.

import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import {
  AdminClient,
  BatonError,
  BrokerClient,
  ErrorReason,
  MAX_REVOKE_MANY_TARGETS,
  RevocationTarget,
  SigningKeyState,
  TokenStatus,
  type AppCredentials,
  type OperatorCredentials,
} from "../src/index.js";

const op: OperatorCredentials = { operatorToken: OPERATOR_TOKEN };
let b: TestBroker;
let admin: AdminClient;
let broker: BrokerClient;
let app: AppCredentials;

beforeAll(async () => {
  b = await startTestBroker();
  admin = new AdminClient(b.address);
  broker = new BrokerClient(b.address);
  ({ credentials: app } = await admin.createApp(op, { name: "orchestrator", scopeCeiling: ["read:records:*"], audiences: ["ehr-api", "billing-api"], maxTtlSeconds: 600 }));
});
afterAll(async () => {
  admin?.close();
  broker?.close();
  await b?.stop();
});

async function refusal(p: Promise<unknown>): Promise<BatonError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BatonError);
    return err as BatonError;
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

const issue = (caller: AppCredentials = app, taskId = "task-1") =>
  broker.issue(caller, { taskId, scopes: ["read:records:P-1"], audiences: ["ehr-api"] });

describe("AdminClient", () => {
  it("creates, reads, updates, rotates and disables an app; its credentials work with BrokerClient", async () => {
    const { app: created, credentials } = await admin.createApp(op, {
      name: "crm-bot",
      scopeCeiling: ["read:records:*", "read:crm:*"],
      audiences: ["ehr-api"],
      maxTtlSeconds: 300,
      maxDelegationDepth: 2,
    });
    expect(created.appId).toMatch(/^app_/);
    expect(credentials.clientId).toBe(created.appId);
    expect(created.maxTtl).toEqual({ seconds: 300, nanos: 0 });
    expect(created.maxDelegationDepth).toBe(2);
    const token = await issue(credentials);

    const got = await admin.getApp(op, created.appId);
    expect([got.name, [...got.scopeCeiling].sort(), got.disabled]).toEqual(["crm-bot", ["read:crm:*", "read:records:*"], false]);

    // Only what is set changes: the audiences stay.
    const updated = await admin.updateApp(op, { appId: created.appId, name: "crm-bot-2", scopeCeiling: ["read:crm:*"] });
    expect([updated.app.name, updated.app.scopeCeiling, updated.app.audiences]).toEqual(["crm-bot-2", ["read:crm:*"], ["ehr-api"]]);
    // The token's read:records scope is now beyond the ceiling: revoked by the change.
    expect(updated.revokedTokenCount).toBe(1);
    expect((await broker.validate(op, { token: token.accessToken, audience: "ehr-api" })).valid).toBe(false);

    const secret = await admin.rotateAppSecret(op, created.appId);
    expect(secret).not.toBe(credentials.clientSecret);
    const old = await refusal(broker.issue(credentials, { taskId: "t", scopes: ["read:crm:x"], audiences: ["ehr-api"] }));
    expect(old.code).toBe(status.UNAUTHENTICATED);
    await broker.issue({ clientId: created.appId, clientSecret: secret }, { taskId: "t", scopes: ["read:crm:x"], audiences: ["ehr-api"] });

    const disabled = await admin.disableApp(op, created.appId, { reason: "retired" });
    expect(disabled.disabled).toBe(true);
    expect((await admin.getApp(op, created.appId)).disabled).toBe(true);
  });

  it("walks every app page by page with allApps, and one page with listApps", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await admin.createApp(op, { name: `page-${i}`, scopeCeiling: ["read:records:*"], audiences: ["ehr-api"] })).app.appId);
    const first = await admin.listApps(op, { pageSize: 2 });
    expect(first.apps).toHaveLength(2);
    expect(first.nextPageToken).not.toBe("");
    const all: string[] = [];
    for await (const a of admin.allApps(op, { pageSize: 2 })) all.push(a.appId);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toEqual(expect.arrayContaining([...ids, app.clientId]));
    const again = await admin.listApps(op, { pageSize: 500 });
    expect(all).toHaveLength(again.apps.length);
    expect(again.nextPageToken).toBe("");
  });

  it("manages resource servers; their credentials validate as app credentials do, for their own audiences only", async () => {
    const { resourceServer: rs, credentials: rsCreds } = await admin.createResourceServer(op, { name: "ehr", audiences: ["ehr-api"] });
    expect(rs.resourceServerId).toMatch(/^rs_/);
    expect(rsCreds.clientId).toBe(rs.resourceServerId);

    const listed: string[] = [];
    for await (const r of admin.allResourceServers(op, { pageSize: 1 })) listed.push(r.resourceServerId);
    expect(listed).toContain(rs.resourceServerId);
    expect((await admin.listResourceServers(op, { pageSize: 500 })).resourceServers.map((r) => r.resourceServerId)).toContain(rs.resourceServerId);

    const token = await issue();
    const ok = await broker.validate(rsCreds, { token: token.accessToken, audience: "ehr-api" });
    expect([ok.valid, ok.status]).toEqual([true, TokenStatus.TOKEN_STATUS_VALID]);

    const notServed = await refusal(broker.validate(rsCreds, { token: token.accessToken, audience: "billing-api" }));
    expect([notServed.code, notServed.reason, notServed.errorReason]).toEqual([status.PERMISSION_DENIED, "AUDIENCE_NOT_SERVED", ErrorReason.ERROR_REASON_AUDIENCE_NOT_SERVED]);
    expect(notServed.metadata.audience).toBe("billing-api");

    const off = await admin.disableResourceServer(op, rs.resourceServerId, { reason: "decommissioned" });
    expect(off.disabled).toBe(true);
    const gone = await refusal(broker.validate(rsCreds, { token: token.accessToken, audience: "ehr-api" }));
    expect([gone.code, gone.reason, gone.errorReason]).toEqual([status.PERMISSION_DENIED, "RESOURCE_SERVER_DISABLED", ErrorReason.ERROR_REASON_RESOURCE_SERVER_DISABLED]);
  });

  it("lists and rotates signing keys, and verifies the audit log", async () => {
    const before = await admin.listSigningKeys(op);
    const active = before.find((k) => k.state === SigningKeyState.SIGNING_KEY_STATE_ACTIVE);
    expect(active).toBeDefined();
    const rotated = await admin.rotateSigningKey(op);
    expect(rotated.active.state).toBe(SigningKeyState.SIGNING_KEY_STATE_ACTIVE);
    expect(rotated.active.keyId).not.toBe(active!.keyId);
    const after = await admin.listSigningKeys(op);
    expect(after.find((k) => k.keyId === active!.keyId)?.state).not.toBe(SigningKeyState.SIGNING_KEY_STATE_ACTIVE);
    const audit = await admin.verifyAuditLog(op);
    expect(audit.intact).toBe(true);
    expect(Number(audit.eventCount)).toBeGreaterThan(0);
  });

  it("fails with the broker's typed errors", async () => {
    const wrong = await refusal(admin.getApp({ operatorToken: "bop_not_the_operator" }, app.clientId));
    expect(wrong.code).toBe(status.UNAUTHENTICATED);
    expect(wrong.reason).not.toBe("");
    const missing = await refusal(admin.getApp(op, "app_doesnotexist"));
    expect(missing.code).toBe(status.NOT_FOUND);
    expect(missing.reason).not.toBe("");
    const tooBig = await refusal(admin.listApps(op, { pageSize: 501 }));
    expect([tooBig.code, tooBig.reason, tooBig.metadata.field]).toEqual([status.INVALID_ARGUMENT, "INVALID_REQUEST", "page_size"]);
  });

  it("checks arguments before anything is sent", async () => {
    const bad = admin as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    await expect(bad.createApp!(op, { name: "x", scopeCeiling: "read:records:*", audiences: ["ehr-api"] })).rejects.toThrow(/request.scopeCeiling must be an array/);
    await expect(bad.createApp!(op, { name: "x", scopeCeiling: [], audiences: [], maxDelegationDepth: 1.5 })).rejects.toThrow(/request.maxDelegationDepth must be an integer/);
    await expect(bad.updateApp!(op, { appId: "app_x", audiences: "ehr-api" })).rejects.toThrow(/request.audiences must be an array/);
    await expect(bad.getApp!(op, 42)).rejects.toThrow(/appId must be a string, not number/);
    await expect(bad.listApps!(op, { pageSize: -1 })).rejects.toThrow(/page.pageSize must be an integer/);
    // The admin service takes only the operator credential.
    await expect(bad.getApp!(app, app.clientId)).rejects.toThrow(/operatorToken/);
    await expect(bad.verifyAuditLog!(null)).rejects.toThrow(TypeError);
  });
});

describe("BrokerClient.revokeMany", () => {
  it("revokes every target at once for an app, in request order", async () => {
    const [t1, t2] = [await issue(app, "bulk-1"), await issue(app, "bulk-2")];
    const revs = await broker.revokeMany(app, [
      { target: "token", id: t1.claims.tokenId, reason: "incident" },
      { target: RevocationTarget.REVOCATION_TARGET_TASK, id: "bulk-2" },
    ]);
    expect(revs.map((r) => [r.target, r.id])).toEqual([
      [RevocationTarget.REVOCATION_TARGET_TOKEN, t1.claims.tokenId],
      [RevocationTarget.REVOCATION_TARGET_TASK, "bulk-2"],
    ]);
    for (const t of [t1, t2]) expect((await broker.validate(app, { token: t.accessToken, audience: "ehr-api" })).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("revokes nothing when one target is refused, naming its index", async () => {
    const { credentials: other } = await admin.createApp(op, { name: "other", scopeCeiling: ["read:records:*"], audiences: ["ehr-api"] });
    const mine = await issue(app, "bulk-3");
    const e = await refusal(broker.revokeMany(app, [{ target: "token", id: mine.claims.tokenId }, { target: "app", id: other.clientId }]));
    // Another app's id is "not found" for an app: its existence is not revealed.
    expect([e.code, e.reason]).toEqual([status.NOT_FOUND, "NOT_FOUND"]);
    expect(e.metadata.index).toBe("1");
    // All or nothing: the first target was not revoked.
    expect((await broker.validate(app, { token: mine.accessToken, audience: "ehr-api" })).valid).toBe(true);
  });

  it("takes operator credentials, for any app's targets", async () => {
    const token = await issue(app, "bulk-4");
    const [r] = await broker.revokeMany(op, [{ target: "task", id: "bulk-4", appId: app.clientId }]);
    expect(r!.target).toBe(RevocationTarget.REVOCATION_TARGET_TASK);
    expect((await broker.validate(op, { token: token.accessToken, audience: "ehr-api" })).valid).toBe(false);
  });

  it("checks its arguments before anything is sent", async () => {
    const bad = broker as unknown as { revokeMany: (...a: unknown[]) => Promise<unknown> };
    await expect(bad.revokeMany(app, { target: "token", id: "x" })).rejects.toThrow(/targets must be an array/);
    await expect(bad.revokeMany(app, [])).rejects.toThrow(/1 to 1000/);
    const many = Array.from({ length: MAX_REVOKE_MANY_TARGETS + 1 }, () => ({ target: "token", id: "x" }));
    await expect(bad.revokeMany(app, many)).rejects.toThrow(/not 1001/);
    await expect(bad.revokeMany(app, [{ target: "token", id: "x" }, { target: "constructor", id: "y" }])).rejects.toThrow(/targets\[1\].target: unknown/);
    await expect(bad.revokeMany(app, [{ target: "token", id: 7 }])).rejects.toThrow(/targets\[0\].id must be a string/);
    await expect(bad.revokeMany(app, ["token"])).rejects.toThrow(/targets\[0\] must be an object/);
  });
});

describe("RATE_LIMITED from the broker", () => {
  it("carries the wait before the next accepted request as retryAfterMs", async () => {
    const { credentials: slow } = await admin.createApp(op, {
      name: "slow",
      scopeCeiling: ["read:records:*"],
      audiences: ["ehr-api"],
      rateLimitPerSecond: 1,
      rateLimitBurst: 1,
    });
    let e: BatonError | undefined;
    // One request per second with a burst of one: the second of two quick calls is refused
    // (a few tries in case a loaded machine spaces them a second apart).
    for (let i = 0; i < 5 && !e; i++) {
      try {
        await issue(slow, `rl-${i}`);
      } catch (err) {
        e = err as BatonError;
      }
    }
    expect(e).toBeInstanceOf(BatonError);
    expect([e!.code, e!.reason, e!.errorReason]).toEqual([status.RESOURCE_EXHAUSTED, "RATE_LIMITED", ErrorReason.ERROR_REASON_RATE_LIMITED]);
    expect(e!.retryAfterMs).toBeGreaterThan(0);
    expect(e!.retryAfterMs).toBeLessThanOrEqual(1000);
  });
});

describe("AUTHENTICATION_THROTTLED from the broker", () => {
  it("carries the wait until authentications from this address are looked at again", async () => {
    // A broker of its own: throttling counts per address, and every test here shares 127.0.0.1.
    const t = await startTestBroker({ BATON_AUTH_FAILURES: "2", BATON_AUTH_FAILURE_WINDOW_SECONDS: "60" });
    const c = new BrokerClient(t.address);
    try {
      const wrong = { clientId: "app_doesnotexist", clientSecret: "wrong" };
      let e: BatonError | undefined;
      for (let i = 0; i < 6 && e?.reason !== "AUTHENTICATION_THROTTLED"; i++) e = await refusal(c.validate(wrong, { token: "a.b.c", audience: "ehr-api" }));
      expect([e!.code, e!.reason, e!.errorReason]).toEqual([
        status.RESOURCE_EXHAUSTED,
        "AUTHENTICATION_THROTTLED",
        ErrorReason.ERROR_REASON_AUTHENTICATION_THROTTLED,
      ]);
      expect(e!.retryAfterMs).toBeGreaterThan(0);
      expect(e!.retryAfterMs).toBeLessThanOrEqual(60_000);
    } finally {
      c.close();
      await t.stop();
    }
  });
});
