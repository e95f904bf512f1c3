// Approvals in the TypeScript SDK, against fake Broker, Approval and Admin
// services on loopback (real gRPC, hand-built answers and trailers): the
// APPROVAL_* refusals as typed errors, approval ids sent by issue and
// delegate, waitForApproval following a broken stream again and timing out
// clearly, issueWithApproval, the approver's client and its argument checks,
// the admin calls for approvers and policies, and claim `apr` in the offline
// verifier. The live flow against a real broker is approvals-live.test.ts.

import { generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { Metadata, Server, ServerCredentials, status, type ServerUnaryCall, type ServerWritableStream, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  AdminClient,
  AgentKey,
  ApprovalClient,
  ApprovalError,
  ApprovalRequiredError,
  ApprovalState,
  BatonError,
  BrokerClient,
  PROOF_METADATA_KEY,
  ScopeClass,
  TokenVerifier,
  type Approval,
} from "../src/index.js";
import { BrokerServiceService, IssueResponse, type DelegateRequest, type IssueRequest } from "../src/gen/baton/v1/broker.js";
import {
  Approval as ApprovalMsg,
  ApprovalServiceService,
  ApproveResponse,
  DenyResponse,
  GetApprovalResponse,
  ListApprovalsResponse,
} from "../src/gen/baton/v1/approvals.js";
import {
  AdminServiceService,
  CreateAppResponse,
  CreateApproverResponse,
  DisableApproverResponse,
  ListApproversResponse,
  UpdateAppResponse,
  type CreateAppRequest,
  type UpdateAppRequest,
} from "../src/gen/baton/v1/admin.js";
import { ErrorInfo } from "../src/gen/google/rpc/error_details.js";
import { Status } from "../src/gen/google/rpc/status.js";

const APP = { clientId: "app_x", clientSecret: "s" };
const APPROVER = { clientId: "apv_1", clientSecret: "secret" };
const OPERATOR = { operatorToken: "bop_x" };

function refusal(code: status, reason: string, metadata: Record<string, string>): Partial<ServiceError> {
  const info = { typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(ErrorInfo.encode({ reason, domain: "baton.dev", metadata }).finish()) };
  const md = new Metadata();
  md.set("grpc-status-details-bin", Buffer.from(Status.encode({ code, message: "refused", details: [info] }).finish()));
  return { code, details: `refused: ${reason}`, metadata: md };
}

const approval = (state: ApprovalState, id = "apr_1"): Approval =>
  ApprovalMsg.fromPartial({ approvalId: id, state, scopes: ["write:prescriptions:P-1042"], approvalsRequired: 1, approverGroup: "clinical-leads" });

/** What the fake services answer and what they saw; reset before each test. */
interface Script {
  issue: Array<Partial<ServiceError> | null>;
  issued: IssueRequest[];
  delegated: DelegateRequest[];
  /** One entry per WatchApproval subscription: states to send, then how the stream ends. */
  watches: Array<{ states: ApprovalState[]; end: "close" | "hang" | Partial<ServiceError> }>;
  watchMd: Metadata[];
  unary: Array<{ method: string; request: unknown; md: Metadata }>;
}
let script: Script;
beforeEach(() => {
  script = { issue: [], issued: [], delegated: [], watches: [], watchMd: [], unary: [] };
});

let server: Server;
let address: string;
let broker: BrokerClient;
let approvals: ApprovalClient;
let admin: AdminClient;

beforeAll(async () => {
  server = new Server();
  const issued = IssueResponse.fromPartial({ accessToken: "tok", claims: { tokenId: "jti" }, ttlClamped: false });
  server.addService(BrokerServiceService, {
    issue: (call: ServerUnaryCall<IssueRequest, unknown>, cb: (e: Partial<ServiceError> | null, r?: unknown) => void) => {
      script.issued.push(call.request);
      const next = script.issue.shift() ?? null;
      if (next) cb(next);
      else cb(null, issued);
    },
    delegate: (call: ServerUnaryCall<DelegateRequest, unknown>, cb: (e: null, r: unknown) => void) => {
      script.delegated.push(call.request);
      cb(null, issued);
    },
  });
  const recordUnary =
    // The generated services serialize with `encode`, which wants every field: answers are built fromPartial.
    <T,>(method: string, type: { fromPartial(o: never): T }, answer: (req: { approvalId?: string }) => unknown) =>
    (call: ServerUnaryCall<{ approvalId?: string }, unknown>, cb: (e: null, r: T) => void) => {
      script.unary.push({ method, request: call.request, md: call.metadata });
      cb(null, type.fromPartial(answer(call.request) as never));
    };
  server.addService(ApprovalServiceService, {
    listApprovals: recordUnary("list", ListApprovalsResponse, (req) => {
      const token = (req as { pageToken: string }).pageToken;
      return token === "" ? { approvals: [approval(1, "apr_a")], nextPageToken: "p2" } : { approvals: [approval(1, "apr_b")], nextPageToken: "" };
    }),
    getApproval: recordUnary("get", GetApprovalResponse, (req) => ({ approval: approval(ApprovalState.APPROVAL_STATE_PENDING, req.approvalId) })),
    approve: recordUnary("approve", ApproveResponse, (req) => ({ approval: approval(ApprovalState.APPROVAL_STATE_APPROVED, req.approvalId) })),
    deny: recordUnary("deny", DenyResponse, (req) => ({ approval: approval(ApprovalState.APPROVAL_STATE_DENIED, req.approvalId) })),
    watchApproval: (call: ServerWritableStream<{ approvalId: string }, unknown>) => {
      script.watchMd.push(call.metadata);
      const w = script.watches.shift() ?? { states: [], end: "hang" };
      for (const s of w.states) call.write({ approval: approval(s, call.request.approvalId) });
      if (w.end === "close") call.end();
      else if (w.end !== "hang") call.emit("error", w.end);
      // "hang": left open until the client cancels or its deadline passes.
    },
  });
  server.addService(AdminServiceService, {
    createApp: recordUnary("createApp", CreateAppResponse, () => ({ app: { appId: "app_new" }, clientSecret: "s" })),
    updateApp: recordUnary("updateApp", UpdateAppResponse, () => ({ app: { appId: "app_new" }, revokedTokenCount: 0 })),
    createApprover: recordUnary("createApprover", CreateApproverResponse, () => ({ approver: { approverId: "apv_new", name: "dr-smith", groups: ["clinical-leads"] }, clientSecret: "apv-secret" })),
    listApprovers: recordUnary("listApprovers", ListApproversResponse, (req) =>
      (req as { pageToken: string }).pageToken === "" ? { approvers: [{ approverId: "apv_1" }], nextPageToken: "n" } : { approvers: [{ approverId: "apv_2" }], nextPageToken: "" },
    ),
    disableApprover: recordUnary("disableApprover", DisableApproverResponse, () => ({ approver: { approverId: "apv_1", disabled: true } })),
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  address = `127.0.0.1:${port}`;
  broker = new BrokerClient(address);
  approvals = new ApprovalClient(address);
  admin = new AdminClient(address);
});
afterAll(async () => {
  broker?.close();
  approvals?.close();
  admin?.close();
  server?.forceShutdown();
});

const issueReq = { taskId: "t-1", scopes: ["write:prescriptions:P-1042"], audiences: ["ehr-api"] };

async function refused(p: Promise<unknown>): Promise<BatonError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BatonError);
    return err as BatonError;
  }
  throw new Error("expected a refusal");
}

