// The gRPC server interceptor and the HTTP middleware against a real broker
// (test/helpers/broker.ts), each in front of a tiny server on 127.0.0.1:0:
// they refuse calls without a token, with a revoked token, without or with a
// bad proof, or without the scope the method needs, with the status codes
// and reasons documented in middleware.ts; and hand the claims to handlers.

import {
  credentials,
  makeGenericClientConstructor,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type Client,
  type ServiceDefinition,
  type ServiceError,
} from "@grpc/grpc-js";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import {
  AgentKey,
  BatonError,
  batonHttpMiddleware,
  batonServerInterceptor,
  BrokerClient,
  fromServiceError,
  grpcClaims,
  httpClaims,
  httpHtm,
  PROOF_METADATA_KEY,
  RevocationSubscriber,
  TokenVerifier,
  type AppCredentials,
  type IssueRequest,
} from "../src/index.js";

async function eventually(fn: () => Promise<boolean>, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

let b: TestBroker;
let app: AppCredentials;
let broker: BrokerClient;
let subscriber: RevocationSubscriber;
let verifier: TokenVerifier;

const issue = (req: Partial<IssueRequest> = {}) =>
  broker.issue(app, { taskId: "task-1", scopes: ["read:records:*"], audiences: ["ehr-api"], humanPrincipal: "user:alice", ...req });

beforeAll(async () => {
  b = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
  const a = await createApp(b);
  app = { clientId: a.appId, clientSecret: a.secret };
  broker = new BrokerClient(b.address);
  subscriber = new RevocationSubscriber({ target: b.address, caller: app, backoffBaseMs: 50, backoffMaxMs: 500 });
  subscriber.start();
  await subscriber.ready();
  verifier = new TokenVerifier({ audience: "ehr-api", issuer: "https://baton.local", keys: broker, revocations: subscriber, maxStalenessMs: 5000 });
  await verifier.loadKeys();
});
afterAll(async () => {
  verifier?.close();
  subscriber?.close();
  broker?.close();
  await b?.stop();
});

describe("gRPC server interceptor", () => {
  const json = {
    requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
    requestDeserialize: (buf: Buffer) => JSON.parse(buf.toString()) as unknown,
    responseSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
    responseDeserialize: (buf: Buffer) => JSON.parse(buf.toString()) as unknown,
    requestStream: false,
    responseStream: false,
  } as const;
  const READ = "/test.Records/Read";
  const WRITE = "/test.Records/Write";
  const service: ServiceDefinition = {
    Read: { path: READ, ...json },
    Write: { path: WRITE, ...json },
    Health: { path: "/test.Records/Health", ...json },
  };
  let server: Server;
  let records: Client & Record<string, Function>;

  beforeAll(async () => {
    server = new Server({
      interceptors: [batonServerInterceptor(verifier, { requiredScopes: { [WRITE]: ["write:prescriptions:P-1"] }, publicMethods: ["/test.Records/Health"] })],
    });
    const answer = (call: { metadata: Metadata; request: unknown }, cb: (e: null, r: unknown) => void) => {
      const c = grpcClaims(call);
      cb(null, { agentId: c?.agentId ?? null, human: c?.humanPrincipal ?? null, echo: call.request });
    };
    server.addService(service, { Read: answer, Write: answer, Health: answer });
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const Ctor = makeGenericClientConstructor(service, "Records");
    records = new Ctor(`127.0.0.1:${port}`, credentials.createInsecure()) as Client & Record<string, Function>;
  });
  afterAll(async () => {
    records?.close();
    await new Promise<void>((r) => (server ? server.tryShutdown(() => r()) : r()));
  });

  const invoke = (method: "Read" | "Write" | "Health", md: Metadata): Promise<{ agentId: string | null; human: string | null; echo: unknown }> =>
    new Promise((res, rej) => records[method]!({ n: 1 }, md, { deadline: Date.now() + 5000 }, (e: ServiceError | null, r: never) => (e ? rej(fromServiceError(e)) : res(r))));
  const refusal = async (p: Promise<unknown>): Promise<BatonError> => {
    try {
      await p;
    } catch (err) {
      return err as BatonError;
    }
    throw new Error("expected the call to be refused");
  };
  const md = async (token: string | null, key?: AgentKey, method = READ): Promise<Metadata> => {
    const m = new Metadata();
    if (token !== null) m.set("authorization", `Bearer ${token}`);
    if (key && token) m.set(PROOF_METADATA_KEY, await key.createProof(method, token));
    return m;
  };

  it("passes a valid token and gives the handler its claims", async () => {
    const t = await issue();
    const r = await invoke("Read", await md(t.accessToken));
    expect(r).toEqual({ agentId: t.claims.agentId, human: "user:alice", echo: { n: 1 } });
  });

  it("refuses a call without credentials (UNAUTHENTICATED, CREDENTIALS_MISSING), but not a public method", async () => {
    const e = await refusal(invoke("Read", await md(null)));
    expect([e.code, e.reason]).toEqual([status.UNAUTHENTICATED, "CREDENTIALS_MISSING"]);
    const basic = new Metadata();
    basic.set("authorization", "Basic dXNlcjpwYXNz");
    expect((await refusal(invoke("Read", basic))).reason).toBe("CREDENTIALS_MISSING");
    expect(await invoke("Health", await md(null))).toEqual({ agentId: null, human: null, echo: { n: 1 } });
  });

  it("refuses a method's missing scope with PERMISSION_DENIED", async () => {
    const t = await issue();
    const e = await refusal(invoke("Write", await md(t.accessToken)));
    expect([e.code, e.reason, e.metadata.token_status]).toEqual([status.PERMISSION_DENIED, "TOKEN_INVALID", "INSUFFICIENT_SCOPE"]);
    const writer = await issue({ scopes: ["write:prescriptions:P-1"] });
    expect((await invoke("Write", await md(writer.accessToken))).agentId).toBe(writer.claims.agentId);
  });

  it("needs a proof for the method being called from a key-bound token", async () => {
    const key = await AgentKey.generate();
    const t = await issue({ agentKey: key });
    const e = await refusal(invoke("Read", await md(t.accessToken)));
    expect([e.code, e.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_REQUIRED"]);
    const wrongMethod = await refusal(invoke("Read", await md(t.accessToken, key, WRITE)));
    expect([wrongMethod.code, wrongMethod.reason]).toEqual([status.UNAUTHENTICATED, "PROOF_INVALID"]);
    const good = await md(t.accessToken, key);
    expect((await invoke("Read", good)).agentId).toBe(t.claims.agentId);
    expect((await refusal(invoke("Read", good))).reason).toBe("PROOF_REPLAYED");
  });

  it("refuses a released token (UNAUTHENTICATED, token_status REVOKED)", async () => {
    const t = await issue();
    await broker.release(t.credential);
    await eventually(async () => {
      const e = await invoke("Read", await md(t.accessToken)).then(() => null, (err: BatonError) => err);
      return e !== null && e.code === status.UNAUTHENTICATED && e.metadata.token_status === "REVOKED";
    }, 5000, "REVOKED");
  });
});

describe("HTTP middleware", () => {
  let server: HttpServer;
  let base: string;

  beforeAll(async () => {
    const auth = batonHttpMiddleware(verifier, { requiredScopes: (req) => (req.method === "POST" ? ["write:prescriptions:P-1"] : ["read:records:P-1"]) });
    server = createServer((req, res) =>
      auth(req, res, (err) => {
        if (err) {
          res.statusCode = 500;
          res.end();
          return;
        }
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ agentId: httpClaims(req)?.agentId }));
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  });

  const get = (path: string, headers: Record<string, string> = {}, method = "GET") => fetch(`${base}${path}`, { method, headers });
  const reason = async (res: Response): Promise<unknown> => ((await res.json()) as { reason?: unknown }).reason;

  it("builds htm as METHOD and path, without query", () => {
    expect(httpHtm("get", "/records/P-1?full=1#x")).toBe("GET /records/P-1");
    expect(httpHtm("POST", "https://api.example/records/P-1?x")).toBe("POST /records/P-1");
  });

  it("passes a valid token and exposes its claims", async () => {
    const t = await issue();
    const res = await get("/records/P-1", { authorization: `Bearer ${t.accessToken}` });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ agentId: t.claims.agentId });
  });

  it("answers 401 without a token, with a Bearer challenge", async () => {
    const res = await get("/records/P-1");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
    expect(await res.json()).toEqual({ error: "invalid_token", reason: "CREDENTIALS_MISSING" });
  });

  it("answers 403 insufficient_scope when the token does not cover the route", async () => {
    const t = await issue();
    const res = await get("/records/P-1", { authorization: `Bearer ${t.accessToken}` }, "POST");
    expect(res.status).toBe(403);
    expect(res.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    expect(await reason(res)).toBe("INSUFFICIENT_SCOPE");
  });

  it("checks a key-bound token's proof against METHOD and path", async () => {
    const key = await AgentKey.generate("EdDSA");
    const t = await issue({ agentKey: key });
    const url = `${base}/records/P-1?view=full`;
    const auth = { authorization: `Bearer ${t.accessToken}` };
    expect(await reason(await get("/records/P-1", auth))).toBe("PROOF_REQUIRED");
    const wrongPath = await get("/records/P-1", { ...auth, "baton-proof": await key.createProof(httpHtm("GET", "/records/P-2"), t.accessToken) });
    expect(wrongPath.status).toBe(401);
    expect(wrongPath.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect(await reason(wrongPath)).toBe("PROOF_INVALID");
    const ok = await fetch(url, { headers: { ...auth, "baton-proof": await key.createProof(httpHtm("GET", url), t.accessToken) } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ agentId: t.claims.agentId });
  });

  it("answers 401 for a released token", async () => {
    const t = await issue();
    await broker.release(t.credential);
    await eventually(async () => {
      const res = await get("/records/P-1", { authorization: `Bearer ${t.accessToken}` });
      return res.status === 401 && (await reason(res)) === "REVOKED";
    }, 5000, "REVOKED");
  });
});
