// ListAuditEvents end to end: every filter alone and combined, what each
// event kind answers, stable pagination while the trail grows, page tokens
// bound to their query, operator only, hostile filters, and no secret in
// any event returned.

import { Client, credentials, type Metadata, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AuditEvent, ListAuditEventsRequest } from "../../server/gen/baton/v1/admin.js";
import { RevocationTarget } from "../../server/gen/baton/v1/broker.js";
import { agentMd, TestAgentKey } from "../helpers/agent-key.js";
import { bearer, call, createApp, decodeError, issueRequest, OPERATOR_TOKEN, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let appA: TestApp;
let appB: TestApp;
const secrets: string[] = [OPERATOR_TOKEN];

const req = (over: Partial<ListAuditEventsRequest> = {}): ListAuditEventsRequest => ({
  appId: "", taskId: "", agentId: "", humanPrincipal: "", kinds: [], startTime: undefined, endTime: undefined,
  afterSeq: 0, tokenId: "", pageSize: 0, pageToken: "", ...over,
});

const list = (over: Partial<ListAuditEventsRequest> = {}, md: Metadata = operatorMd()) => call(b.admin.listAuditEvents, b.admin, req(over), md);

/** Every event matching, through all pages. */
async function listAll(over: Partial<ListAuditEventsRequest> = {}): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let pageToken = "";
  do {
    const r = await list({ ...over, pageSize: 7, pageToken });
    out.push(...r.events);
    pageToken = r.nextPageToken;
  } while (pageToken);
  return out;
}

const issue = (app: TestApp, taskId: string, human: string, over: Parameters<typeof issueRequest>[0] = {}) =>
  call(b.client.issue, b.client, issueRequest({ taskId, humanPrincipal: human, orchestrationId: "orch-9", ttl: { seconds: 120, nanos: 0 }, ...over }), app.md);

// The story the filters are checked against.
let t1: Awaited<ReturnType<typeof issue>>;
let t2: Awaited<ReturnType<typeof issue>>;
let tB: Awaited<ReturnType<typeof issue>>;
let child: Awaited<ReturnType<typeof issue>>;
let middle: Date;

beforeAll(async () => {
  b = await startTestBroker();
  appA = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api", "lab-api"] });
  appB = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
  secrets.push(appA.secret, appB.secret);
  const key = await TestAgentKey.generate();
  t1 = await issue(appA, "task-1", "user:alice", { scopes: ["read:records:P-1", "read:records:P-2"], audiences: ["ehr-api", "lab-api"], agentPublicKeyJwk: key.jwkJson });
  const proof = await key.proof(t1.accessToken);
  secrets.push(t1.accessToken, proof, JSON.stringify(key.publicJwk));
  child = await call(b.client.delegate, b.client, {
    scopes: ["read:records:P-1"], audiences: ["ehr-api"], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "",
  }, agentMd(t1.accessToken, proof));
  secrets.push(child.accessToken);
  // A child may not widen: refused, and recorded with what it asked.
  await refusal(call(b.client.delegate, b.client, {
    scopes: ["read:records:P-3"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "",
  }, bearer(child.accessToken)));
  await new Promise((r) => setTimeout(r, 20));
  middle = new Date();
  await new Promise((r) => setTimeout(r, 20));
  t2 = await issue(appA, "task-2", "user:bob");
  tB = await issue(appB, "task-1", "user:alice");
  secrets.push(t2.accessToken, tB.accessToken);
  // Outside the ceiling: refused, recorded with the task, human and scopes asked.
  await refusal(issue(appA, "task-1", "user:alice", { scopes: ["write:records:P-1"] }));
  await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: t2.claims!.tokenId, appId: "", reason: "done with it" }, appA.md);
  await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TASK, id: "task-2", appId: "", reason: "" }, appA.md);
});
afterAll(async () => b?.stop());

const kindsOf = (es: AuditEvent[]) => es.map((e) => e.kind);