describe("APPROVAL_* refusals as typed errors", () => {
  it("APPROVAL_REQUIRED is an ApprovalRequiredError with the approval's id, count, group and expiry", async () => {
    script.issue.push(
      refusal(status.FAILED_PRECONDITION, "APPROVAL_REQUIRED", {
        approval_id: "apr_7",
        approvals_required: "2",
        approver_group: "clinical-leads",
        expire_time: "2026-12-03T11:00:00.000Z",
      }),
    );
    const err = await refused(broker.issue(APP, issueReq));
    expect(err).toBeInstanceOf(ApprovalRequiredError);
    expect(err).toBeInstanceOf(ApprovalError);
    const e = err as ApprovalRequiredError;
    expect([e.code, e.reason, e.approvalId, e.approvalsRequired, e.approverGroup]).toEqual([
      status.FAILED_PRECONDITION,
      "APPROVAL_REQUIRED",
      "apr_7",
      2,
      "clinical-leads",
    ]);
    expect(e.expireTime?.toISOString()).toBe("2026-12-03T11:00:00.000Z");
    expect(e.name).toBe("ApprovalRequiredError");
  });

  it("unreadable metadata leaves the fields empty rather than wrong", async () => {
    script.issue.push(refusal(status.FAILED_PRECONDITION, "APPROVAL_REQUIRED", { approval_id: "apr_7", approvals_required: "two", expire_time: "soon" }));
    const e = (await refused(broker.issue(APP, issueReq))) as ApprovalRequiredError;
    expect([e.approvalsRequired, e.approverGroup, e.expireTime]).toEqual([0, "", undefined]);
  });

  it.each([
    [status.FAILED_PRECONDITION, "APPROVAL_PENDING"],
    [status.PERMISSION_DENIED, "APPROVAL_DENIED"],
    [status.FAILED_PRECONDITION, "APPROVAL_EXPIRED"],
    [status.FAILED_PRECONDITION, "APPROVAL_USED"],
    [status.PERMISSION_DENIED, "APPROVAL_MISMATCH"],
    [status.FAILED_PRECONDITION, "APPROVAL_NOT_PENDING"],
  ])("%s %s is an ApprovalError naming the approval", async (code, reason) => {
    script.issue.push(refusal(code, reason, { approval_id: "apr_9" }));
    const err = await refused(broker.issue(APP, { ...issueReq, approvalId: "apr_9" }));
    expect(err).toBeInstanceOf(ApprovalError);
    expect(err).not.toBeInstanceOf(ApprovalRequiredError);
    expect([err.code, err.reason, (err as ApprovalError).approvalId]).toEqual([code, reason, "apr_9"]);
  });

  it("other reasons stay plain BatonErrors", async () => {
    script.issue.push(refusal(status.PERMISSION_DENIED, "SCOPE_NOT_COVERED", { excess_scopes: "write:x:y" }));
    const err = await refused(broker.issue(APP, issueReq));
    expect(err).not.toBeInstanceOf(ApprovalError);
    expect(err.reason).toBe("SCOPE_NOT_COVERED");
  });
});

