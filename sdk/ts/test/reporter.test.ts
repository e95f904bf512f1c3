// AccessReporter and the middleware's reporting against a real broker
// (test/helpers/broker.ts): decisions arrive as audit events (read from the
// broker's PostgreSQL); report() does no I/O of its own; with the broker
// unreachable, verification still answers, the buffer stays bounded and
// drops are counted; a batch the broker refuses is counted, not retried.

import { credentials, makeGenericClientConstructor, Metadata, Server, ServerCredentials, type Client, type ServiceDefinition, type ServiceError } from "@grpc/grpc-js";
import { createServer, type Server as HttpServer } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, createApp, operatorMd, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import {
  AccessReporter,
  batonHttpMiddleware,
  batonServerInterceptor,
  BrokerClient,
  grpcClaims,
  RevocationSubscriber,
  TokenVerifier,
  type AccessDecision,
  type AppCredentials,
  type IssuedToken,
} from "../src/index.js";

let b: TestBroker;
let app: AppCredentials;
let rs: AppCredentials;
let broker: BrokerClient;
let subscriber: RevocationSubscriber;
let verifier: TokenVerifier;

beforeAll(async () => {
  b = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
  const a = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxDelegationDepth: 2 });
  app = { clientId: a.appId, clientSecret: a.secret };
  const created = await call(b.admin.createResourceServer, b.admin, { name: "reporter-rs", audiences: ["ehr-api"] }, operatorMd());
  rs = { clientId: created.resourceServer!.resourceServerId, clientSecret: created.clientSecret };
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

const issue = (taskId = "task-r"): Promise<IssuedToken> =>
  broker.issue(app, { taskId, scopes: ["read:records:*"], audiences: ["ehr-api"], humanPrincipal: "user:alice" });

interface Event {
  kind: string;
  actor: string;
  data: Record<string, unknown>;
}
async function eventsFor(tokenId: string): Promise<Event[]> {
  const { rows } = await b.database.db.query<{ payload: string }>(
    "SELECT payload FROM audit_events WHERE kind LIKE 'access.%' AND payload::jsonb #>> '{data,token_id}' = $1 ORDER BY seq",
    [tokenId],
  );
  return rows.map((r) => JSON.parse(r.payload) as Event);
}

