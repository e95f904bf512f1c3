// BrokerClient.renew against a real broker (test/helpers/broker.ts): the
// renewed credential is usable for the next calls (with its key when
// key-bound), its claims name the old token, the old token is refused by the
// verifier once the stream brings its revocation, the verifier exposes
// `renewedFromTokenId`, the task lifetime maximum ends the line as a
// BatonError, and bad arguments are TypeErrors before any call.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import {
  AdminClient,
  AgentKey,
  BatonError,
  BrokerClient,
  RevocationSubscriber,
  TokenVerifier,
  type AgentCredential,
  type AppCredentials,
  type VerifyResult,
} from "../src/index.js";

let b: TestBroker;
let app: AppCredentials;
let appId: string;
let client: BrokerClient;
let subscriber: RevocationSubscriber;
let verifier: TokenVerifier;
let admin: AdminClient;
const operator = { operatorToken: OPERATOR_TOKEN };

async function eventually(fn: () => Promise<boolean>, ms = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const reasonOf = (r: VerifyResult): string => (r.ok ? "OK" : r.reason);

beforeAll(async () => {
  b = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
  const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxTtlSeconds: 600 });
  appId = a.appId;
  app = { clientId: a.appId, clientSecret: a.secret };
  client = new BrokerClient(b.address);
  admin = new AdminClient(b.address);
  subscriber = new RevocationSubscriber({ target: b.address, caller: app, backoffBaseMs: 50, backoffMaxMs: 500 });
  subscriber.start();
  await subscriber.ready();
  verifier = new TokenVerifier({ audience: "ehr-api", issuer: "https://baton.local", keys: client, revocations: subscriber, maxStalenessMs: 5000 });
});
afterAll(async () => {
  verifier?.close();
  subscriber?.close();
  client?.close();
  admin?.close();
  await b?.stop();
});

const issue = (agentKey?: AgentKey) =>
  client.issue(app, { taskId: "task-r", scopes: ["read:records:P-1"], audiences: ["ehr-api"], humanPrincipal: "user:alice", ...(agentKey ? { agentKey } : {}) });

async function refusal(p: Promise<unknown>): Promise<BatonError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BatonError);
    return err as BatonError;
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

describe("renew", () => {
  it("returns a credential for the same agent naming the old token; the verifier refuses the old one and exposes renewedFromTokenId", async () => {
    const first = await issue();
    const r = await client.renew(first.credential, { ttlSeconds: 120 });
    expect(r.claims.renewedFromTokenId).toBe(first.claims.tokenId);
    expect(r.claims.agentId).toBe(first.claims.agentId);
    expect(r.claims.scopes).toEqual(first.claims.scopes);
    expect(r.credential).toEqual({ token: r.accessToken });
    const v = await verifier.verify(r.accessToken);
    expect(v.ok).toBe(true);
    if (v.ok) {
      expect(v.claims.renewedFromTokenId).toBe(first.claims.tokenId);
      expect(v.claims.rootIssuedAtMs).toBe(first.claims.issueTime!.getTime());
    }
    const orig = await verifier.verify(first.accessToken);
    if (orig.ok) expect(orig.claims.renewedFromTokenId).toBeNull();
    await eventually(async () => reasonOf(await verifier.verify(first.accessToken)) === "REVOKED", 10_000, "the old token REVOKED");
    // The renewed credential works for the next call.
    const again = await client.renew(r.credential);
    expect(again.claims.renewedFromTokenId).toBe(r.claims.tokenId);
    expect((await refusal(client.renew(r.credential))).reason).toBe("TOKEN_INVALID");
  });

  it("a key-bound credential renews with a proof, and the new credential carries the same key", async () => {
    const key = await AgentKey.generate();
    const first = await issue(key);
    const bare: AgentCredential = { token: first.accessToken };
    expect((await refusal(client.renew(bare))).reason).toBe("PROOF_REQUIRED");
    const r = await client.renew(first.credential);
    expect(r.credential.key).toBe(key);
    expect(r.claims.keyThumbprint).toBe(first.claims.keyThumbprint);
    const r2 = await client.renew(r.credential);
    expect(r2.claims.renewedFromTokenId).toBe(r.claims.tokenId);
  });

  it("the task lifetime maximum (set with AdminClient) ends the line with TASK_LIFETIME_EXCEEDED", async () => {
    const updated = await admin.updateApp(operator, { appId, maxTaskSeconds: 1 });
    expect(updated.app.maxTaskLifetime).toEqual({ seconds: 1, nanos: 0 });
    await expect(admin.updateApp(operator, { appId, maxTaskSeconds: "1" as unknown as number })).rejects.toThrow(/request.maxTaskSeconds/);
    try {
      const t = await issue();
      await new Promise((r) => setTimeout(r, 1100));
      const e = await refusal(client.renew(t.credential));
      expect(e.reason).toBe("TASK_LIFETIME_EXCEEDED");
      expect(e.metadata.task_expire_time).toBe(new Date(t.claims.issueTime!.getTime() + 1000).toISOString());
    } finally {
      await admin.updateApp(operator, { appId, maxTaskSeconds: 3600 });
    }
    const created = await admin.createApp(operator, { name: `ts-renew-${Date.now()}`, scopeCeiling: ["read:records:*"], audiences: ["ehr-api"], maxTaskSeconds: 60 });
    expect(created.app.maxTaskLifetime).toEqual({ seconds: 60, nanos: 0 });
  });

  it("bad arguments are TypeErrors, before any call", async () => {
    const t = await issue();
    await expect(client.renew(null as unknown as AgentCredential)).rejects.toThrow(TypeError);
    await expect(client.renew({} as AgentCredential)).rejects.toThrow(TypeError);
    await expect(client.renew(t.credential, null as never)).rejects.toThrow(TypeError);
    await expect(client.renew(t.credential, { ttlSeconds: "60" as unknown as number })).rejects.toThrow(/request.ttlSeconds/);
    await expect(client.renew(t.credential, { allowTtlClamp: "yes" as unknown as boolean })).rejects.toThrow(/request.allowTtlClamp/);
    // Nothing was sent: the token still renews.
    await client.renew(t.credential);
  });
});
