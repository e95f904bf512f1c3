// Argument types at run time (issue 9): a string where a list is expected,
// or any other wrong type, is a TypeError naming the argument, thrown before
// anything is sent, never a list of characters the broker then refuses.
// The client points at a loopback port nobody listens on: a request that got
// past the checks would fail there with a BatonError (UNAVAILABLE) instead.

import { afterAll, describe, expect, it } from "vitest";
import {
  AgentKey,
  batonHttpMiddleware,
  batonServerInterceptor,
  BrokerClient,
  RevocationSubscriber,
  TokenVerifier,
  type TokenVerifierOptions,
} from "../src/index.js";

const broker = new BrokerClient("127.0.0.1:1", { timeoutMs: 2000 });
afterAll(() => broker.close());

const app = { clientId: "app_x", clientSecret: "not-a-real-secret" };
const SCOPE = "read:records:P-1";
// The checks are for callers whose types were lost (JavaScript, `any`, JSON).
const untyped = <T>(v: unknown): T => v as T;

/** Expects a TypeError whose message names `name` (and never quotes the secret). */
async function rejectsNaming(p: Promise<unknown>, name: string): Promise<void> {
  const err = await p.then(
    () => new Error("resolved"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TypeError);
  expect((err as Error).message).toContain(name);
  expect((err as Error).message).not.toContain("not-a-real-secret");
}

describe("BrokerClient refuses mistyped arguments before sending", () => {
  const issue = { taskId: "t-1", scopes: [SCOPE], audiences: ["ehr-api"] };

  it("issue: a string for scopes or audiences, a non-string in a list", async () => {
    await rejectsNaming(broker.issue(app, { ...issue, scopes: untyped(SCOPE) }), "request.scopes must be an array of strings, not string");
    await rejectsNaming(broker.issue(app, { ...issue, audiences: untyped("ehr-api") }), "request.audiences must be an array");
    await rejectsNaming(broker.issue(app, { ...issue, scopes: untyped([SCOPE, 7]) }), "request.scopes[1] must be a string, not number");
    await rejectsNaming(broker.issue(app, { ...issue, scopes: untyped(undefined) }), "request.scopes");
  });

  it("issue: scalar fields and the app credentials", async () => {
    await rejectsNaming(broker.issue(app, { ...issue, taskId: untyped(42) }), "request.taskId must be a string");
    await rejectsNaming(broker.issue(app, { ...issue, humanPrincipal: untyped(["user:alice"]) }), "request.humanPrincipal");
    await rejectsNaming(broker.issue(app, { ...issue, ttlSeconds: untyped("60") }), "request.ttlSeconds must be a finite number");
    await rejectsNaming(broker.issue(app, { ...issue, ttlSeconds: Number.NaN }), "request.ttlSeconds");
    await rejectsNaming(broker.issue(app, { ...issue, allowTtlClamp: untyped("yes") }), "request.allowTtlClamp must be a boolean");
    await rejectsNaming(broker.issue(untyped({ clientId: "app_x", clientSecret: 5 }), issue), "app.clientSecret must be a string");
    await rejectsNaming(broker.issue(app, untyped("t-1")), "request must be an object");
  });

  it("delegate: a string for scopes or audiences", async () => {
    const key = await AgentKey.generate();
    const agent = { token: "header.payload.signature", key };
    await rejectsNaming(broker.delegate(agent, { scopes: untyped(SCOPE) }), "request.scopes must be an array");
    await rejectsNaming(broker.delegate(agent, { scopes: [SCOPE], audiences: untyped("ehr-api") }), "request.audiences must be an array");
    await rejectsNaming(broker.delegate(untyped({ token: ["t"] }), { scopes: [SCOPE] }), "agent.token must be a string");
  });

  it("validate, revoke, release", async () => {
    await rejectsNaming(broker.validate(app, { token: "t", audience: "ehr-api", requiredScopes: untyped(SCOPE) }), "request.requiredScopes must be an array");
    await rejectsNaming(broker.validate(app, { token: "t", audience: untyped(["ehr-api"]) }), "request.audience must be a string, not an array");
    await rejectsNaming(broker.revoke(app, { target: "agent", id: untyped(["agent_1"]) }), "request.id must be a string");
    await rejectsNaming(broker.revoke(app, { target: untyped("constructor"), id: "x" }), "request.target");
    await rejectsNaming(broker.release({ token: "t" }, { reason: untyped(1) }), "options.reason must be a string");
  });

  it("AgentKey.createProof: a list for the method, a non-string token", async () => {
    const key = await AgentKey.generate();
    await expect(key.createProof(untyped(["GET /records/P-1"]), "t")).rejects.toThrow(/method must be a string, not an array/);
    await expect(key.createProof("GET /records/P-1", untyped(undefined))).rejects.toThrow(/token must be a string, not undefined/);
  });

  it("well-typed arguments do go out (and fail here only because nobody listens)", async () => {
    await expect(broker.issue(app, issue)).rejects.toMatchObject({ name: "BatonError" });
  });
});

describe("TokenVerifier and the middleware refuse mistyped options", () => {
  const options: TokenVerifierOptions = {
    audience: "ehr-api",
    issuer: "https://baton.local",
    keys: async () => ({ keys: [] }),
    revocations: { isRevoked: () => false, freshAtMs: Date.now() },
  };

  it("a list for the verifier's audience (which would match no token) is a TypeError", () => {
    expect(() => new TokenVerifier({ ...options, audience: untyped(["ehr-api"]) })).toThrow(/options\.audience must be a string, not an array/);
    expect(() => new TokenVerifier({ ...options, issuer: untyped(undefined) })).toThrow(/options\.issuer must be a string/);
  });

  it("verify: a string for requiredScopes is a TypeError naming it", async () => {
    const verifier = new TokenVerifier(options);
    await expect(verifier.verify("a.b.c", { requiredScopes: untyped(SCOPE) })).rejects.toThrow(/options\.requiredScopes must be an array of strings, not string/);
    await expect(verifier.verify("a.b.c", { requiredScopes: untyped([SCOPE, null]) })).rejects.toThrow(/options\.requiredScopes\[1\] must be a string, not null/);
    // Well typed, a hostile token is still an answer, not an error.
    await expect(verifier.verify("a.b.c", { requiredScopes: [SCOPE] })).resolves.toMatchObject({ ok: false });
  });

  it("gRPC interceptor: a string for a method's scopes or for publicMethods, at construction", () => {
    const verifier = new TokenVerifier(options);
    expect(() => batonServerInterceptor(verifier, { requiredScopes: { "/ehr.v1.Records/Get": untyped(SCOPE) } })).toThrow(
      /options\.requiredScopes\["\/ehr\.v1\.Records\/Get"\] must be an array/,
    );
    expect(() => batonServerInterceptor(verifier, { requiredScopes: untyped(SCOPE) })).toThrow(/options\.requiredScopes must be an object/);
    expect(() => batonServerInterceptor(verifier, { publicMethods: untyped("/grpc.health.v1.Health/Check") })).toThrow(
      /options\.publicMethods must be an array/,
    );
    expect(() => batonServerInterceptor(verifier, { requiredScopes: { "/ehr.v1.Records/Get": [SCOPE] }, publicMethods: ["/h/C"] })).not.toThrow();
  });

  it("RevocationSubscriber: mistyped credentials fail at construction, not on every reconnect", () => {
    const target = "127.0.0.1:1";
    expect(() => new RevocationSubscriber({ target, caller: untyped({ clientId: "app_x", clientSecret: ["s"] }) })).toThrow(
      /options\.caller\.clientSecret must be a string, not an array/,
    );
    expect(() => new RevocationSubscriber({ target, caller: untyped({ operatorToken: 1 }) })).toThrow(/options\.caller\.operatorToken must be a string/);
    expect(() => new RevocationSubscriber({ target, caller: untyped("app_x:secret") })).toThrow(/options\.caller must be an object/);
    expect(() => new RevocationSubscriber({ target: untyped([target]), caller: app })).toThrow(/options\.target must be a string or a function/);
    expect(() => new RevocationSubscriber({ target, caller: app, cursor: untyped(5) })).toThrow(/options\.cursor must be a string/);
    new RevocationSubscriber({ target, caller: app }).close();
  });

  it("HTTP middleware: a string for requiredScopes, at construction", () => {
    const verifier = new TokenVerifier(options);
    expect(() => batonHttpMiddleware(verifier, { requiredScopes: untyped(SCOPE) })).toThrow(/options\.requiredScopes must be an array/);
    expect(() => batonHttpMiddleware(verifier, { requiredScopes: [SCOPE] })).not.toThrow();
    expect(() => batonHttpMiddleware(verifier, { requiredScopes: () => [SCOPE] })).not.toThrow();
  });
});