async function eventually(fn: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** An address where nothing listens: a port bound, then released. */
async function deadAddress(): Promise<string> {
  const s = createTcpServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `127.0.0.1:${port}`;
}

const decision = (t: IssuedToken, over: Partial<AccessDecision> = {}): AccessDecision => ({
  tokenId: t.claims.tokenId,
  agentId: t.claims.agentId,
  allowed: true,
  scope: "read:records:P-1",
  resource: "GET /records/P-1",
  outcome: "200",
  ...over,
});

describe("AccessReporter", () => {
  it("delivers decisions in the background; the broker stores them with the token's lineage", async () => {
    const root = await issue("deliver");
    const child = await broker.delegate(root.credential, { scopes: ["read:records:P-1"] });
    const reporter = new AccessReporter({ broker, credentials: rs, audience: "ehr-api", flushIntervalMs: 50 });
    expect(reporter.report(decision(child))).toBe(true);
    expect(reporter.report(decision(child, { allowed: false, reason: "TOKEN_STATUS_REVOKED", outcome: "401" }))).toBe(true);
    await eventually(() => reporter.stats.sent === 2, "the background flush");
    expect(reporter.stats).toEqual({ sent: 2, dropped: 0, failedBatches: 0, rejected: 0, pending: 0 });
    const events = await eventsFor(child.claims.tokenId);
    expect(events.map((e) => e.kind)).toEqual(["access.allowed", "access.denied"]);
    expect(events[0]!.actor).toBe(`resource_server:${rs.clientId}`);
    expect(events[0]!.data).toMatchObject({
      agent_id: child.claims.agentId,
      human: "user:alice",
      lineage: [{ token_id: root.claims.tokenId, agent_id: root.claims.agentId }],
      resource: "GET /records/P-1",
      outcome: "200",
    });
    expect(events[1]!.data).toMatchObject({ allowed: false, reason: "TOKEN_STATUS_REVOKED" });
    await reporter.close();
  });

  it("report() does no I/O: a full batch is sent only after report() has returned", async () => {
    const t = await issue("no-io");
    const calls: number[] = [];
    // A broker client that records when the reporter reaches the network.
    const recording = new (class extends BrokerClient {
      override reportAccess(...args: Parameters<BrokerClient["reportAccess"]>) {
        calls.push(args[1].length);
        return super.reportAccess(...args);
      }
    })(b.address);
    const reporter = new AccessReporter({ broker: recording, credentials: rs, audience: "ehr-api", batchSize: 10, flushIntervalMs: 60_000 });
    for (let i = 0; i < 25; i++) expect(reporter.report(decision(t))).toBe(true);
    // Synchronously after 25 reports, two batches are full, and nothing was sent.
    expect(calls).toEqual([]);
    expect(reporter.stats.pending).toBe(25);
    // The full batches go out on their own (the interval is a minute away).
    await eventually(() => reporter.stats.sent >= 20, "full batches sent");
    expect(calls.slice(0, 2)).toEqual([10, 10]);
    expect(await reporter.close()).toBe(true);
    expect(reporter.stats.sent).toBe(25);
    expect((await eventsFor(t.claims.tokenId)).length).toBe(25);
    recording.close();
  });

  it("with the broker unreachable: report() still returns at once, the buffer holds its bound, drops are counted, flush gives up at its deadline", async () => {
    const t = await issue("unreachable");
    const reporter = new AccessReporter({ broker: await deadAddress(), credentials: rs, audience: "ehr-api", bufferSize: 100, batchSize: 50, flushIntervalMs: 20, minBackoffMs: 20, maxBackoffMs: 100, timeoutMs: 1000 });
    const accepted = Array.from({ length: 150 }, () => reporter.report(decision(t)));
    expect(accepted.filter(Boolean).length).toBe(100);
    expect(reporter.stats).toMatchObject({ pending: 100, dropped: 50, sent: 0 });
    await eventually(() => reporter.stats.failedBatches >= 2, "retries against the dead address");
    // Retried batches stay queued; the bound still holds.
    expect(reporter.report(decision(t))).toBe(false);
    expect(reporter.stats).toMatchObject({ pending: 100, dropped: 51, sent: 0, rejected: 0 });
    expect(await reporter.flush(300)).toBe(false);
    expect(await reporter.close(100)).toBe(false);
    // Closed: later decisions are dropped, counted.
    expect(reporter.report(decision(t))).toBe(false);
    expect(reporter.stats.dropped).toBe(52);
  });

  it("drops a report the broker refuses (a token it never issued), counts it, and delivers the rest of the batch", async () => {
    const t = await issue("rejected");
    const errors: string[] = [];
    const reporter = new AccessReporter({ broker, credentials: rs, audience: "ehr-api", flushIntervalMs: 60_000, onError: (e) => errors.push(`${e.reason}@${e.metadata.index}`) });
    reporter.report(decision(t, { resource: "GET /first" }));
    reporter.report(decision(t, { tokenId: "not-a-token" }));
    reporter.report(decision(t, { resource: "GET /third" }));
    expect(await reporter.flush()).toBe(true);
    expect(reporter.stats).toMatchObject({ sent: 2, failedBatches: 1, rejected: 1, pending: 0 });
    expect(errors).toEqual(["NOT_FOUND@1"]);
    expect((await eventsFor(t.claims.tokenId)).map((e) => e.data.resource)).toEqual(["GET /first", "GET /third"]);
    await reporter.close();
  });

  it("checks its arguments as the other SDK calls do", () => {
    expect(() => new AccessReporter({ broker, credentials: rs, audience: "" })).toThrow(TypeError);
    expect(() => new AccessReporter({ broker, credentials: rs, audience: "ehr-api", batchSize: 501 })).toThrow(/batchSize/);
    expect(() => new AccessReporter({ broker: 42 as never, credentials: rs, audience: "ehr-api" })).toThrow(/broker/);
    const r = new AccessReporter({ broker, credentials: rs, audience: "ehr-api" });
    expect(() => r.report({ tokenId: "t", agentId: "a", allowed: "yes" as never })).toThrow(/allowed/);
    expect(() => r.report({ tokenId: ["t"] as never, agentId: "a", allowed: true })).toThrow(/tokenId/);
    void r.close(10);
  });
});

describe("middleware reporting", () => {
  it("HTTP: reports allowed requests with the handler's status and refusals with their reason", async () => {
    const reporter = new AccessReporter({ broker, credentials: rs, audience: "ehr-api", flushIntervalMs: 20 });
    const auth = batonHttpMiddleware(verifier, { requiredScopes: (req) => (req.method === "POST" ? ["write:records:P-1"] : ["read:records:P-1"]), reporter });
    const server: HttpServer = createServer((req, res) =>
      auth(req, res, () => {
        res.statusCode = 204;
        res.end();
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const t = await issue("http-mw");
      const headers = { authorization: `Bearer ${t.accessToken}` };
      expect((await fetch(`${base}/records/P-1`, { headers })).status).toBe(204);
      expect((await fetch(`${base}/records/P-1`, { method: "POST", headers })).status).toBe(403);
      // No verified token: nothing to report about.
      expect((await fetch(`${base}/records/P-1`)).status).toBe(401);
      expect((await fetch(`${base}/records/P-1`, { headers: { authorization: "Bearer x.y.z" } })).status).toBe(401);
      await eventually(async () => (await eventsFor(t.claims.tokenId)).length === 2, "two events");
      const [ok, denied] = await eventsFor(t.claims.tokenId);
      expect([ok!.kind, ok!.data.resource, ok!.data.outcome, ok!.data.scopes]).toEqual(["access.allowed", "GET /records/P-1", "204", ["read:records:P-1"]]);
      expect([denied!.kind, denied!.data.reason, denied!.data.outcome, denied!.data.resource]).toEqual(["access.denied", "TOKEN_STATUS_INSUFFICIENT_SCOPE", "403", "POST /records/P-1"]);
      expect(reporter.stats).toMatchObject({ sent: 2, dropped: 0, rejected: 0 });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await reporter.close();
    }
  });

  it("gRPC: reports the call's final status; with the broker unreachable the call is answered all the same", async () => {
    const json = {
      requestSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
      requestDeserialize: (buf: Buffer) => JSON.parse(buf.toString()) as unknown,
      responseSerialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
      responseDeserialize: (buf: Buffer) => JSON.parse(buf.toString()) as unknown,
      requestStream: false,
      responseStream: false,
    } as const;
    const service: ServiceDefinition = { Read: { path: "/test.Records/Read", ...json } };
    const live = new AccessReporter({ broker, credentials: rs, audience: "ehr-api", flushIntervalMs: 20 });
    const dead = new AccessReporter({ broker: await deadAddress(), credentials: rs, audience: "ehr-api", flushIntervalMs: 20, minBackoffMs: 20, bufferSize: 2 });
    const servers: Server[] = [];
    const clients: (Client & Record<string, Function>)[] = [];
    for (const reporter of [live, dead]) {
      const server = new Server({ interceptors: [batonServerInterceptor(verifier, { reporter })] });
      server.addService(service, { Read: (c: { metadata: Metadata }, cb: (e: null, r: unknown) => void) => cb(null, { agent: grpcClaims(c)?.agentId }) });
      const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
      servers.push(server);
      const Ctor = makeGenericClientConstructor(service, "Records");
      clients.push(new Ctor(`127.0.0.1:${port}`, credentials.createInsecure()) as Client & Record<string, Function>);
    }
    try {
      const t = await issue("grpc-mw");
      const md = new Metadata();
      md.set("authorization", `Bearer ${t.accessToken}`);
      const read = (c: Client & Record<string, Function>) =>
        new Promise<{ agent: string }>((res, rej) => c.Read!({}, md, { deadline: Date.now() + 5000 }, (e: ServiceError | null, r: never) => (e ? rej(e) : res(r))));
      expect((await read(clients[0]!)).agent).toBe(t.claims.agentId);
      await eventually(async () => (await eventsFor(t.claims.tokenId)).length === 1, "the event");
      const [e] = await eventsFor(t.claims.tokenId);
      expect([e!.kind, e!.data.resource, e!.data.outcome]).toEqual(["access.allowed", "/test.Records/Read", "OK"]);
      // The unreachable broker does not stop verification, and its buffer stays at 2.
      for (let i = 0; i < 5; i++) expect((await read(clients[1]!)).agent).toBe(t.claims.agentId);
      expect(dead.stats).toMatchObject({ sent: 0, dropped: 3, pending: 2 });
    } finally {
      for (const c of clients) c.close();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.tryShutdown(() => r()))));
      await live.close();
      await dead.close(50);
    }
  });
});