describe("filters", () => {
  it("app alone: only that app's events, oldest first", async () => {
    const es = await listAll({ appId: appA.appId });
    expect(es.every((e) => e.appId === appA.appId)).toBe(true);
    expect(kindsOf(es)).toEqual([
      "app.created", "token.issued", "token.delegated", "delegation.refused", "token.issued", "issue.refused", "revocation.created", "revocation.created",
    ]);
    const seqs = es.map((e) => e.seq);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
  });

  it("task alone spans apps; with app it narrows to one", async () => {
    const all = await listAll({ taskId: "task-1" });
    expect(new Set(all.map((e) => e.appId))).toEqual(new Set([appA.appId, appB.appId]));
    expect(kindsOf(all)).toEqual(["token.issued", "token.delegated", "delegation.refused", "token.issued", "issue.refused"]);
    const a = await listAll({ taskId: "task-1", appId: appA.appId });
    expect(kindsOf(a)).toEqual(["token.issued", "token.delegated", "delegation.refused", "issue.refused"]);
    // A revocation of a task, or of one of its tokens, is found by that task.
    const t2s = await listAll({ taskId: "task-2" });
    expect(kindsOf(t2s)).toEqual(["token.issued", "revocation.created", "revocation.created"]);
    expect(t2s.map((e) => e.tokenId)).toEqual([t2.claims!.tokenId, t2.claims!.tokenId, ""]);
  });

  it("agent, human and token alone", async () => {
    expect(kindsOf(await listAll({ agentId: t1.claims!.agentId }))).toEqual(["token.issued"]);
    expect(kindsOf(await listAll({ agentId: child.claims!.agentId }))).toEqual(["token.delegated", "delegation.refused"]);
    const alice = await listAll({ humanPrincipal: "user:alice" });
    expect(kindsOf(alice)).toEqual(["token.issued", "token.delegated", "delegation.refused", "token.issued", "issue.refused"]);
    expect(kindsOf(await listAll({ humanPrincipal: "user:bob" }))).toEqual(["token.issued", "revocation.created"]);
    expect(kindsOf(await listAll({ agentId: t2.claims!.agentId }))).toEqual(["token.issued", "revocation.created"]);
    expect(kindsOf(await listAll({ tokenId: t2.claims!.tokenId }))).toEqual(["token.issued", "revocation.created"]);
    expect(await listAll({ humanPrincipal: "user:nobody" })).toEqual([]);
  });

  it("kinds, time range and after_seq, alone and combined", async () => {
    const issued = await listAll({ kinds: ["token.issued"] });
    expect(issued.map((e) => e.tokenId)).toEqual([t1.claims!.tokenId, t2.claims!.tokenId, tB.claims!.tokenId]);
    const two = await listAll({ kinds: ["issue.refused", "delegation.refused"] });
    expect(kindsOf(two)).toEqual(["delegation.refused", "issue.refused"]);
    const later = await listAll({ kinds: ["token.issued"], startTime: middle });
    expect(later.map((e) => e.tokenId)).toEqual([t2.claims!.tokenId, tB.claims!.tokenId]);
    const earlier = await listAll({ kinds: ["token.issued"], endTime: middle });
    expect(earlier.map((e) => e.tokenId)).toEqual([t1.claims!.tokenId]);
    const after = await listAll({ afterSeq: issued[1]!.seq, kinds: ["token.issued"] });
    expect(after.map((e) => e.tokenId)).toEqual([tB.claims!.tokenId]);
    const combined = await listAll({ appId: appA.appId, humanPrincipal: "user:alice", kinds: ["token.issued", "issue.refused"], startTime: middle });
    expect(kindsOf(combined)).toEqual(["issue.refused"]);
  });
});

