// WatchApproval across replicas and at shutdown (issue 8): two brokers on
// one database; a watch open on one sees a decision made through the other
// (NOTIFY on baton_approvals wakes it), and stopping a broker ends its
// watches with SHUTTING_DOWN instead of leaving them hanging.

import { afterAll, beforeAll, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { ApprovalState } from "../../server/gen/baton/v1/approvals.js";
import { approvalClient, createApprover, createPolicyApp, rule, type TestApprover, watch } from "../helpers/approvals.js";
import { call, issueRequest, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";

const MASTER = MasterKey.generate();
let database: TestDatabase;
let a: TestBroker;
let b: TestBroker;
let app: TestApp;
let approver: TestApprover;

beforeAll(async () => {
  database = await freshDatabase();
  a = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  b = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  app = await createPolicyApp(a, ["write:*:*"], [rule("write:prescriptions:*", "dangerous", 2, "pharmacists")]);
  approver = await createApprover(a, ["pharmacists"]);
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await database?.drop();
});

const ask = async (broker: TestBroker, taskId: string): Promise<string> =>
  (await refusal(call(broker.client.issue, broker.client, issueRequest({ taskId, scopes: ["write:prescriptions:P-1042"] }), app.md))).metadata.approval_id!;

it("a watch on one replica sees each decision made through another", async () => {
  const approvalId = await ask(b, "cross");
  const onA = approvalClient(a);
  const onB = approvalClient(b);
  const second = await createApprover(a, ["pharmacists"]);
  const w = watch(onA, approvalId, app.md);
  await w.waitFor(1);
  const gauge = async (): Promise<number> => Number(/^baton_approval_watches (\d+)$/m.exec(await (await fetch(`${a.httpUrl}/metrics`)).text())?.[1]);
  expect(await gauge()).toBe(1);
  await call(onB.approve, onB, { approvalId, reason: "first" }, approver.md);
  // Still pending, one decision more: sent, and the watch stays open.
  await w.waitFor(2);
  expect(w.states[1]!.state).toBe(ApprovalState.APPROVAL_STATE_PENDING);
  expect(w.states[1]!.decisions).toHaveLength(1);
  expect(w.ended).toBeNull();
  await call(onB.approve, onB, { approvalId, reason: "second" }, second.md);
  await w.waitEnd();
  expect(w.ended).toBe("end");
  expect(w.states.map((s) => s.state)).toEqual([ApprovalState.APPROVAL_STATE_PENDING, ApprovalState.APPROVAL_STATE_PENDING, ApprovalState.APPROVAL_STATE_APPROVED]);
  expect(await gauge()).toBe(0);
  onA.close();
  onB.close();
});

it("stopping a broker ends its watches with SHUTTING_DOWN", async () => {
  const approvalId = await ask(a, "shutdown");
  const third = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  const client = approvalClient(third);
  const w = watch(client, approvalId, app.md);
  await w.waitFor(1);
  await third.broker.stop();
  await w.waitEnd();
  expect((w.ended as { reason: string }).reason).toBe("SHUTTING_DOWN");
  client.close();
  third.client.close();
  third.admin.close();
});