describe("approval ids on issue and delegate", () => {
  it("issue sends approvalId; unset it is empty", async () => {
    await broker.issue(APP, { ...issueReq, approvalId: "apr_1" });
    await broker.issue(APP, issueReq);
    expect(script.issued.map((r) => r.approvalId)).toEqual(["apr_1", ""]);
  });

  it("delegate sends approvalId", async () => {
    await broker.delegate({ token: "tok" }, { scopes: ["write:prescriptions:P-1042"], approvalId: "apr_2" });
    expect(script.delegated.map((r) => r.approvalId)).toEqual(["apr_2"]);
  });

  it("a non-string approvalId is a TypeError and nothing is sent", async () => {
    await expect(broker.issue(APP, { ...issueReq, approvalId: 42 as unknown as string })).rejects.toThrow(/request\.approvalId must be a string/);
    expect(script.issued).toEqual([]);
  });
});

describe("getApproval and waitForApproval (the requester)", () => {
  it("getApproval as the app sends Basic credentials; as a key-bound agent a Bearer token and a proof for GetApproval", async () => {
    expect((await broker.getApproval(APP, "apr_3")).approvalId).toBe("apr_3");
    const key = await AgentKey.generate();
    await broker.getApproval({ token: "agent-token", key }, "apr_3");
    const [asApp, asAgent] = script.unary;
    expect(String(asApp!.md.get("authorization")[0])).toMatch(/^Basic /);
    expect(asAgent!.md.get("authorization")).toEqual(["Bearer agent-token"]);
    const proof = String(asAgent!.md.get(PROOF_METADATA_KEY)[0]);
    const claims = JSON.parse(Buffer.from(proof.split(".")[1]!, "base64url").toString()) as { htm: string };
    expect(claims.htm).toBe(ApprovalServiceService.getApproval.path);
  });

  it("returns the approval once APPROVED, following the stream again after it broke", async () => {
    script.watches.push(
      { states: [ApprovalState.APPROVAL_STATE_PENDING], end: { code: status.UNAVAILABLE, details: "broker restarting" } },
      { states: [ApprovalState.APPROVAL_STATE_PENDING], end: "close" },
      { states: [ApprovalState.APPROVAL_STATE_PENDING, ApprovalState.APPROVAL_STATE_APPROVED], end: "hang" },
    );
    const a = await broker.waitForApproval(APP, "apr_4", { timeoutMs: 20_000 });
    expect([a.approvalId, a.state]).toEqual(["apr_4", ApprovalState.APPROVAL_STATE_APPROVED]);
    expect(script.watchMd).toHaveLength(3);
  });

  it("an agent's every subscription carries a fresh proof for WatchApproval", async () => {
    script.watches.push({ states: [], end: "close" }, { states: [ApprovalState.APPROVAL_STATE_DENIED], end: "hang" });
    const key = await AgentKey.generate();
    const a = await broker.waitForApproval({ token: "agent-token", key }, "apr_5", { timeoutMs: 20_000 });
    expect(a.state).toBe(ApprovalState.APPROVAL_STATE_DENIED);
    const proofs = script.watchMd.map((md) => String(md.get(PROOF_METADATA_KEY)[0]));
    expect(proofs).toHaveLength(2);
    expect(proofs[0]).not.toBe(proofs[1]);
    for (const p of proofs) expect((JSON.parse(Buffer.from(p.split(".")[1]!, "base64url").toString()) as { htm: string }).htm).toBe(ApprovalServiceService.watchApproval.path);
  });

  it("still undecided at the timeout: an ApprovalError APPROVAL_PENDING, DEADLINE_EXCEEDED", async () => {
    script.watches.push({ states: [ApprovalState.APPROVAL_STATE_PENDING], end: "hang" });
    const err = await refused(broker.waitForApproval(APP, "apr_6", { timeoutMs: 300 }));
    expect(err).toBeInstanceOf(ApprovalError);
    expect([err.code, err.reason, (err as ApprovalError).approvalId]).toEqual([status.DEADLINE_EXCEEDED, "APPROVAL_PENDING", "apr_6"]);
    expect(err.message).toMatch(/apr_6 was not decided within 300 ms/);
  });

  it("a refusal (unknown approval) is not followed again", async () => {
    script.watches.push({ states: [], end: refusal(status.NOT_FOUND, "NOT_FOUND", {}) });
    const err = await refused(broker.waitForApproval(APP, "apr_missing", { timeoutMs: 20_000 }));
    expect(err.code).toBe(status.NOT_FOUND);
    expect(script.watchMd).toHaveLength(1);
  });

  it("an aborted wait fails with CANCELLED", async () => {
    script.watches.push({ states: [ApprovalState.APPROVAL_STATE_PENDING], end: "hang" });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const err = await refused(broker.waitForApproval(APP, "apr_7", { timeoutMs: 20_000, signal: ac.signal }));
    expect(err.code).toBe(status.CANCELLED);
  });

  it("a non-positive timeout or a missing id is a TypeError", async () => {
    await expect(broker.waitForApproval(APP, "apr_1", { timeoutMs: 0 })).rejects.toThrow(TypeError);
    await expect(broker.waitForApproval(APP, undefined as unknown as string)).rejects.toThrow(/approvalId must be a string/);
    expect(script.watchMd).toEqual([]);
  });

  it("issueWithApproval: APPROVAL_REQUIRED, waits, issues again with the approval id", async () => {
    script.issue.push(refusal(status.FAILED_PRECONDITION, "APPROVAL_REQUIRED", { approval_id: "apr_8", approvals_required: "1", approver_group: "g" }));
    script.watches.push({ states: [ApprovalState.APPROVAL_STATE_PENDING, ApprovalState.APPROVAL_STATE_APPROVED], end: "hang" });
    const told: string[] = [];
    const t = await broker.issueWithApproval(APP, issueReq, { approvalTimeoutMs: 20_000, onApprovalRequired: (e) => told.push(e.approvalId) });
    expect(t.accessToken).toBe("tok");
    expect(told).toEqual(["apr_8"]);
    expect(script.issued.map((r) => r.approvalId)).toEqual(["", "apr_8"]);
  });

  it("issueWithApproval passes other refusals through without waiting", async () => {
    script.issue.push(refusal(status.PERMISSION_DENIED, "SCOPE_NOT_COVERED", {}));
    const err = await refused(broker.issueWithApproval(APP, issueReq));
    expect(err.reason).toBe("SCOPE_NOT_COVERED");
    expect(script.watchMd).toEqual([]);
  });
});

