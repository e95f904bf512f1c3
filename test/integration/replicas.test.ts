// Two brokers on one database: a revocation made through either reaches the
// other's Validate (by the catch-up poll; LISTEN/NOTIFY and the stream come
// with StreamRevocations). Tokens issued by one validate on the other.

import { afterAll, beforeAll, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { type IssueRequest, RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { call, createApp, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";

const MASTER = MasterKey.generate();
let database: TestDatabase;
let a: TestBroker;
let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  database = await freshDatabase();
  a = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  b = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  app = await createApp(a, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await database?.drop();
});

const req: IssueRequest = {
  taskId: "t", orchestrationId: "", humanPrincipal: "", scopes: ["read:records:P-1"], audiences: ["ehr-api"],
  ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "",
};
const statusAt = async (broker: TestBroker, token: string) =>
  (await call(broker.client.validate, broker.client, { token, audience: "ehr-api", requiredScopes: [] }, app.md)).status;

async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < withinMs) {
    if (await check()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`not true within ${withinMs} ms`);
}

it("both replicas publish the same key set and validate each other's tokens", async () => {
  const ka = (await call(a.client.getKeySet, a.client, {})).jwksJson;
  const kb = (await call(b.client.getKeySet, b.client, {})).jwksJson;
  expect(JSON.parse(ka)).toEqual(JSON.parse(kb));
  const t = await call(a.client.issue, a.client, req, app.md);
  expect(await statusAt(b, t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
});

it("a revocation through one replica reaches the other's Validate", async () => {
  const t = await call(a.client.issue, a.client, req, app.md);
  const u = await call(b.client.issue, b.client, req, app.md);
  await call(a.client.revoke, a.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: t.claims!.tokenId, appId: "", reason: "" }, app.md);
  await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: u.claims!.tokenId, appId: "", reason: "" }, app.md);
  expect(await statusAt(a, t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  expect(await statusAt(b, u.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  // The catch-up interval is 500 ms; allow a generous bound on a loaded machine.
  await eventually(async () => (await statusAt(b, t.accessToken)) === TokenStatus.TOKEN_STATUS_REVOKED, 5000);
  await eventually(async () => (await statusAt(a, u.accessToken)) === TokenStatus.TOKEN_STATUS_REVOKED, 5000);
});

it("an app disabled through one replica cannot issue through the other", async () => {
  const other = await createApp(a, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
  await call(b.client.issue, b.client, req, other.md); // b has the app cached now
  const { operatorMd } = await import("../helpers/broker.js");
  await call(a.admin.disableApp, a.admin, { appId: other.appId, reason: "" }, operatorMd());
  // b's cache may still say enabled; the commit-time check refuses anyway.
  const err = await call(b.client.issue, b.client, req, other.md).then(() => null, (e: unknown) => e);
  expect(err).not.toBeNull();
});
