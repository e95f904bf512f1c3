// ReportAccess over real gRPC on real PostgreSQL: a batch becomes audit
// events carrying the token's lineage from the grants table; a refused batch
// (unknown token, wrong agent, audience not served, oversized, bad fields,
// a caller that is not a resource server) stores nothing; batches are
// charged to the resource server's rate limit.

import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AccessReport, IssueResponse } from "../../server/gen/baton/v1/broker.js";
import { agentMd } from "../helpers/agent-key.js";
import { basic, call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let app: TestApp;
let rs: { id: string; md: ReturnType<typeof basic> };

beforeAll(async () => {
  b = await startTestBroker({ BATON_APP_RATE_PER_SECOND: "100000", BATON_APP_BURST: "100000" });
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api", "lab-api"], maxDelegationDepth: 3 });
  rs = await createRs(["ehr-api"]);
});
afterAll(async () => b?.stop());

async function createRs(audiences: string[], broker = b) {
  const res = await call(broker.admin.createResourceServer, broker.admin, { name: `rs-${Math.random().toString(36).slice(2, 10)}`, audiences }, operatorMd());
  return { id: res.resourceServer!.resourceServerId, md: basic(res.resourceServer!.resourceServerId, res.clientSecret) };
}

const delegate = (parent: IssueResponse) =>
  call(b.client.delegate, b.client, { scopes: ["read:records:P-1042"], audiences: [], ttl: undefined, agentPublicKeyJwk: "", allowTtlClamp: false, approvalId: "" }, agentMd(parent.accessToken));

function report(t: IssueResponse, over: Partial<AccessReport> = {}): AccessReport {
  return {
    tokenId: t.claims!.tokenId,
    agentId: t.claims!.agentId,
    audience: "ehr-api",
    scope: "read:records:P-1042",
    resource: "GET /records/P-1042",
    allowed: true,
    reason: "",
    outcome: "200",
    decideTime: new Date(),
    ...over,
  };
}

const reportAccess = (reports: AccessReport[], md = rs.md) => call(b.client.reportAccess, b.client, { reports }, md);

interface Stored {
  seq: string;
  kind: string;
  app_id: string;
  request_id: string;
  payload: string;
}
async function accessEvents(): Promise<Stored[]> {
  const { rows } = await b.database.db.query<Stored>("SELECT seq, kind, app_id, request_id, payload FROM audit_events WHERE kind LIKE 'access.%' ORDER BY seq");
  return rows;
}
const auditCount = async () => Number((await b.database.db.query<{ n: string }>("SELECT count(*) AS n FROM audit_events")).rows[0]!.n);

describe("ReportAccess", () => {
  it("stores each report as an audit event with the token's lineage, human, task and the resource server's decision", async () => {
    const root = await call(b.client.issue, b.client, issueRequest({ taskId: "visit-77", humanPrincipal: "dr-jane", orchestrationId: "run-9", scopes: ["read:records:*"] }), app.md);
    const child = await delegate(root);
    const before = (await accessEvents()).length;
    const decided = new Date(Date.now() - 1000);
    const res = await reportAccess([
      report(child, { decideTime: decided }),
      report(child, { allowed: false, reason: "TOKEN_STATUS_INSUFFICIENT_SCOPE", scope: "write:records:P-1042", resource: "PUT /records/P-1042", outcome: "403" }),
      report(root, { scope: "", resource: "", outcome: "" }),
    ]);
    expect(res.accepted).toBe(3);

    const events = (await accessEvents()).slice(before);
    expect(events.map((e) => e.kind)).toEqual(["access.allowed", "access.denied", "access.allowed"]);
    // One batch, one transaction: the same request id, consecutive sequence numbers.
    expect(new Set(events.map((e) => e.request_id)).size).toBe(1);
    expect(events.map((e) => BigInt(e.seq) - BigInt(events[0]!.seq))).toEqual([0n, 1n, 2n]);
    const [allowed, denied, rootEvent] = events.map((e) => JSON.parse(e.payload) as { actor: string; app_id: string; data: Record<string, unknown> });
    expect(allowed!.actor).toBe(`resource_server:${rs.id}`);
    expect(allowed!.app_id).toBe(app.appId);
    expect(allowed!.data).toEqual({
      token_id: child.claims!.tokenId,
      agent_id: child.claims!.agentId,
      task_id: "visit-77",
      orchestration_id: "run-9",
      human: "dr-jane",
      // The ancestors, root first, from the grants table.
      lineage: [{ token_id: root.claims!.tokenId, agent_id: root.claims!.agentId }],
      scopes: ["read:records:P-1042"],
      audiences: ["ehr-api"],
      resource_server_id: rs.id,
      resource: "GET /records/P-1042",
      allowed: true,
      reason: null,
      outcome: "200",
      decide_time: decided.toISOString(),
    });
    expect(denied!.data).toMatchObject({ allowed: false, reason: "TOKEN_STATUS_INSUFFICIENT_SCOPE", outcome: "403", scopes: ["write:records:P-1042"] });
    expect(rootEvent!.data).toMatchObject({ token_id: root.claims!.tokenId, lineage: [], scopes: [], resource: null, outcome: null });

    const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^baton_access_reports_total 3$/m);

    // The chain still verifies with the new events in it.
    const verified = await call(b.admin.verifyAuditLog, b.admin, {}, operatorMd());
    expect(verified.intact).toBe(true);
  });

  it("answers 'human H, through agents A then B, did X at resource Y' from one query over the audit trail", async () => {
    const a = await call(b.client.issue, b.client, issueRequest({ taskId: "q-1", humanPrincipal: "human-h", scopes: ["read:records:*"] }), app.md);
    const bb = await delegate(a);
    await reportAccess([report(bb, { resource: "GET /records/Y" })]);
    const { rows } = await b.database.db.query<{ agent: string; chain: string }>(
      `SELECT payload::jsonb #>> '{data,agent_id}' AS agent, payload::jsonb #> '{data,lineage}' AS chain FROM audit_events
       WHERE kind = 'access.allowed' AND payload::jsonb #>> '{data,human}' = 'human-h' AND payload::jsonb #>> '{data,resource}' = 'GET /records/Y'`,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.agent).toBe(bb.claims!.agentId);
    expect(rows[0]!.chain).toEqual([{ token_id: a.claims!.tokenId, agent_id: a.claims!.agentId }]);
  });

  describe("refuses the whole batch, storing nothing", () => {
    let t: IssueResponse;
    beforeAll(async () => {
      t = await call(b.client.issue, b.client, issueRequest({ taskId: "refused", scopes: ["read:records:*"] }), app.md);
    });

    const refusedCases: [string, () => AccessReport[], number, string, Record<string, string>?][] = [
      ["an unknown token", () => [report(t), report(t, { tokenId: "no-such-token" })], status.NOT_FOUND, "NOT_FOUND", { index: "1" }],
      ["a report naming another agent", () => [report(t, { agentId: "spiffe://baton.local/app/x/task/y/agent/z" })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].agent_id" }],
      ["an audience the resource server does not serve", () => [report(t), report(t, { audience: "lab-api" })], status.PERMISSION_DENIED, "AUDIENCE_NOT_SERVED", { index: "1" }],
      ["a missing token id", () => [report(t, { tokenId: "" })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].token_id" }],
      ["a missing agent id", () => [report(t, { agentId: "" })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].agent_id" }],
      ["a missing audience", () => [report(t, { audience: "" })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].audience" }],
      ["a missing decide time", () => [report(t, { decideTime: undefined })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].decide_time" }],
      ["a decide time an hour ahead", () => [report(t, { decideTime: new Date(Date.now() + 3_600_000) })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].decide_time" }],
      ["a resource over 512 characters", () => [report(t, { resource: "x".repeat(513) })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].resource" }],
      ["a reason over 128 characters", () => [report(t, { allowed: false, reason: "r".repeat(129) })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].reason" }],
      ["an outcome over 128 characters", () => [report(t, { outcome: "o".repeat(129) })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].outcome" }],
      ["a control character in the resource", () => [report(t, { resource: "GET /a\nb" })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].resource" }],
      ["a NUL character", () => [report(t, { resource: "GET /a\u0000b" })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports.resource" }],
      ["a token id over 128 characters", () => [report(t, { tokenId: "t".repeat(129) })], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports[0].token_id" }],
      ["a malformed scope", () => [report(t, { scope: "read" })], status.INVALID_ARGUMENT, "INVALID_SCOPE", { index: "0" }],
      ["an empty batch", () => [], status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports" }],
      ["a batch of 501", () => Array.from({ length: 501 }, () => report(t)), status.INVALID_ARGUMENT, "INVALID_REQUEST", { field: "reports" }],
    ];
    for (const [what, reports, code, reason, details] of refusedCases) {
      it(what, async () => {
        const before = await auditCount();
        const e = await refusal(reportAccess(reports()));
        expect([e.code, e.reason]).toEqual([code, reason]);
        if (details) expect(e.metadata).toMatchObject(details);
        expect(await auditCount()).toBe(before);
      });
    }

    it("from callers that are not resource servers (app, agent, operator): NOT_PERMITTED", async () => {
      const before = await auditCount();
      for (const md of [app.md, agentMd(t.accessToken), operatorMd()]) {
        const e = await refusal(reportAccess([report(t)], md));
        expect([e.code, e.reason]).toEqual([status.PERMISSION_DENIED, "NOT_PERMITTED"]);
      }
      expect(await auditCount()).toBe(before);
    });

    it("with wrong resource-server credentials: CREDENTIALS_INVALID", async () => {
      const e = await refusal(reportAccess([report(t)], basic(rs.id, "wrong-secret")));
      expect([e.code, e.reason]).toEqual([status.UNAUTHENTICATED, "CREDENTIALS_INVALID"]);
    });

    it("accepts a full batch of 500 in one call", async () => {
      const before = (await accessEvents()).length;
      const res = await reportAccess(Array.from({ length: 500 }, () => report(t)));
      expect(res.accepted).toBe(500);
      expect((await accessEvents()).length - before).toBe(500);
    });
  });

  it("charges one rate-limit token per batch to the resource server", async () => {
    const limited = await startTestBroker({ BATON_APP_RATE_PER_SECOND: "1", BATON_APP_BURST: "2" });
    try {
      const a = await createApp(limited, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
      const r = await createRs(["ehr-api"], limited);
      const t = await call(limited.client.issue, limited.client, issueRequest({ scopes: ["read:records:*"] }), a.md);
      const send = () => call(limited.client.reportAccess, limited.client, { reports: Array.from({ length: 50 }, () => report(t)) }, r.md);
      expect((await send()).accepted).toBe(50);
      expect((await send()).accepted).toBe(50);
      const e = await refusal(send());
      expect([e.code, e.reason]).toEqual([status.RESOURCE_EXHAUSTED, "RATE_LIMITED"]);
      expect(e.metadata).toMatchObject({ resource_server_id: r.id });
    } finally {
      await limited.stop();
    }
  });
});
