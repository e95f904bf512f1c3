// BrokerClient against a real broker on 127.0.0.1:0 over a fresh database
// (test/helpers/broker.ts): issue, validate, release, delegation with proof of
// possession, and the refusals an SDK user will meet, as BatonErrors.

import { credentials, Metadata, Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import {
  AgentKey,
  BatonError,
  BrokerClient,
  DEFAULT_TIMEOUT_MS,
  fromServiceError,
  MAX_BEARER_TOKEN_LENGTH,
  PROOF_METADATA_KEY,
  RevocationTarget,
  TokenStatus,
  type AgentCredential,
  type AgentKeyAlgorithm,
  type AppCredentials,
  type IssueRequest,
} from "../src/index.js";
import { BrokerServiceService, type DelegateResponse } from "../src/gen/baton/v1/broker.js";

const DELEGATE = BrokerServiceService.delegate.path;
const REVOKE = BrokerServiceService.revoke.path;

let b: TestBroker;
let app: AppCredentials;
let client: BrokerClient;

beforeAll(async () => {
  b = await startTestBroker();
  const a = await createApp(b, { ceiling: ["read:records:*", "write:prescriptions:P-1042"], audiences: ["ehr-api", "billing-api"], maxTtlSeconds: 600 });
  app = { clientId: a.appId, clientSecret: a.secret };
  client = new BrokerClient(b.address);
});
afterAll(async () => {
  client?.close();
  await b?.stop();
});

const issue = (req: Partial<IssueRequest> = {}) =>
  client.issue(app, { taskId: "task-1", scopes: ["read:records:*"], audiences: ["ehr-api"], humanPrincipal: "user:alice", ...req });

const validate = (token: string, requiredScopes: string[] = []) =>
  client.validate(app, { token, audience: "ehr-api", requiredScopes }, { requestId: "sdk-ts-test" });

/** Awaits a call expected to fail with a BatonError; returns it. */
async function refusal(p: Promise<unknown>): Promise<BatonError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(BatonError);
    return err as BatonError;
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

/** Delegate through the generated stub with hand-made metadata, to send proofs the SDK never would. */
function rawDelegate(md: Metadata): Promise<DelegateResponse> {
  const req = { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" };
  return new Promise((resolve, reject) => {
    client.stub.delegate(req, md, { deadline: Date.now() + 5000 }, (err: ServiceError | null, res: DelegateResponse) =>
      err ? reject(fromServiceError(err)) : resolve(res),
    );
  });
}

function agentMd(token: string, proof?: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  if (proof !== undefined) md.set(PROOF_METADATA_KEY, proof);
  return md;
}

describe("issue, validate, release", () => {
  it("an issued token validates; after its agent releases it, validate says revoked", async () => {
    const issued = await issue();
    expect(issued.claims.scopes).toEqual(["read:records:*"]);
    expect(issued.claims.appId).toBe(app.clientId);
    expect(issued.claims.keyThumbprint).toBe("");
    expect(issued.credential).toEqual({ token: issued.accessToken });

    const ok = await validate(issued.accessToken, ["read:records:P-7"]);
    expect(ok.valid).toBe(true);
    expect(ok.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(ok.claims?.tokenId).toBe(issued.claims.tokenId);

    const rev = await client.release(issued.credential, { reason: "task done" });
    expect(rev.target).toBe(RevocationTarget.REVOCATION_TARGET_TOKEN);
    expect(rev.id).toBe(issued.claims.tokenId);

    const after = await validate(issued.accessToken);
    expect(after.valid).toBe(false);
    expect(after.status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    // An operator sees the same verdict.
    const byOperator = await client.validate({ operatorToken: OPERATOR_TOKEN }, { token: issued.accessToken, audience: "ehr-api" });
    expect(byOperator.status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("an app revokes what it issued, by target name", async () => {
    const issued = await issue({ taskId: "task-revoke" });
    const rev = await client.revoke(app, { target: "task", id: "task-revoke", reason: "cancelled" });
    expect(rev.target).toBe(RevocationTarget.REVOCATION_TARGET_TASK);
    expect((await validate(issued.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });

  it("a refused issue throws a BatonError with code, reason and metadata", async () => {
    const e = await refusal(issue({ scopes: ["read:records:P-1", "write:crm:*"] }));
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.reason).toBe("SCOPE_NOT_COVERED");
    expect(e.metadata).toMatchObject({ excess_scopes: "write:crm:*", rule: "ceiling" });
    expect(e.message).not.toContain(app.clientSecret);
  });

  it("a wrong secret is CREDENTIALS_INVALID, and the error does not echo it", async () => {
    const secret = "bsk_wrong_secret_wrong_secret_wrong";
    const e = await refusal(client.issue({ clientId: app.clientId, clientSecret: secret }, { taskId: "t", scopes: ["read:records:x"], audiences: ["ehr-api"] }));
    expect(e.code).toBe(status.UNAUTHENTICATED);
    expect(e.reason).toBe("CREDENTIALS_INVALID");
    expect(`${String(e)} ${JSON.stringify(e.metadata)}`).not.toContain(secret);
  });

  it("a token that cannot travel as metadata is refused without echoing it", async () => {
    const issued = await issue();
    const broken = `${issued.accessToken}\n`;
    const e = await refusal(client.release({ token: broken }));
    expect(e.code).toBe(status.INVALID_ARGUMENT);
    expect(e.message).toBe("the agent token contains characters not allowed in gRPC metadata");
    expect(String(e)).not.toContain(issued.accessToken);
    const o = await refusal(client.validate({ operatorToken: `${OPERATOR_TOKEN}\r` }, { token: "a.b.c", audience: "ehr-api" }));
    expect(String(o)).not.toContain(OPERATOR_TOKEN);
  });

  it("the key set verifies issued tokens with jose", async () => {
    const issued = await issue();
    const jwks = await client.getKeySet();
    expect(jwks.keys.map((k) => k.kid)).toContain(decodeProtectedHeader(issued.accessToken).kid);
    const { payload } = await jwtVerify(issued.accessToken, createLocalJWKSet(jwks), { audience: "ehr-api", typ: "at+jwt" });
    expect(payload.jti).toBe(issued.claims.tokenId);
  });
});

describe.each<AgentKeyAlgorithm>(["ES256", "EdDSA"])("a token bound to an %s agent key", (alg) => {
  it("delegates with the SDK credential (proof attached), and the child has exactly the requested scope", async () => {
    const key = await AgentKey.generate(alg);
    const parent = await issue({ agentKey: key });
    expect(parent.claims.keyThumbprint).toBe(key.thumbprint);
    expect(parent.credential.key).toBe(key);

    const child = await client.delegate(parent.credential, { scopes: ["read:records:P-1042"] });
    expect(child.claims.scopes).toEqual(["read:records:P-1042"]);
    expect(child.claims.audiences).toEqual(["ehr-api"]);
    expect(child.claims.depth).toBe(1);
    expect(child.claims.lineage).toEqual([{ tokenId: parent.claims.tokenId, agentId: parent.claims.agentId }]);
    expect(child.claims.keyThumbprint).toBe("");

    const v = await validate(child.accessToken, ["read:records:P-1042"]);
    expect(v.valid).toBe(true);
    expect(v.claims?.scopes).toEqual(["read:records:P-1042"]);
    // Exactly: the parent's wider scope did not leak into the child.
    expect((await validate(child.accessToken, ["read:records:P-2"])).status).toBe(TokenStatus.TOKEN_STATUS_INSUFFICIENT_SCOPE);
  });
});

describe("proof of possession is enforced", () => {
  let key: AgentKey;
  let bound: AgentCredential;

  beforeAll(async () => {
    key = await AgentKey.generate();
    bound = (await issue({ agentKey: key })).credential;
  });

  it("without its key, the token can neither delegate nor release (PROOF_REQUIRED)", async () => {
    const bare = { token: bound.token };
    const d = await refusal(client.delegate(bare, { scopes: ["read:records:P-1"] }));
    expect([d.code, d.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_REQUIRED"]);
    const r = await refusal(client.release(bare));
    expect([r.code, r.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_REQUIRED"]);
    expect(`${String(d)} ${String(r)} ${JSON.stringify([d.metadata, r.metadata])}`).not.toContain(bound.token);
    // The failed release released nothing.
    expect((await validate(bound.token)).valid).toBe(true);
  });

  it("a proof made for another method is PROOF_INVALID", async () => {
    const e = await refusal(rawDelegate(agentMd(bound.token, await key.createProof(REVOKE, bound.token))));
    expect([e.code, e.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_INVALID"]);
    expect(e.metadata.problem).toMatch(/another method/);
  });

  it("a proof made for another token is PROOF_INVALID", async () => {
    const other = (await issue({ agentKey: key })).credential.token;
    const e = await refusal(rawDelegate(agentMd(bound.token, await key.createProof(DELEGATE, other))));
    expect([e.code, e.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_INVALID"]);
    expect(e.metadata.problem).toMatch(/another token/);
  });

  it("a proof signed by another key is PROOF_INVALID", async () => {
    const e = await refusal(client.delegate({ token: bound.token, key: await AgentKey.generate() }, { scopes: ["read:records:P-1"] }));
    expect([e.code, e.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_INVALID"]);
    expect(e.metadata.problem).toMatch(/key other than/);
  });

  it("a proof is accepted once (PROOF_REPLAYED)", async () => {
    const md = agentMd(bound.token, await key.createProof(DELEGATE, bound.token));
    await rawDelegate(md);
    const e = await refusal(rawDelegate(md));
    expect([e.code, e.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_REPLAYED"]);
  });
});

describe("proofs the broker accepts every time", () => {
  // The broker refuses high-S ES256 proofs; an SDK that signed with whatever s
  // the library returned failed about half of these (PROOF_INVALID "bad signature").
  it("40 key-bound delegations and releases in a row all succeed", async () => {
    const key = await AgentKey.generate("ES256");
    for (let i = 0; i < 40; i++) {
      const parent = await issue({ agentKey: key });
      await client.delegate(parent.credential, { scopes: ["read:records:P-1"] });
      const rev = await client.release(parent.credential);
      expect(rev.id).toBe(parent.claims.tokenId);
    }
    // 120 calls: room for a loaded machine.
  }, 60_000);
});

describe("release cascades", () => {
  it("the holder's release makes its delegates invalid too", async () => {
    const key = await AgentKey.generate();
    const parent = await issue({ agentKey: key });
    // The child is bound to its own key, and delegates in turn with it.
    const childKey = await AgentKey.generate("EdDSA");
    const child = await client.delegate(parent.credential, { scopes: ["read:records:P-1042"], agentKey: childKey });
    expect(child.claims.keyThumbprint).toBe(childKey.thumbprint);
    expect(child.credential.key).toBe(childKey);
    const grandchild = await client.delegate(child.credential, { scopes: ["read:records:P-1042"] });
    expect(grandchild.claims.depth).toBe(2);
    for (const t of [parent.accessToken, child.accessToken, grandchild.accessToken]) expect((await validate(t)).valid).toBe(true);

    const rev = await client.release(parent.credential);
    expect(rev.id).toBe(parent.claims.tokenId);

    for (const t of [parent.accessToken, child.accessToken, grandchild.accessToken]) {
      const v = await validate(t);
      expect(v.valid).toBe(false);
      expect(v.status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    }
    // And the released holder can no longer delegate.
    const e = await refusal(client.delegate(parent.credential, { scopes: ["read:records:P-1042"] }));
    expect(e.reason).toBe("PARENT_REVOKED");
  });

  it("an unbound token delegates and releases without any proof", async () => {
    const parent = await issue();
    const child = await client.delegate(parent.credential, { scopes: ["read:records:P-9"], ttlSeconds: 60 });
    expect(child.claims.expireTime!.getTime() - child.claims.issueTime!.getTime()).toBeLessThanOrEqual(60_000);
    await client.release(parent.credential);
    expect((await validate(child.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });
});

describe("bearer tokens longer than MAX_BEARER_TOKEN_LENGTH", () => {
  // The broker would close the whole connection (GOAWAY) on such metadata: they are never sent.
  const expectTooLong = (e: BatonError, token: string): void => {
    expect([e.code, e.reason]).toEqual([status.INVALID_ARGUMENT, "INVALID_REQUEST"]);
    expect(e.metadata).toEqual({ field: "authorization", problem: "longer than 16384 characters" });
    expect(`${String(e)} ${JSON.stringify(e.metadata)}`).not.toContain(token.slice(0, 64));
  };

  it("are refused before any call is made (a broker that counts calls sees none); 16384 characters still go", async () => {
    expect(MAX_BEARER_TOKEN_LENGTH).toBe(16384);
    let calls = 0;
    const refuse = (_call: unknown, cb: (err: Partial<ServiceError>) => void): void => {
      calls += 1;
      cb({ code: status.UNAUTHENTICATED, details: "counted" });
    };
    const server = new Server();
    server.addService(BrokerServiceService, { delegate: refuse, revoke: refuse, validate: refuse });
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const counted = new BrokerClient(`127.0.0.1:${port}`);
    try {
      const long = "t".repeat(MAX_BEARER_TOKEN_LENGTH + 1);
      expectTooLong(await refusal(counted.delegate({ token: long }, { scopes: ["read:records:P-1"] })), long);
      expectTooLong(await refusal(counted.release({ token: long, key: await AgentKey.generate() })), long);
      expectTooLong(await refusal(counted.validate({ operatorToken: long }, { token: "a.b.c", audience: "ehr-api" })), long);
      expectTooLong(await refusal(counted.revoke({ operatorToken: long }, { target: "token", id: "x" })), long);
      expect(calls).toBe(0);

      const edge = await refusal(counted.release({ token: "t".repeat(MAX_BEARER_TOKEN_LENGTH) }));
      expect(edge.message).toBe("counted");
      expect(calls).toBe(1);
    } finally {
      counted.close();
      server.forceShutdown();
    }
  });

  it("against the real broker: refused locally, and the client's channel keeps working", async () => {
    const long = `${(await issue()).accessToken}${"A".repeat(MAX_BEARER_TOKEN_LENGTH)}`;
    const started = Date.now();
    expectTooLong(await refusal(client.release({ token: long })), long);
    // Refused at once, not at the call's deadline.
    expect(Date.now() - started).toBeLessThan(DEFAULT_TIMEOUT_MS);
    expect((await validate((await issue()).accessToken)).valid).toBe(true);
  });
});

describe("client options", () => {
  it("refuses plaintext to a non-loopback address, and allows it on loopback or when explicit", () => {
    expect(() => new BrokerClient("broker.example.com:443")).toThrow(TypeError);
    expect(() => new BrokerClient("dns:///10.0.0.5:7443")).toThrow(TypeError);
    for (const address of ["127.0.0.1:7443", "localhost:7443", "[::1]:7443", "dns:///localhost:7443", "unix:/tmp/baton.sock"]) {
      new BrokerClient(address).close();
    }
    new BrokerClient("broker.example.com:443", { credentials: credentials.createInsecure() }).close();
    new BrokerClient("broker.example.com:443", { credentials: credentials.createSsl() }).close();
  });

  it("an unreachable broker fails as a BatonError without a reason", async () => {
    const dead = new BrokerClient("127.0.0.1:1", { timeoutMs: 2000 });
    try {
      const e = await refusal(dead.getKeySet());
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(e.code);
      expect(e.reason).toBe("");
    } finally {
      dead.close();
    }
  });

  it("an aborted signal cancels the call", async () => {
    const ac = new AbortController();
    ac.abort();
    const e = await refusal(client.getKeySet({ signal: ac.signal }));
    expect(e.code).toBe(status.CANCELLED);
    const ac2 = new AbortController();
    const p = client.validate(app, { token: "a.b.c", audience: "ehr-api" }, { signal: ac2.signal });
    ac2.abort();
    const e2 = await refusal(p);
    expect(e2.code).toBe(status.CANCELLED);
  });
});
