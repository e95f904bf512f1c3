// Hostile input: each gets a clear INVALID_ARGUMENT / UNAUTHENTICATED /
// "invalid" answer with an ErrorInfo reason, the server stays up, and
// nothing from a refused request is stored.

import { Client, credentials, Metadata, status } from "@grpc/grpc-js";
import { CompactSign, generateKeyPair } from "jose";
import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IssueRequest, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { basic, bearer, call, createApp, decodeError, issueRequest, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let app: TestApp;
let good: string;

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");

async function counts(): Promise<Record<string, number>> {
  const { rows } = await b.database.db.query<Record<string, string>>(
    "SELECT (SELECT count(*) FROM grants) AS grants, (SELECT count(*) FROM revocations) AS revocations, (SELECT count(*) FROM apps) AS apps, (SELECT count(*) FROM signing_keys) AS keys",
  );
  return Object.fromEntries(Object.entries(rows[0]!).map(([k, v]) => [k, Number(v)]));
}

const issueReq = (over: Partial<IssueRequest> = {}): IssueRequest => issueRequest({ taskId: "t-1", ...over });
const issue = (over: Partial<IssueRequest> = {}, md = app.md) => call(b.client.issue, b.client, issueReq(over), md);
const validate = (token: string) => call(b.client.validate, b.client, { token, audience: "ehr-api", requiredScopes: [] }, app.md);

/** Sends raw bytes to a method, bypassing the generated encoder. */
function raw(method: string, bytes: Buffer, md: Metadata): Promise<Buffer> {
  const c = new Client(b.address, credentials.createInsecure());
  return new Promise<Buffer>((resolve, reject) => {
    c.makeUnaryRequest(method, (x: Buffer) => x, (x: Buffer) => x, bytes, md, { deadline: new Date(Date.now() + 10_000) }, (err, res) => {
      c.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

beforeAll(async () => {
  b = await startTestBroker();
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
  good = (await issue()).accessToken;
});
afterAll(async () => b?.stop());

describe("hostile requests are refused and nothing is stored", () => {
  const cases: [string, () => Promise<unknown>, number, string][] = [
    ["empty task id", () => issue({ taskId: "" }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["oversized task id", () => issue({ taskId: "t".repeat(10_000) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["task id with a backslash path", () => issue({ taskId: "..\\..\\etc" }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["no scopes", () => issue({ scopes: [] }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["10,000 scopes", () => issue({ scopes: Array.from({ length: 10_000 }, (_, i) => `read:records:P-${i}`) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["empty scope", () => issue({ scopes: [""] }), status.INVALID_ARGUMENT, "INVALID_SCOPE"],
    ["oversized scope", () => issue({ scopes: [`read:records:${"x".repeat(5000)}`] }), status.INVALID_ARGUMENT, "INVALID_SCOPE"],
    ["scope with a space", () => issue({ scopes: ["read:records:a b"] }), status.INVALID_ARGUMENT, "INVALID_SCOPE"],
    ["no audience", () => issue({ audiences: [] }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["oversized human principal", () => issue({ humanPrincipal: "h".repeat(300) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["control characters in the human principal", () => issue({ humanPrincipal: "alice\u0000\n" }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["a 1 MB message", () => issue({ humanPrincipal: "h".repeat(1024 * 1024) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["negative ttl", () => issue({ ttl: { seconds: -5, nanos: 0 } }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["zero ttl", () => issue({ ttl: { seconds: 0, nanos: 0 } }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["agent key that is not JSON", () => issue({ agentPublicKeyJwk: "{not json" }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["agent key with its private part", () => issue({ agentPublicKeyJwk: JSON.stringify({ kty: "EC", crv: "P-256", x: "a", y: "b", d: "c" }) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["agent key off the curve", () => issue({ agentPublicKeyJwk: JSON.stringify({ kty: "EC", crv: "P-256", x: "AAAA", y: "AAAA" }) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["agent key of full length off the curve", () => issue({ agentPublicKeyJwk: JSON.stringify({ kty: "EC", crv: "P-256", x: Buffer.alloc(32, 1).toString("base64url"), y: Buffer.alloc(32, 2).toString("base64url") }) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["RSA agent key", () => issue({ agentPublicKeyJwk: JSON.stringify({ kty: "RSA", n: "AQAB", e: "AQAB" }) }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["garbage authorization", () => issue({}, md("authorization", "Negotiate abc")), status.UNAUTHENTICATED, "CREDENTIALS_INVALID"],
    ["Basic without a colon", () => issue({}, md("authorization", `Basic ${Buffer.from("nocolon").toString("base64")}`)), status.UNAUTHENTICATED, "CREDENTIALS_INVALID"],
    ["huge Basic secret", () => issue({}, basic(app.appId, "s".repeat(6000))), status.UNAUTHENTICATED, "CREDENTIALS_INVALID"],
    ["an agent token used as app credentials", () => issue({}, bearer(good)), status.PERMISSION_DENIED, "NOT_PERMITTED"],
    ["bytes that are not protobuf", () => raw("/baton.v1.BrokerService/Issue", Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), app.md), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["revoke with a 10 KB id", () => call(b.client.revoke, b.client, { target: 1, id: "x".repeat(10_000), appId: "", reason: "" }, app.md), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["revoke with an unknown target value", () => call(b.client.revoke, b.client, { target: 99 as never, id: "x", appId: "", reason: "" }, app.md), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["create app with an empty ceiling", () => call(b.admin.createApp, b.admin, { name: "x", scopeCeiling: [], audiences: ["a"], maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined }, bearer("bop_test_operator_credential_0123456789abcdef")), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["create app with a 25 h max ttl", () => call(b.admin.createApp, b.admin, { name: "y", scopeCeiling: ["a:b:c"], audiences: ["a"], maxTtl: { seconds: 90_000, nanos: 0 }, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined }, bearer("bop_test_operator_credential_0123456789abcdef")), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["wrong operator credential", () => call(b.admin.listApps, b.admin, { pageSize: 0, pageToken: "" }, bearer("bop_wrong_operator_credential_0123456789abcdef")), status.UNAUTHENTICATED, "CREDENTIALS_INVALID"],
  ];

  it.each(cases)("%s", async (_name, run, code, reason) => {
    const before = await counts();
    const e = await refusal(run());
    expect(e.code).toBe(code);
    expect(e.reason).toBe(reason);
    expect(e.domain).toBe("baton.dev");
    expect(await counts()).toEqual(before);
    // The server is still up and serving.
    expect((await validate(good)).valid).toBe(true);
  });

  it("unknown fields in a request are ignored, missing ones take their documented defaults", async () => {
    const bytes = Buffer.concat([Buffer.from(IssueRequest.encode(issueReq()).finish()), Buffer.from([0xf8, 0x3e, 0x01])]); // field 999 varint 1
    const res = await raw("/baton.v1.BrokerService/Issue", bytes, app.md);
    expect(res.length).toBeGreaterThan(100);
    const e = decodeError(await raw("/baton.v1.BrokerService/Issue", Buffer.alloc(0), app.md).catch((err: unknown) => err));
    expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REQUEST" });
  });

  it("a message over the 4 MB limit is refused by gRPC itself and the server stays up", async () => {
    const err = await issue({ humanPrincipal: "h".repeat(5 * 1024 * 1024) }).catch((e: { code: number }) => e);
    expect((err as { code: number }).code).toBe(status.RESOURCE_EXHAUSTED);
    expect((await validate(good)).valid).toBe(true);
  });
});

function md(key: string, value: string): Metadata {
  const m = new Metadata();
  m.set(key, value);
  return m;
}

describe("hostile tokens are ordinary invalid answers", () => {
  const header = (t: string) => JSON.parse(Buffer.from(t.split(".")[0]!, "base64url").toString()) as { kid: string };
  const payload = (t: string) => JSON.parse(Buffer.from(t.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;

  async function resign(claims: Record<string, unknown>): Promise<string> {
    // Signed by a key the broker does not know, under the broker's kid.
    const { privateKey } = await generateKeyPair("ES256");
    return new CompactSign(Buffer.from(JSON.stringify(claims))).setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: header(good).kid }).sign(privateKey);
  }

  const cases: [string, () => Promise<string>, TokenStatus][] = [
    ["alg none", async () => `${b64({ alg: "none", typ: "at+jwt", kid: header(good).kid })}.${good.split(".")[1]}.`, TokenStatus.TOKEN_STATUS_ALGORITHM_NOT_ALLOWED],
    [
      "HS256 signed with the public key",
      async () => {
        const jwks = (await (await fetch(`${b.httpUrl}/.well-known/jwks.json`)).text());
        const h = b64({ alg: "HS256", typ: "at+jwt", kid: header(good).kid });
        const p = good.split(".")[1]!;
        const sig = createHmac("sha256", jwks).update(`${h}.${p}`).digest("base64url");
        return `${h}.${p}.${sig}`;
      },
      TokenStatus.TOKEN_STATUS_ALGORITHM_NOT_ALLOWED,
    ],
    ["unknown kid", async () => `${b64({ alg: "ES256", typ: "at+jwt", kid: "nope" })}.${good.split(".").slice(1).join(".")}`, TokenStatus.TOKEN_STATUS_UNKNOWN_KEY],
    ["truncated", async () => good.slice(0, good.length - 20), TokenStatus.TOKEN_STATUS_BAD_SIGNATURE],
    ["two parts", async () => good.split(".").slice(0, 2).join("."), TokenStatus.TOKEN_STATUS_MALFORMED],
    ["empty", async () => "", TokenStatus.TOKEN_STATUS_MALFORMED],
    ["20 KB of dots and letters", async () => `${"a".repeat(10_000)}.${"b".repeat(10_000)}.c`, TokenStatus.TOKEN_STATUS_MALFORMED],
    ["tampered payload", async () => { const [h, , s] = good.split("."); return `${h}.${b64({ ...payload(good), scope: "read:records:*" })}.${s}`; }, TokenStatus.TOKEN_STATUS_BAD_SIGNATURE],
    ["signed by another key", async () => resign(payload(good)), TokenStatus.TOKEN_STATUS_BAD_SIGNATURE],
    ["wrong typ", async () => `${b64({ alg: "ES256", typ: "JWT", kid: header(good).kid })}.${good.split(".").slice(1).join(".")}`, TokenStatus.TOKEN_STATUS_WRONG_TYPE],
  ];

  it.each(cases)("%s", async (_name, make, expected) => {
    const v = await validate(await make());
    expect(v.valid).toBe(false);
    expect(v.status).toBe(expected);
  });

  it("an expired token is invalid (broker with zero skew), a wrong audience is invalid", async () => {
    const strict = await startTestBroker({ BATON_VALIDATE_SKEW_SECONDS: "0" });
    try {
      const a = await createApp(strict, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
      const short = await call(strict.client.issue, strict.client, issueReq({ ttl: { seconds: 1, nanos: 0 } }), a.md);
      await new Promise((r) => setTimeout(r, 2100));
      const v = await call(strict.client.validate, strict.client, { token: short.accessToken, audience: "ehr-api", requiredScopes: [] }, a.md);
      expect(v.status).toBe(TokenStatus.TOKEN_STATUS_EXPIRED);
      expect(v.claims?.tokenId).toBe(short.claims!.tokenId);
    } finally {
      await strict.stop();
    }
    const wrongAud = await call(b.client.validate, b.client, { token: good, audience: "crm-api", requiredScopes: [] }, app.md);
    expect(wrongAud.status).toBe(TokenStatus.TOKEN_STATUS_WRONG_AUDIENCE);
  });
});