describe("ApprovalClient (approvers)", () => {
  it("approve and deny send the approver's Basic credentials, the id and the reason", async () => {
    expect((await approvals.approve(APPROVER, "apr_1", "dose checked")).state).toBe(ApprovalState.APPROVAL_STATE_APPROVED);
    expect((await approvals.deny(APPROVER, "apr_2", "wrong patient")).state).toBe(ApprovalState.APPROVAL_STATE_DENIED);
    expect(script.unary.map((u) => [u.method, u.request])).toEqual([
      ["approve", { approvalId: "apr_1", reason: "dose checked" }],
      ["deny", { approvalId: "apr_2", reason: "wrong patient" }],
    ]);
    expect(String(script.unary[0]!.md.get("authorization")[0])).toBe(`Basic ${Buffer.from("apv_1:secret").toString("base64")}`);
  });

  it.each([
    ["empty", ""],
    ["blank", "   "],
    ["longer than 512 characters", "x".repeat(513)],
    ["not a string", undefined],
  ])("a reason %s is a TypeError and nothing is sent", async (_what, reason) => {
    await expect(approvals.deny(APPROVER, "apr_1", reason as string)).rejects.toThrow(TypeError);
    await expect(approvals.approve(APPROVER, "apr_1", reason as string)).rejects.toThrow(TypeError);
    expect(script.unary).toEqual([]);
  });

  it("512 characters (counted as characters, not UTF-16 units) are accepted", async () => {
    await approvals.deny(APPROVER, "apr_1", "é".repeat(256) + "😀".repeat(256));
    expect(script.unary).toHaveLength(1);
  });

  it("an operator credential cannot decide: TypeError before any call", async () => {
    await expect(approvals.approve(OPERATOR as never, "apr_1", "ok")).rejects.toThrow(/named approvers only/);
    expect(script.unary).toEqual([]);
  });

  it("listApprovals maps the state name; allApprovals walks every page", async () => {
    await approvals.listApprovals(APPROVER, { state: "pending", appId: "app_x", pageSize: 10 });
    expect(script.unary[0]!.request).toEqual({ state: ApprovalState.APPROVAL_STATE_PENDING, appId: "app_x", pageSize: 10, pageToken: "" });
    const ids: string[] = [];
    for await (const a of approvals.allApprovals(APPROVER, { state: ApprovalState.APPROVAL_STATE_APPROVED })) ids.push(a.approvalId);
    expect(ids).toEqual(["apr_a", "apr_b"]);
    await expect(approvals.listApprovals(APPROVER, { state: "maybe" as never })).rejects.toThrow(/unknown approval state/);
  });

  it("getApproval works for an operator too", async () => {
    expect((await approvals.getApproval(OPERATOR, "apr_x")).approvalId).toBe("apr_x");
    expect(script.unary[0]!.md.get("authorization")).toEqual(["Bearer bop_x"]);
  });
});

