// AdminClient.listAuditEvents and allAuditEvents against a real broker on
// 127.0.0.1:0: filters, pages, a page token refused with other filters,
// and argument checks before anything is sent.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import { AdminClient, BatonError, BrokerClient, type AppCredentials, type OperatorCredentials } from "../src/index.js";

/** Node 20 has no Array.fromAsync. */
async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const op: OperatorCredentials = { operatorToken: OPERATOR_TOKEN };
let b: TestBroker;
let admin: AdminClient;
let broker: BrokerClient;
let app: AppCredentials;
let appId: string;

beforeAll(async () => {
  b = await startTestBroker();
  admin = new AdminClient(b.address);
  broker = new BrokerClient(b.address);
  const created = await admin.createApp(op, { name: "audited", scopeCeiling: ["read:records:*"], audiences: ["ehr-api"] });
  app = created.credentials;
  appId = created.app.appId;
  for (let i = 0; i < 5; i++) {
    await broker.issue(app, { taskId: `ts-${i}`, humanPrincipal: i % 2 === 0 ? "user:even" : "user:odd", scopes: ["read:records:P-1"], audiences: ["ehr-api"] });
  }
});
afterAll(async () => {
  admin?.close();
  broker?.close();
  await b?.stop();
});

describe("AdminClient audit events", () => {
  it("lists a filtered page, and walks every page with allAuditEvents", async () => {
    const page = await admin.listAuditEvents(op, { appId, kinds: ["token.issued"] }, { pageSize: 2 });
    expect(page.events.map((e) => e.taskId)).toEqual(["ts-0", "ts-1"]);
    expect(page.nextPageToken).not.toBe("");
    const next = await admin.listAuditEvents(op, { appId, kinds: ["token.issued"] }, { pageSize: 2, pageToken: page.nextPageToken });
    expect(next.events.map((e) => e.taskId)).toEqual(["ts-2", "ts-3"]);

    const even: string[] = [];
    for await (const e of admin.allAuditEvents(op, { humanPrincipal: "user:even" }, { pageSize: 1 })) even.push(e.taskId);
    expect(even).toEqual(["ts-0", "ts-2", "ts-4"]);
    const [first] = await collect(admin.allAuditEvents(op, { taskId: "ts-3" }));
    expect(first).toMatchObject({ kind: "token.issued", actor: `app:${appId}`, humanPrincipal: "user:odd", outcome: "ok", credentialLifetime: { seconds: 300, nanos: 0 } });
    const later = await collect(admin.allAuditEvents(op, { appId, afterSeq: first!.seq, startTime: new Date(0), endTime: new Date(Date.now() + 60_000) }));
    expect(later.map((e) => e.taskId)).toEqual(["ts-4"]);
  });

  it("a page token with other filters is refused as INVALID_REQUEST", async () => {
    const page = await admin.listAuditEvents(op, { appId }, { pageSize: 1 });
    const err = await admin.listAuditEvents(op, { taskId: "ts-1" }, { pageToken: page.nextPageToken }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatonError);
    expect((err as BatonError).reason).toBe("INVALID_REQUEST");
  });

  it("checks its arguments before sending anything", async () => {
    const bad = admin as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
    await expect(bad.listAuditEvents!(op, { kinds: "token.issued" })).rejects.toThrow(/filter.kinds must be an array/);
    await expect(bad.listAuditEvents!(op, { appId: 7 })).rejects.toThrow(/filter.appId must be a string/);
    await expect(bad.listAuditEvents!(op, { startTime: "2026-01-01" })).rejects.toThrow(/filter.startTime must be a valid Date/);
    await expect(bad.listAuditEvents!(op, { afterSeq: -1 })).rejects.toThrow(/filter.afterSeq must be a whole number/);
    await expect(bad.listAuditEvents!(op, {}, { pageSize: 1.5 })).rejects.toThrow(/page.pageSize must be an integer/);
    await expect(bad.listAuditEvents!(app, {})).rejects.toThrow(/operator must be \{ operatorToken \}/);
    await expect(bad.listAuditEvents!(op, null)).rejects.toThrow(TypeError);
  });
});
