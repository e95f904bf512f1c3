// End to end through the generated TypeScript client: a real broker on
// 127.0.0.1:0, real PostgreSQL.

import { Metadata, status } from "@grpc/grpc-js";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { countGrants } from "../../server/storage/grants.js";
import { basic, bearer, call, createApp, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker();
  app = await createApp(b, { ceiling: ["read:records:*", "write:prescriptions:P-1042"], audiences: ["ehr-api", "billing-api"], maxTtlSeconds: 600 });
});
afterAll(async () => b?.stop());

const issue = (req: Partial<Parameters<typeof b.client.issue>[0]> = {}, md = app.md) =>
  call(b.client.issue, b.client, {
    taskId: "task-1",
    orchestrationId: "",
    humanPrincipal: "user:alice",
    scopes: ["read:records:P-1042"],
    audiences: ["ehr-api"],
    ttl: undefined,
    allowTtlClamp: false,
    agentPublicKeyJwk: "",
    approvalId: "",
    ...req,
  }, md);

const validate = (token: string, audience = "ehr-api", requiredScopes: string[] = [], md = app.md) =>
  call(b.client.validate, b.client, { token, audience, requiredScopes }, md);

describe("issue, validate, revoke", () => {
  it("an issued token validates, and after revocation it does not", async () => {
    const issued = await issue();
    const c = issued.claims!;
    expect(c.scopes).toEqual(["read:records:P-1042"]);
    expect(c.audiences).toEqual(["ehr-api"]);
    expect(c.appId).toBe(app.appId);
    expect(c.humanPrincipal).toBe("user:alice");
    expect(c.agentId).toMatch(new RegExp(`^spiffe://baton\\.local/app/${app.appId}/task/task-1/agent/[A-Za-z0-9_-]{22}$`));
    expect(c.expireTime!.getTime() - c.issueTime!.getTime()).toBeGreaterThan(299_000);
    expect(c.expireTime!.getTime() - c.issueTime!.getTime()).toBeLessThanOrEqual(300_000);

    const ok = await validate(issued.accessToken, "ehr-api", ["read:records:P-1042"]);
    expect(ok.valid).toBe(true);
    expect(ok.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(ok.claims!.tokenId).toBe(c.tokenId);

    const rev = await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: c.tokenId, appId: "", reason: "done" }, app.md);
    expect(rev.revocation!.id).toBe(c.tokenId);
    expect(BigInt(rev.revocation!.cursor)).toBeGreaterThan(0n);

    const after = await validate(issued.accessToken);
    expect(after.valid).toBe(false);
    expect(after.status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("the token has the RFC 9068 shape and verifies with the published JWKS by an independent verifier", async () => {
    const issued = await issue({ scopes: ["read:records:P-1", "read:records:P-2"] });
    const header = decodeProtectedHeader(issued.accessToken);
    expect(header).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    const jwks = (await (await fetch(`${b.httpUrl}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    // jose's own JWT verification against the HTTP key set: not the broker's code path.
    const { payload } = await jwtVerify(issued.accessToken, createLocalJWKSet(jwks as Parameters<typeof createLocalJWKSet>[0]), {
      issuer: "https://baton.local",
      audience: "ehr-api",
      typ: "at+jwt",
      algorithms: ["ES256"],
    });
    expect(payload).toMatchObject({ client_id: app.appId, scope: "read:records:P-1 read:records:P-2", task_id: "task-1", human: "user:alice" });
    expect(payload.jti).toBe(issued.claims!.tokenId);
    expect(issued.accessToken.length).toBeLessThan(1024);
  });

  it("a key-bound token carries cnf.jkt", async () => {
    const { generateKeyPair, exportJWK, calculateJwkThumbprint } = await import("jose");
    const { publicKey } = await generateKeyPair("ES256");
    const jwk = await exportJWK(publicKey);
    const issued = await issue({ agentPublicKeyJwk: JSON.stringify(jwk) });
    expect((decodeJwt(issued.accessToken).cnf as { jkt: string }).jkt).toBe(await calculateJwkThumbprint(jwk));
    expect(issued.claims!.keyThumbprint).toBe(await calculateJwkThumbprint(jwk));
  });

  it("an agent releases its own token", async () => {
    const issued = await issue();
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: "", appId: "", reason: "" }, bearer(issued.accessToken));
    expect((await validate(issued.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("validation answers wrong audience and insufficient scope", async () => {
    const issued = await issue();
    expect((await validate(issued.accessToken, "billing-api")).status).toBe(TokenStatus.TOKEN_STATUS_WRONG_AUDIENCE);
    expect((await validate(issued.accessToken, "ehr-api", ["write:prescriptions:P-1042"])).status).toBe(
      TokenStatus.TOKEN_STATUS_INSUFFICIENT_SCOPE,
    );
  });

  it("clamps a TTL above the app maximum only when asked", async () => {
    const e = await refusal(issue({ ttl: { seconds: 3600, nanos: 0 } }));
    expect(e).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "TTL_EXCEEDS_MAXIMUM", domain: "baton.dev" });
    expect(e.metadata).toMatchObject({ requested_seconds: "3600", maximum_seconds: "600", rule: "app_maximum" });
    const clamped = await issue({ ttl: { seconds: 3600, nanos: 0 }, allowTtlClamp: true });
    expect(clamped.ttlClamped).toBe(true);
    const c = clamped.claims!;
    expect(c.expireTime!.getTime() - c.issueTime!.getTime()).toBeLessThanOrEqual(600_000);
  });
});

describe("every refusal carries a status code and an ErrorInfo reason", () => {
  const cases: [string, () => Promise<unknown>, number, string][] = [
    ["scope outside the ceiling", () => issue({ scopes: ["read:records:P-1", "write:prescriptions:*"] }), status.PERMISSION_DENIED, "SCOPE_NOT_COVERED"],
    ["audience outside the app's list", () => issue({ audiences: ["crm-api"] }), status.PERMISSION_DENIED, "AUDIENCE_NOT_ALLOWED"],
    ["malformed scope", () => issue({ scopes: ["read:records"] }), status.INVALID_ARGUMENT, "INVALID_SCOPE"],
    ["missing task id", () => issue({ taskId: "" }), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["no credentials", () => issue({}, new Metadata()), status.UNAUTHENTICATED, "CREDENTIALS_MISSING"],
    ["wrong secret", () => issue({}, basic(app.appId, "bsec_wrong")), status.UNAUTHENTICATED, "CREDENTIALS_INVALID"],
    ["unknown app", () => issue({}, basic("app_0000000000000000000000", "x")), status.UNAUTHENTICATED, "CREDENTIALS_INVALID"],
    ["operator calling Issue", () => issue({}, operatorMd()), status.PERMISSION_DENIED, "NOT_PERMITTED"],
    ["app calling the admin service", () => call(b.admin.listApps, b.admin, { pageSize: 0, pageToken: "" }, app.md), status.PERMISSION_DENIED, "NOT_PERMITTED"],
    ["revoke with no target", () => call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_UNSPECIFIED, id: "x", appId: "", reason: "" }, app.md), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["revoke an unknown token", () => call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: "nope", appId: "", reason: "" }, app.md), status.NOT_FOUND, "NOT_FOUND"],
    ["validate without audience", () => validate("a.b.c", ""), status.INVALID_ARGUMENT, "INVALID_REQUEST"],
    ["delegate with a malformed bearer token", () => call(b.client.delegate, b.client, { scopes: [], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, bearer("x.y.z")), status.UNAUTHENTICATED, "TOKEN_INVALID"],
  ];
  it.each(cases)("%s", async (_name, run, code, reason) => {
    const e = await refusal(run());
    expect(e.code).toBe(code);
    expect(e.reason).toBe(reason);
    expect(e.domain).toBe("baton.dev");
  });

  it("names the excess scopes", async () => {
    const e = await refusal(issue({ scopes: ["read:records:P-1", "write:prescriptions:*", "delete:records:P-1"] }));
    expect(e.metadata.excess_scopes).toBe("delete:records:P-1 write:prescriptions:*");
    expect(e.metadata.rule).toBe("ceiling");
  });

  it("an app cannot revoke another app's token (it is not even told it exists)", async () => {
    const other = await createApp(b);
    const issued = await issue();
    const e = await refusal(call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: issued.claims!.tokenId, appId: "", reason: "" }, other.md));
    expect(e).toMatchObject({ code: status.NOT_FOUND, reason: "NOT_FOUND" });
    expect((await validate(issued.accessToken)).valid).toBe(true);
  });

  it("an agent may release only its own token", async () => {
    const a = await issue();
    const other = await issue();
    const e = await refusal(call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: other.claims!.tokenId, appId: "", reason: "" }, bearer(a.accessToken)));
    expect(e).toMatchObject({ code: status.PERMISSION_DENIED, reason: "NOT_PERMITTED" });
    expect((await validate(other.accessToken)).valid).toBe(true);
  });

  it("refused issuances store no grant", async () => {
    const before = await countGrants(b.database.db);
    await refusal(issue({ scopes: ["admin:everything:*"] }));
    await refusal(issue({ audiences: ["crm-api"] }));
    expect(await countGrants(b.database.db)).toBe(before);
  });
});

describe("operations", () => {
  it("serves health, readiness, metrics and the key set over HTTP", async () => {
    expect((await fetch(`${b.httpUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${b.httpUrl}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/baton_grpc_requests_total\{method="Issue",code="OK"\} \d+/);
    // No high-cardinality labels: never an app id, scope or token id.
    expect(metrics).not.toContain(app.appId);
    expect(metrics).not.toContain("read:records");
    expect((await fetch(`${b.httpUrl}/nope`)).status).toBe(404);
  });

  it("answers gRPC health checks", async () => {
    const { credentials, makeGenericClientConstructor } = await import("@grpc/grpc-js");
    const { service } = (await import("grpc-health-check")) as unknown as { service: Parameters<typeof makeGenericClientConstructor>[0] };
    const Health = makeGenericClientConstructor(service, "Health");
    const h = new Health(b.address, credentials.createInsecure()) as unknown as {
      check: (req: { service: string }, cb: (err: Error | null, res: { status: string | number }) => void) => void;
      close(): void;
    };
    const res = await new Promise<{ status: string | number }>((resolve, reject) => h.check({ service: "baton.v1.BrokerService" }, (e, r) => (e ? reject(e) : resolve(r))));
    h.close();
    expect(["SERVING", 1]).toContain(res.status);
  });

  it("the JWKS RPC and the HTTP key set agree", async () => {
    const rpc = await call(b.client.getKeySet, b.client, {});
    const http = await (await fetch(`${b.httpUrl}/.well-known/jwks.json`)).text();
    expect(JSON.parse(rpc.jwksJson)).toEqual(JSON.parse(http));
    expect(http).not.toMatch(/"d"\s*:/);
  });
});