describe("AdminClient: approvers and approval policy", () => {
  it("createApp sends the policy, names mapped to ScopeClass", async () => {
    await admin.createApp(OPERATOR, {
      name: "clinic",
      scopeCeiling: ["write:prescriptions:*"],
      audiences: ["ehr-api"],
      approvalPolicy: [{ pattern: "write:prescriptions:*", scopeClass: "dangerous_write", approvalsRequired: 1, approverGroup: "clinical-leads" }],
    });
    expect((script.unary[0]!.request as CreateAppRequest).approvalPolicy).toEqual([
      { pattern: "write:prescriptions:*", scopeClass: ScopeClass.SCOPE_CLASS_DANGEROUS_WRITE, approvalsRequired: 1, approverGroup: "clinical-leads" },
    ]);
  });

  it("updateApp replaces the policy only when given ([] clears it)", async () => {
    await admin.updateApp(OPERATOR, { appId: "app_new", name: "n" });
    await admin.updateApp(OPERATOR, { appId: "app_new", approvalPolicy: [] });
    await admin.updateApp(OPERATOR, { appId: "app_new", approvalPolicy: [{ pattern: "read:*", scopeClass: ScopeClass.SCOPE_CLASS_READ }] });
    const sent = script.unary.map((u) => u.request as UpdateAppRequest).map((r) => [r.updateApprovalPolicy, r.approvalPolicy.length]);
    expect(sent).toEqual([
      [false, 0],
      [true, 0],
      [true, 1],
    ]);
  });

  it("a rule with an unknown class or a bad count is a TypeError", async () => {
    const base = { name: "c", scopeCeiling: ["read:*"], audiences: ["a"] };
    await expect(admin.createApp(OPERATOR, { ...base, approvalPolicy: [{ pattern: "read:*", scopeClass: "scary" as never }] })).rejects.toThrow(/unknown scope class/);
    await expect(admin.createApp(OPERATOR, { ...base, approvalPolicy: [{ pattern: "read:*", scopeClass: "write", approvalsRequired: -1 }] })).rejects.toThrow(
      /approvalsRequired/,
    );
    await expect(admin.createApp(OPERATOR, { ...base, approvalPolicy: "write:*" as never })).rejects.toThrow(/array of rules/);
    expect(script.unary).toEqual([]);
  });

  it("createApprover returns the credentials; listApprovers pages; disableApprover sends the reason", async () => {
    const { approver, credentials } = await admin.createApprover(OPERATOR, { name: "dr-smith", groups: ["clinical-leads"] });
    expect([approver.approverId, credentials]).toEqual(["apv_new", { clientId: "apv_new", clientSecret: "apv-secret" }]);
    const ids: string[] = [];
    for await (const a of admin.allApprovers(OPERATOR)) ids.push(a.approverId);
    expect(ids).toEqual(["apv_1", "apv_2"]);
    expect((await admin.disableApprover(OPERATOR, "apv_1", { reason: "left" })).disabled).toBe(true);
    expect(script.unary.at(-1)!.request).toEqual({ approverId: "apv_1", reason: "left" });
    await expect(admin.createApprover(OPERATOR, { name: "x", groups: "clinical-leads" as never })).rejects.toThrow(/request\.groups must be an array/);
  });
});

