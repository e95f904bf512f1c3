// Hostile input and semantics, part two (issue 7 items 6, 7, 8, 11, 13):
// each refusal is a clean status with an ErrorInfo reason, the server stays
// up and serving, and the broker's answers mean what the contract says.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IssueRequest, RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { call, createApp, issueRequest, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { openStream } from "../helpers/stream.js";

let b: TestBroker;
let app: TestApp;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const issue = (over: Partial<IssueRequest> = {}, broker = b, caller = app) =>
  call(broker.client.issue, broker.client, issueRequest({ scopes: ["read:records:P-1"], ...over }), caller.md);
const validate = (token: string, broker = b, caller = app) =>
  call(broker.client.validate, broker.client, { token, audience: "ehr-api", requiredScopes: [] }, caller.md);
const revoke = (target: RevocationTarget, id: string, caller = app, appId = "") =>
  call(b.client.revoke, b.client, { target, id, appId, reason: "" }, caller.md);

beforeAll(async () => {
  b = await startTestBroker();
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
});
afterAll(async () => b?.stop());

describe("expiry: the broker's own checks allow replica skew, not a verifier's leeway (item 11)", () => {
  it("a 2 s token is valid before exp and EXPIRED by exp + skew (2 s) + 1 s", async () => {
    const t = await issue({ ttl: { seconds: 2, nanos: 0 } });
    const exp = t.claims!.expireTime!.getTime();
    expect((await validate(t.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    await sleep(exp + 2_000 + 1_000 - Date.now());
    const v = await validate(t.accessToken);
    expect(v.status).toBe(TokenStatus.TOKEN_STATUS_EXPIRED);
    expect(v.valid).toBe(false);
  });

  it("a revocation stays live 30 s past the token's exp, whatever BATON_LEEWAY_SECONDS says, for offline verifiers' leeway", async () => {
    const t = await issue();
    const r = await revoke(RevocationTarget.REVOCATION_TARGET_TOKEN, t.claims!.tokenId);
    expect(r.revocation!.expireTime!.getTime() - t.claims!.expireTime!.getTime()).toBe(30_000);
    const zero = await startTestBroker({ BATON_LEEWAY_SECONDS: "0" });
    try {
      const a = await createApp(zero, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
      const t2 = await issue({}, zero, a);
      const r2 = await call(zero.client.revoke, zero.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: t2.claims!.tokenId, appId: "", reason: "" }, a.md);
      expect(r2.revocation!.expireTime!.getTime() - t2.claims!.expireTime!.getTime()).toBe(30_000);
    } finally {
      await zero.stop();
    }
  });
});

describe("task ids may contain : / @ as the contract says (item 13)", () => {
  it.each(["org/visit-77", "encounter:P-1042", "a@b"])("%s: issued, revoked by task, revoked on the stream", async (taskId) => {
    const stream = openStream(b.client, "", app.md);
    try {
      await stream.waitFor((s) => s.events.some((e) => e.snapshotComplete), 10_000, "the snapshot");
      const t = await issue({ taskId });
      expect(t.claims!.taskId).toBe(taskId);
      // The task stays one segment of the agent id.
      expect(t.claims!.agentId).toContain(`/task/${encodeURIComponent(taskId)}/agent/`);
      expect(t.claims!.agentId.split("/")).toHaveLength(9);
      expect((await validate(t.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);

      const r = await revoke(RevocationTarget.REVOCATION_TARGET_TASK, taskId);
      expect(r.revocation).toMatchObject({ target: RevocationTarget.REVOCATION_TARGET_TASK, id: taskId, appId: app.appId });
      expect((await validate(t.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
      await stream.waitFor((s) => s.events.some((e) => e.revocation?.cursor === r.revocation!.cursor), 10_000, "the task revocation");
      const sent = stream.events.find((e) => e.revocation?.cursor === r.revocation!.cursor)!.revocation!;
      expect(sent).toMatchObject({ target: RevocationTarget.REVOCATION_TARGET_TASK, id: taskId, appId: app.appId });

      // The agent id, with its encoded task, revokes by agent too.
      const t2 = await issue({ taskId });
      await revoke(RevocationTarget.REVOCATION_TARGET_AGENT, t2.claims!.agentId);
      expect((await validate(t2.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    } finally {
      stream.cancel();
    }
  });
});