describe("what each event answers", () => {
  it("a minted token: task, agent, human, token, lineage, scopes, audiences, lifetime, outcome", async () => {
    const [issued] = await listAll({ tokenId: t1.claims!.tokenId, kinds: ["token.issued"] });
    expect(issued).toMatchObject({
      kind: "token.issued", actor: `app:${appA.appId}`, appId: appA.appId, taskId: "task-1", orchestrationId: "orch-9",
      agentId: t1.claims!.agentId, humanPrincipal: "user:alice", tokenId: t1.claims!.tokenId, lineage: [],
      scopes: ["read:records:P-1", "read:records:P-2"], audiences: ["ehr-api", "lab-api"],
      credentialLifetime: { seconds: 120, nanos: 0 }, outcome: "ok", reason: "",
    });
    expect(issued!.requestId).not.toBe("");
    expect(JSON.parse(issued!.dataJson)).toMatchObject({ token_id: t1.claims!.tokenId, ttl_seconds: 120 });
    const [delegated] = await listAll({ tokenId: child.claims!.tokenId });
    expect(delegated).toMatchObject({
      kind: "token.delegated", actor: `agent:${t1.claims!.agentId}`, agentId: child.claims!.agentId, humanPrincipal: "user:alice",
      lineage: [{ tokenId: t1.claims!.tokenId, agentId: t1.claims!.agentId }], scopes: ["read:records:P-1"], audiences: ["ehr-api"], outcome: "ok",
    });
    // The child may live as long as its parent has left: at most 120 s.
    expect(delegated!.credentialLifetime!.seconds).toBeGreaterThan(0);
    expect(delegated!.credentialLifetime!.seconds).toBeLessThanOrEqual(120);
  });

  it("a refusal: what was asked, by whom, and the ErrorReason as its outcome", async () => {
    const [refused] = await listAll({ kinds: ["issue.refused"] });
    expect(refused).toMatchObject({
      actor: `app:${appA.appId}`, taskId: "task-1", orchestrationId: "orch-9", humanPrincipal: "user:alice",
      scopes: ["write:records:P-1"], audiences: ["ehr-api"], outcome: "SCOPE_NOT_COVERED", reason: "", tokenId: "", credentialLifetime: undefined,
    });
    const [deleg] = await listAll({ kinds: ["delegation.refused"] });
    expect(deleg).toMatchObject({
      actor: `agent:${child.claims!.agentId}`, agentId: child.claims!.agentId, taskId: "task-1", humanPrincipal: "user:alice",
      scopes: ["read:records:P-3"], audiences: ["ehr-api"], outcome: "SCOPE_NOT_COVERED",
      lineage: [{ tokenId: t1.claims!.tokenId, agentId: t1.claims!.agentId }, { tokenId: child.claims!.tokenId, agentId: child.claims!.agentId }],
    });
  });

  it("a revocation: its target, audiences and the reason given", async () => {
    const revs = await listAll({ kinds: ["revocation.created"] });
    expect(revs[0]).toMatchObject({
      actor: `app:${appA.appId}`, tokenId: t2.claims!.tokenId, taskId: "task-2", agentId: t2.claims!.agentId, humanPrincipal: "user:bob",
      reason: "done with it", outcome: "ok", audiences: ["ehr-api"],
    });
    expect(revs[1]).toMatchObject({ taskId: "task-2", tokenId: "", reason: "", outcome: "ok" });
  });

  it("an agent releasing its own token: its task, agent, human and lineage", async () => {
    const app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const root = await issue(app, "release-1", "user:fay");
    const kid = await call(b.client.delegate, b.client, {
      scopes: ["read:records:P-1"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "",
    }, bearer(root.accessToken));
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: "", appId: "", reason: "finished" }, bearer(kid.accessToken));
    const [released] = await listAll({ appId: app.appId, kinds: ["revocation.created"] });
    expect(released).toMatchObject({
      actor: `agent:${kid.claims!.agentId}`, tokenId: kid.claims!.tokenId, agentId: kid.claims!.agentId, taskId: "release-1", humanPrincipal: "user:fay",
      lineage: [{ tokenId: root.claims!.tokenId, agentId: root.claims!.agentId }], reason: "finished", outcome: "ok",
    });
  });

  it("operator events: the app's ceiling as its scopes", async () => {
    const [created] = await listAll({ appId: appB.appId, kinds: ["app.created"] });
    expect(created).toMatchObject({ actor: "operator", scopes: ["read:records:*"], audiences: ["ehr-api"], outcome: "ok" });
  });

  it("no event holds a token, proof, secret or key", async () => {
    const text = JSON.stringify(await listAll());
    for (const s of secrets) expect(text).not.toContain(s);
    expect(text).not.toMatch(/"d":|bsec_|eyJ/);
  });
});