describe("claim apr in the offline verifier", () => {
  let key: KeyObject;
  let verifier: TokenVerifier;
  beforeAll(() => {
    const pair = generateKeyPairSync("ed25519");
    key = pair.privateKey;
    const jwk = { ...pair.publicKey.export({ format: "jwk" }), kid: "k1", alg: "EdDSA", use: "sig" };
    verifier = new TokenVerifier({
      audience: "ehr-api",
      issuer: "https://baton.local",
      keys: async () => ({ keys: [jwk] }) as never,
      revocations: { isRevoked: () => false, freshAtMs: Date.now() + 3_600_000 },
    });
  });
  afterAll(() => verifier?.close());

  const token = (extra: Record<string, unknown>): string => {
    const now = Math.floor(Date.now() / 1000);
    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString("base64url");
    const payload = { iss: "https://baton.local", sub: "agt_1", jti: "jti_1", client_id: "app_1", task_id: "t", scope: "write:prescriptions:P-1042", aud: ["ehr-api"], iat: now, nbf: now, exp: now + 300, ...extra };
    const input = `${b64({ alg: "EdDSA", typ: "at+jwt", kid: "k1" })}.${b64(payload)}`;
    return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
  };

  it("exposes apr as approval { approvalId, approverIds }", async () => {
    const r = await verifier.verify(token({ apr: { id: "apr_1", by: ["apv_1", "apv_2"] } }));
    expect(r.ok && r.claims.approval).toEqual({ approvalId: "apr_1", approverIds: ["apv_1", "apv_2"] });
  });

  it("no apr: approval is null", async () => {
    const r = await verifier.verify(token({}));
    expect(r.ok).toBe(true);
    expect(r.ok && r.claims.approval).toBeNull();
  });

  it.each([[{ apr: "apr_1" }], [{ apr: { id: "apr_1" } }], [{ apr: { id: 1, by: [] } }], [{ apr: { id: "apr_1", by: ["apv_1", 2] } }], [{ apr: null }]])(
    "a malformed apr %j is MALFORMED",
    async (extra) => {
      const r = await verifier.verify(token(extra));
      expect(r.ok ? "OK" : r.reason).toBe("MALFORMED");
    },
  );
});
