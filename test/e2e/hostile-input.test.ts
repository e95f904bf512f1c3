// Hostile input and semantics, part two (issue 7 items 6, 7, 8, 11, 13):
// each refusal is a clean status with an ErrorInfo reason, the server stays
// up and serving, and the broker's answers mean what the contract says.

import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadKey } from "../../server/crypto/keyring.js";
import { MasterKey } from "../../server/crypto/master-key.js";
import { signToken } from "../../server/crypto/tokens.js";
import { AdminServiceClient } from "../../server/gen/baton/v1/admin.js";
import { BrokerServiceClient, IssueRequest, RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { keysInState } from "../../server/storage/keys.js";
import { createLogger } from "../../server/telemetry/logger.js";
import {
  basic,
  call,
  createApp,
  decodeError,
  issueRequest,
  OPERATOR_TOKEN,
  operatorMd,
  refusal,
  startTestBroker,
  type TestApp,
  type TestBroker,
} from "../helpers/broker.js";
import { freshDatabase } from "../helpers/database.js";
import { FRAME, rawCall } from "../helpers/raw-h2.js";
import { openStream } from "../helpers/stream.js";

let b: TestBroker;
let app: TestApp;
let other: TestApp;
const MASTER_KEY = MasterKey.generate();
/** Every line the broker logs (JSON, debug level). */
const logLines: string[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const issue = (over: Partial<IssueRequest> = {}, broker = b, caller = app) =>
  call(broker.client.issue, broker.client, issueRequest({ scopes: ["read:records:P-1"], ...over }), caller.md);
const validate = (token: string, broker = b, caller = app) =>
  call(broker.client.validate, broker.client, { token, audience: "ehr-api", requiredScopes: [] }, caller.md);
const revoke = (target: RevocationTarget, id: string, caller = app, appId = "") =>
  call(b.client.revoke, b.client, { target, id, appId, reason: "" }, caller.md);

async function counts(): Promise<Record<string, number>> {
  const { rows } = await b.database.db.query<Record<string, string>>(
    "SELECT (SELECT count(*) FROM grants) AS grants, (SELECT count(*) FROM revocations) AS revocations, (SELECT count(*) FROM apps) AS apps",
  );
  return Object.fromEntries(Object.entries(rows[0]!).map(([k, v]) => [k, Number(v)]));
}

/** Sends raw bytes to a method of any service, bypassing the generated encoders. */
function rawUnary(method: string, bytes: Buffer): Promise<Buffer> {
  const c = new Client(b.address, credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    c.makeUnaryRequest(method, (x: Buffer) => x, (x: Buffer) => x, bytes, new Metadata(), { deadline: new Date(Date.now() + 10_000) }, (err, res) => {
      c.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

/** Opens a raw stream (server or bidi) and returns how it ended. */
function rawStream(method: string, bytes: Buffer, bidi: boolean): Promise<unknown> {
  const c = new Client(b.address, credentials.createInsecure());
  return new Promise((resolve) => {
    const opts = { deadline: new Date(Date.now() + 10_000) };
    const s = bidi
      ? c.makeBidiStreamRequest(method, (x: Buffer) => x, (x: Buffer) => x, new Metadata(), opts)
      : c.makeServerStreamRequest(method, (x: Buffer) => x, (x: Buffer) => x, bytes, new Metadata(), opts);
    if (bidi) (s as unknown as { write(b: Buffer): void }).write(bytes);
    s.on("data", () => {});
    s.on("error", (err) => {
      c.close();
      resolve(err);
    });
    s.on("end", () => {
      c.close();
      resolve(new Error("the stream ended without an error"));
    });
  });
}

const healthy = async (): Promise<void> => {
  const res = await rawUnary("/grpc.health.v1.Health/Check", Buffer.alloc(0));
  expect(res).toEqual(Buffer.from([0x08, 0x01])); // status: SERVING
};

beforeAll(async () => {
  b = await startTestBroker({ BATON_MASTER_KEY: MASTER_KEY }, undefined, createLogger("debug", (l) => logLines.push(l)));
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
  other = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
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

describe("clean statuses where INTERNAL used to answer (item 8)", () => {
  const nul = (v: string) => `${v}\u0000x`;
  const cases: [string, () => Promise<unknown>, string][] = [
    ["Revoke TOKEN id", () => revoke(RevocationTarget.REVOCATION_TARGET_TOKEN, nul("tok")), "id"],
    ["Revoke CHAIN id", () => revoke(RevocationTarget.REVOCATION_TARGET_CHAIN, nul("tok")), "id"],
    ["Revoke AGENT id", () => revoke(RevocationTarget.REVOCATION_TARGET_AGENT, nul("spiffe://baton.local/app/x")), "id"],
    ["Revoke TASK id", () => revoke(RevocationTarget.REVOCATION_TARGET_TASK, nul("t")), "id"],
    ["Revoke reason", () => call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TASK, id: "t", appId: "", reason: nul("r") }, app.md), "reason"],
    ["Revoke TOKEN id, as the operator", () => call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: nul("tok"), appId: "", reason: "" }, operatorMd()), "id"],
    ["Issue task id", () => issue({ taskId: nul("t") }), "task_id"],
    ["Issue scopes", () => issue({ scopes: ["read:records:P-1", nul("read:records:P")] }), "scopes"],
    ["Issue agent key", () => issue({ agentPublicKeyJwk: nul("{}") }), "agent_public_key_jwk"],
    ["Validate audience", () => call(b.client.validate, b.client, { token: "x", audience: nul("ehr-api"), requiredScopes: [] }, app.md), "audience"],
    ["DisableApp reason", () => call(b.admin.disableApp, b.admin, { appId: other.appId, reason: nul("r") }, operatorMd()), "reason"],
    ["GetApp id", () => call(b.admin.getApp, b.admin, { appId: nul("app_") }, operatorMd()), "app_id"],
    ["CreateApp audiences", () => call(b.admin.createApp, b.admin, { name: "nul-app", scopeCeiling: ["a:b:c"], audiences: [nul("a")], maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined }, operatorMd()), "audiences"],
  ];

  it.each(cases)("a NUL character in %s is INVALID_ARGUMENT naming the field, and nothing is stored", async (_name, run, field) => {
    const before = await counts();
    const e = await refusal(run());
    expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", domain: "baton.dev" });
    expect(e.metadata.field).toBe(field);
    expect(await counts()).toEqual(before);
    expect((await call(b.admin.getApp, b.admin, { appId: other.appId }, operatorMd())).app!.disabled).toBe(false);
  });

  it("a NUL character in a stream cursor is INVALID_ARGUMENT naming the field", async () => {
    const s = openStream(b.client, "12\u00003", app.md);
    await s.waitFor((x) => x.ended !== null, 10_000, "the stream to end");
    expect(s.ended).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field: "cursor" } });
  });

  const garbage = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]);
  it.each([
    ["health Check", () => rawUnary("/grpc.health.v1.Health/Check", garbage)],
    ["health Watch", () => rawStream("/grpc.health.v1.Health/Watch", garbage, false)],
    ["reflection v1", () => rawStream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", garbage, true)],
    ["reflection v1alpha", () => rawStream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", garbage, true)],
  ])("bytes that do not decode, sent to %s, are INVALID_ARGUMENT; the server stays up", async (_name, run) => {
    const e = decodeError(await run().catch((err: unknown) => err));
    expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", domain: "baton.dev" });
    await healthy();
  });

  it("a correctly signed token with exp or iat beyond year 9999 is an ordinary MALFORMED answer", async () => {
    const [stored] = await keysInState(b.database.db, "active");
    const key = loadKey(stored!, MasterKey.fromBase64(MASTER_KEY));
    const t = await issue();
    const c = t.claims!;
    const base = {
      tokenId: "tok_far_future", agentId: c.agentId, appId: c.appId, taskId: c.taskId, orchestrationId: null, humanPrincipal: null,
      scopes: c.scopes, audiences: c.audiences, issuer: c.issuer, issuedAtMs: Date.now(), notBeforeMs: Date.now() - 1000,
      expiresAtMs: Date.now() + 60_000, lineage: [], rootIssuedAtMs: Date.now(), keyThumbprint: null,
    };
    // The same claims within range are VALID: the broker's key signed them.
    expect((await validate(await signToken(base, key))).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    for (const over of [{ expiresAtMs: 1e303 }, { expiresAtMs: 253_402_300_800_000 }, { issuedAtMs: 1e303, rootIssuedAtMs: 1e303 }, { notBeforeMs: 1e300 }]) {
      const v = await validate(await signToken({ ...base, ...over }, key));
      expect(v, JSON.stringify(over)).toMatchObject({ valid: false, status: TokenStatus.TOKEN_STATUS_MALFORMED });
    }
  });

  it("two authorization headers are refused (CREDENTIALS_INVALID), even when the first is right", async () => {
    const before = await counts();
    const right = basic(app.appId, app.secret).get("authorization")[0] as string;
    const ex = rawCall(b.broker.grpcPort, "/baton.v1.BrokerService/Issue", [
      ["authorization", right],
      ["authorization", "Basic d3Jvbmc6d3Jvbmc="],
      ["x-request-id", "two-authorizations"],
    ], Buffer.from(issueRequestBytes()));
    expect(await ex.answered).toBe("end-stream");
    ex.destroy();
    const line = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.request_id === "two-authorizations");
    expect(line).toMatchObject({ msg: "request refused", method: "Issue", reason: "CREDENTIALS_INVALID" });
    expect(await counts()).toEqual(before);
  });

  it("NOT_FOUND says the same whether the id does not exist or belongs to another app", async () => {
    const theirs = await issue({ taskId: "theirs" }, b, other);
    const cases: [RevocationTarget, string, string, string?][] = [
      [RevocationTarget.REVOCATION_TARGET_TOKEN, theirs.claims!.tokenId, "tok_does_not_exist"],
      [RevocationTarget.REVOCATION_TARGET_CHAIN, theirs.claims!.tokenId, "tok_does_not_exist"],
      [RevocationTarget.REVOCATION_TARGET_AGENT, theirs.claims!.agentId, "spiffe://baton.local/app/none/task/x/agent/y"],
      [RevocationTarget.REVOCATION_TARGET_TASK, "theirs", "theirs", other.appId],
      [RevocationTarget.REVOCATION_TARGET_APP, other.appId, "app_0000000000000000000000"],
    ];
    for (const [target, existing, missing, appId] of cases) {
      const a = await refusal(revoke(target, existing, app, appId ?? ""));
      const m = await refusal(revoke(target, missing, app, appId === undefined ? "" : "app_0000000000000000000000"));
      expect(a.code).toBe(status.NOT_FOUND);
      expect({ ...a, metadata: { ...a.metadata, request_id: "" } }).toEqual({ ...m, metadata: { ...m.metadata, request_id: "" } });
    }
    expect((await validate(theirs.accessToken, b, other)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });
});

function issueRequestBytes(): Uint8Array {
  return IssueRequest.encode(issueRequest({ taskId: "two-authorizations" })).finish();
}

describe("no credential reaches the broker's output, even with grpc-js tracing on (item 7)", () => {
  it("illegal characters in authorization, repeated headers: stdout and stderr hold no token, secret or operator credential", async () => {
    const db = await freshDatabase();
    const child = spawn(process.execPath, [fileURLToPath(new URL("../../bin/baton.mjs", import.meta.url)), "serve"], {
      env: {
        ...process.env,
        DATABASE_URL: db.url,
        BATON_MASTER_KEY: MasterKey.generate(),
        BATON_OPERATOR_TOKEN: OPERATOR_TOKEN,
        BATON_GRPC_LISTEN: "127.0.0.1:0",
        BATON_HTTP_LISTEN: "",
        BATON_LOG_LEVEL: "debug",
        GRPC_TRACE: "all",
        GRPC_VERBOSITY: "DEBUG",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((r) => child.on("exit", () => r()));
    try {
      const deadline = Date.now() + 60_000;
      let port = 0;
      while (port === 0) {
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the broker did not start:\n${stdout}\n${stderr}`);
        port = Number(/"msg":"broker ready".*?"grpc_port":(\d+)/.exec(stdout)?.[1] ?? 0);
        await sleep(50);
      }
      const client = new BrokerServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
      const admin = new AdminServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
      const created = await call(admin.createApp, admin, { name: "logs", scopeCeiling: ["read:records:*"], audiences: ["ehr-api"], maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined }, operatorMd());
      const appId = created.app!.appId;
      const secret = created.clientSecret;
      const basicValue = `Basic ${Buffer.from(`${appId}:${secret}`).toString("base64")}`;
      const token = (await call(client.issue, client, issueRequest(), basic(appId, secret))).accessToken;
      await call(client.validate, client, { token, audience: "ehr-api", requiredScopes: [] }, basic(appId, secret));
      client.close();
      admin.close();

      const hostile: [string, string][][] = [
        [["authorization", `Bearer ${token}\tx`]],
        [["authorization", `${basicValue}\t`]],
        [["authorization", `Bearer ${OPERATOR_TOKEN}\t`]],
        [["authorization", `Bearer ${token}`], ["authorization", basicValue]],
        [["authorization", `Bearer ${OPERATOR_TOKEN}`], ["authorization", `Bearer ${token}`]],
        [["authorization", `Bearer ${token}`], ["baton-proof", `${token}\t`]],
      ];
      for (const headers of hostile) {
        const ex = rawCall(port, "/baton.v1.BrokerService/Validate", headers, Buffer.alloc(0));
        expect(await ex.answered).toBe("end-stream");
        ex.destroy();
      }
      child.kill("SIGTERM");
      await exited;

      const output = stdout + stderr;
      for (const secretText of [token, token.split(".")[2]!, secret, basicValue.slice(6), OPERATOR_TOKEN]) {
        expect(output.includes(secretText), `the output holds ${secretText.slice(0, 12)}…`).toBe(false);
      }
      // The hostile metadata was seen and logged, as JSON, redacted.
      expect(stdout).toContain("Failed to add metadata entry authorization");
      for (const line of stdout.split("\n").filter((l) => l !== "")) expect(() => JSON.parse(line), line.slice(0, 200)).not.toThrow();
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      await db.drop();
    }
  }, 120_000);
});

describe("an oversized credential gets a clean status and the connection stays usable (item 6)", () => {
  it("a 70 KB bearer token through the generated client fails fast with INVALID_ARGUMENT naming authorization; the next call on the channel succeeds", async () => {
    const huge = randomBytes(52_500).toString("base64url"); // 70,000 characters, like a token
    const md = new Metadata();
    md.set("authorization", `Bearer ${huge}`);
    const started = Date.now();
    const err = await new Promise<unknown>((resolve) => {
      b.client.validate({ token: "x", audience: "ehr-api", requiredScopes: [] }, md, { deadline: new Date(Date.now() + 120_000) }, (e) => resolve(e));
    });
    const elapsed = Date.now() - started;
    expect(decodeError(err)).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field: "authorization" } });
    // Far below the deadline (a loaded 2-core machine answers in well under a second).
    expect(elapsed).toBeLessThan(30_000);
    const t = await issue();
    expect((await validate(t.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("a credential just over 16384 characters is refused the same way; 16384 is judged as a credential", async () => {
    const over = await refusal(validate("x", b, { ...app, md: bearerOf("a".repeat(16_385)) }));
    expect(over).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST", metadata: { field: "authorization" } });
    const at = await refusal(validate("x", b, { ...app, md: bearerOf("a".repeat(16_384)) }));
    expect(at).toMatchObject({ code: status.UNAUTHENTICATED, reason: "CREDENTIALS_INVALID" });
  });

  it("a 70 KB header the HTTP/2 layer cannot decode: the broker closes the connection instead of leaving the call to its deadline, and stays up", async () => {
    // Uncompressed, as some gRPC clients send long values: over nghttp2's
    // fixed 64 KB limit for one header field.
    const ex = rawCall(b.broker.grpcPort, "/baton.v1.BrokerService/Validate", [["authorization", `Bearer ${randomBytes(52_500).toString("base64url")}`]], Buffer.alloc(0));
    expect(await ex.answered).toBe("goaway");
    expect(ex.frames.some((f) => f.type === FRAME.GOAWAY && f.payload.readUInt32BE(4) !== 0)).toBe(true);
    // Closed within one keepalive interval and timeout (10 s + 10 s); 60 s leaves slack for a loaded machine.
    const closed = await Promise.race([ex.closed.then(() => true), sleep(60_000).then(() => false)]);
    ex.destroy();
    expect(closed).toBe(true);
    await healthy();
    expect((await validate((await issue()).accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
  }, 90_000);
});

function bearerOf(token: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}