describe("pagination", () => {
  it("is stable while events are appended between pages: each once, in seq order, the new ones at the end", async () => {
    const app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    for (let i = 0; i < 5; i++) await issue(app, `page-${i}`, "user:carol");
    const seen: AuditEvent[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const r = await list({ appId: app.appId, pageSize: 2, pageToken });
      expect(r.events.length).toBeLessThanOrEqual(2);
      seen.push(...r.events);
      pageToken = r.nextPageToken;
      // Appended while paging: another app's event (never listed) and this app's (listed, at the end).
      if (pages < 3) {
        await issue(appB, "noise", "user:carol");
        await issue(app, `late-${pages}`, "user:carol");
      }
      pages += 1;
    } while (pageToken);
    const seqs = seen.map((e) => e.seq);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
    expect(seen.every((e) => e.appId === app.appId)).toBe(true);
    expect(seen.map((e) => e.taskId)).toEqual(["", "page-0", "page-1", "page-2", "page-3", "page-4", "late-0", "late-1", "late-2"]);
  });

  it("defaults to 100 a page and refuses more than 1000", async () => {
    const r = await list({ pageSize: 1 });
    expect(r.events).toHaveLength(1);
    expect(r.nextPageToken).not.toBe("");
    const e = await refusal(list({ pageSize: 1001 }));
    expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field: "page_size" } });
  });

  it("refuses a page token used with other filters, altered, or made up", async () => {
    const first = await list({ appId: appA.appId, pageSize: 2 });
    const token = first.nextPageToken;
    expect(token).not.toBe("");
    // The same query continues.
    expect((await list({ appId: appA.appId, pageSize: 5, pageToken: token })).events[0]!.seq).toBeGreaterThan(first.events[1]!.seq);
    const decoded = Buffer.from(token, "base64url").toString("utf8");
    const [seq, mac] = decoded.split(".");
    const forged = [
      Buffer.from(`${Number(seq) + 1}.${mac}`).toString("base64url"),
      Buffer.from(`${seq}.${"A".repeat(22)}`).toString("base64url"),
      "garbage!",
      "",
    ].filter((t) => t !== "");
    const mismatched: Partial<ListAuditEventsRequest>[] = [
      { appId: appB.appId }, {}, { appId: appA.appId, taskId: "task-1" }, { appId: appA.appId, kinds: ["token.issued"] },
      { appId: appA.appId, afterSeq: 1 }, { appId: appA.appId, startTime: middle },
    ];
    for (const t of forged) {
      const e = await refusal(list({ appId: appA.appId, pageToken: t }));
      expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field: "page_token" } });
    }
    for (const over of mismatched) {
      const e = await refusal(list({ ...over, pageToken: token }));
      expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field: "page_token" } });
    }
    // Kinds are a set: their order does not change the query.
    const k = await list({ kinds: ["token.issued", "issue.refused"], pageSize: 1 });
    expect((await list({ kinds: ["issue.refused", "token.issued"], pageSize: 1, pageToken: k.nextPageToken })).events).toHaveLength(1);
  });
});

describe("refusals", () => {
  it("only the operator may list", async () => {
    for (const md of [appA.md, bearer(t1.accessToken)]) {
      const e = await refusal(list({}, md));
      expect([status.PERMISSION_DENIED, status.UNAUTHENTICATED]).toContain(e.code);
    }
    expect(await refusal(list({}, appA.md))).toMatchObject({ code: status.PERMISSION_DENIED, reason: "NOT_PERMITTED" });
  });

  it("refuses hostile filters by field, and stays up", async () => {
    const cases: [Partial<ListAuditEventsRequest>, string][] = [
      [{ taskId: "task\u00001" }, "task_id"],
      [{ humanPrincipal: "a\u0000" }, "human_principal"],
      [{ kinds: ["token.issued", "x\u0000"] }, "kinds"],
      [{ agentId: "a".repeat(1025) }, "agent_id"],
      [{ kinds: ["DROP TABLE"] }, "kinds"],
      [{ kinds: Array.from({ length: 33 }, (_, i) => `k.k${i}`) }, "kinds"],
      [{ startTime: new Date(2000), endTime: new Date(1000) }, "end_time"],
    ];
    for (const [over, field] of cases) {
      const e = await refusal(list(over));
      expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field } });
    }
    expect((await list({ pageSize: 1 })).events).toHaveLength(1);
  });

  it("refuses an after_seq or a time beyond what a number holds, and stays up", async () => {
    const raw = new Client(b.address, credentials.createInsecure());
    const send = (bytes: Buffer) =>
      new Promise<unknown>((resolve) =>
        raw.makeUnaryRequest("/baton.v1.AdminService/ListAuditEvents", (x: Buffer) => x, (x: Buffer) => x, bytes, operatorMd(), (err) => resolve(err)));
    const max64 = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    // after_seq (field 8, varint) = 2^63 - 1; start_time (field 6) { seconds (field 1) = 2^63 - 1 }.
    for (const bytes of [Buffer.from([0x40, ...max64]), Buffer.from([0x32, 10, 0x08, ...max64])]) {
      const e = decodeError(await send(bytes));
      expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST" });
    }
    // start_time 10^15 s: a whole number, but no Date holds it.
    let n = 10n ** 15n;
    const varint: number[] = [];
    while (n >= 128n) {
      varint.push(Number(n % 128n) + 128);
      n /= 128n;
    }
    varint.push(Number(n));
    const far = decodeError(await send(Buffer.from([0x32, varint.length + 1, 0x08, ...varint])));
    expect(far).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field: "start_time" } });
    raw.close();
    expect((await list({ pageSize: 1 })).events).toHaveLength(1);
  });
});
