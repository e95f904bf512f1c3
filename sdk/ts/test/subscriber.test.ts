// RevocationSubscriber against a real broker (test/helpers/broker.ts):
// snapshot then live events, every target kind reaching isRevoked, resume
// after a broker restart on a new port with no duplicates, re-snapshot on an
// invalid cursor, nothing left running after close (in a child process); and
// a property test that RevocationSet agrees with a direct reading of the
// rules and with the broker's own set.

import { Metadata, Server, ServerCredentials, status, type ServerWritableStream } from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MasterKey } from "../../../server/crypto/master-key.js";
import { RevocationSet as ServerRevocationSet, type RevocationTarget as ServerTarget } from "../../../server/domain/revocations.js";
import { call, createApp, OPERATOR_TOKEN, operatorMd, startTestBroker, type TestBroker } from "../../../test/helpers/broker.js";
import {
  BatonError,
  BrokerClient,
  RevocationSet,
  RevocationSubscriber,
  RevocationTarget,
  type AppCredentials,
  type IssuedToken,
  type Revocation,
  type RevocationFacts,
  type SubscriberState,
} from "../src/index.js";
import { BrokerServiceService, type StreamRevocationsRequest, type StreamRevocationsResponse } from "../src/gen/baton/v1/broker.js";
import { ErrorInfo } from "../src/gen/google/rpc/error_details.js";
import { Status } from "../src/gen/google/rpc/status.js";

const ENV = { BATON_STREAM_CHECKPOINT_SECONDS: "1" };
const FAST = { backoffBaseMs: 50, backoffMaxMs: 500 };

/** Polls `fn` until it returns true; fails after `ms`. */
async function eventually(fn: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The revocation facts of a token, read from its (unverified) payload. */
function facts(t: IssuedToken): RevocationFacts {
  const p = JSON.parse(Buffer.from(t.accessToken.split(".")[1]!, "base64url").toString()) as {
    jti: string;
    sub: string;
    client_id: string;
    task_id: string;
    iat: number;
    root_iat?: number;
    lineage?: { jti: string; sub: string }[];
  };
  return {
    tokenId: p.jti,
    agentId: p.sub,
    appId: p.client_id,
    taskId: p.task_id,
    lineage: (p.lineage ?? []).map((e) => ({ tokenId: e.jti, agentId: e.sub })),
    rootIssuedAtMs: Math.round((p.root_iat ?? p.iat) * 1000),
  };
}

interface Recorded {
  readonly revocations: { r: Revocation; snapshot: boolean }[];
  readonly states: { state: SubscriberState; error: BatonError | undefined }[];
}

function record(sub: RevocationSubscriber): Recorded {
  const rec: Recorded = { revocations: [], states: [] };
  sub.onRevocation((r, info) => rec.revocations.push({ r, snapshot: info.snapshot }));
  sub.onStateChange((state, error) => rec.states.push({ state, error }));
  return rec;
}

describe("against one broker", () => {
  let b: TestBroker;
  let app: AppCredentials;
  /** Subscribes as a resource server for ehr-api: it sees every app's revocations for that audience. */
  let resourceServer: AppCredentials;
  let client: BrokerClient;
  const subs: RevocationSubscriber[] = [];
  const subscriber = (extra: { cursor?: string } = {}): RevocationSubscriber => {
    const s = new RevocationSubscriber({ target: b.address, caller: resourceServer, ...FAST, ...extra });
    subs.push(s);
    return s;
  };
  const issue = (taskId = "task-1", c: AppCredentials = app) => client.issue(c, { taskId, scopes: ["read:records:*"], audiences: ["ehr-api"] });

  beforeAll(async () => {
    b = await startTestBroker(ENV);
    const a = await createApp(b);
    app = { clientId: a.appId, clientSecret: a.secret };
    const rs = await call(b.admin.createResourceServer, b.admin, { name: "sdk-ts-ehr", audiences: ["ehr-api"] }, operatorMd());
    resourceServer = { clientId: rs.resourceServer!.resourceServerId, clientSecret: rs.clientSecret };
    client = new BrokerClient(b.address);
  });
  afterAll(async () => {
    for (const s of subs) s.close();
    client?.close();
    await b?.stop();
  });

  it("receives a snapshot of earlier revocations, then live events, then checkpoints", async () => {
    const before = await issue();
    const later = await issue();
    await client.revoke(app, { target: "token", id: before.claims.tokenId });

    const sub = subscriber();
    const rec = record(sub);
    expect(sub.freshAtMs).toBeNull();
    sub.start();
    await sub.ready();
    expect(rec.revocations.some((e) => e.snapshot && e.r.id === before.claims.tokenId)).toBe(true);
    expect(sub.isRevoked(facts(before))).toBe(true);
    expect(sub.isRevoked(facts(later))).toBe(false);
    expect(sub.state).toBe("live");
    const snapshotCursor = sub.cursor;
    expect(snapshotCursor).not.toBe("");
    const firstFresh = sub.freshAtMs!;
    expect(firstFresh).not.toBeNull();

    const rev = await client.revoke(app, { target: "token", id: later.claims.tokenId });
    await eventually(() => sub.isRevoked(facts(later)), 5000, "the live revocation");
    const live = rec.revocations.find((e) => e.r.id === later.claims.tokenId);
    expect(live?.snapshot).toBe(false);
    expect(live?.r.cursor).toBe(rev.cursor);
    // Checkpoints keep the view fresh while idle.
    await eventually(() => sub.freshAtMs! > firstFresh, 5000, "a checkpoint");
  });

  it("applies every target kind by the rules: agent, task (issued before only), chain, app", async () => {
    const sub = subscriber();
    sub.start();
    await sub.ready();

    const byAgent = await issue();
    await client.revoke(app, { target: "agent", id: byAgent.claims.agentId });
    await eventually(() => sub.isRevoked(facts(byAgent)), 5000, "agent revocation");

    const inTask = await issue("task-reused");
    await client.revoke(app, { target: "task", id: "task-reused" });
    await eventually(() => sub.isRevoked(facts(inTask)), 5000, "task revocation");
    // The task id reused after the revocation is not poisoned.
    const reused = await issue("task-reused");
    expect(sub.isRevoked(facts(reused))).toBe(false);

    const root = await issue("task-chain");
    const child = await client.delegate(root.credential, { scopes: ["read:records:P-1"] });
    const grandchild = await client.delegate(child.credential, { scopes: ["read:records:P-1"] });
    expect(facts(grandchild).lineage.map((e) => e.tokenId)).toEqual([root.claims.tokenId, child.claims.tokenId]);
    // Revoking the middle token kills it and what descends from it, not its parent.
    await client.release(child.credential);
    await eventually(() => sub.isRevoked(facts(grandchild)), 5000, "ancestor revocation");
    expect(sub.isRevoked(facts(child))).toBe(true);
    expect(sub.isRevoked(facts(root))).toBe(false);
    // A chain revocation named by any member kills the whole tree, root included.
    const sibling = await client.delegate(root.credential, { scopes: ["read:records:P-1"] });
    await client.revoke(app, { target: "chain", id: sibling.claims.tokenId });
    await eventually(() => sub.isRevoked(facts(root)), 5000, "chain revocation");
    expect(sub.isRevoked(facts(sibling))).toBe(true);

    const other = await createApp(b);
    const otherApp = { clientId: other.appId, clientSecret: other.secret };
    const ofOther = await issue("task-1", otherApp);
    const keep = await issue("task-1");
    await client.revoke({ operatorToken: OPERATOR_TOKEN }, { target: "app", id: other.appId });
    await eventually(() => sub.isRevoked(facts(ofOther)), 5000, "app revocation");
    expect(sub.isRevoked(facts(keep))).toBe(false);
  });

  it("re-snapshots when its resume cursor is not one the broker issued (CURSOR_INVALID)", async () => {
    const t = await issue();
    await client.revoke(app, { target: "token", id: t.claims.tokenId });
    const sub = subscriber({ cursor: "999999" });
    const rec = record(sub);
    sub.start();
    await sub.ready();
    expect(rec.states.some((s) => s.error?.reason === "CURSOR_INVALID")).toBe(true);
    expect(rec.revocations.some((e) => e.snapshot && e.r.id === t.claims.tokenId)).toBe(true);
    expect(sub.isRevoked(facts(t))).toBe(true);
    expect(sub.cursor).not.toBe("999999");
    expect(BigInt(sub.cursor)).toBeLessThan(999999n);
  });

  it("keeps its stream when the broker kills a BrokerClient's connection over oversized metadata", async () => {
    const sub = subscriber();
    const rec = record(sub);
    sub.start();
    await sub.ready();
    const statesBefore = rec.states.length;
    // Through the generated stub: the SDK itself refuses to send this (MAX_BEARER_TOKEN_LENGTH).
    // Random, so that header compression cannot shrink it below the broker's HTTP/2 limit.
    const md = new Metadata();
    md.set("authorization", `Bearer ${randomBytes(100_000).toString("base64url")}`);
    const err = await new Promise<unknown>((res) =>
      client.stub.validate({ token: "a.b.c", audience: "ehr-api", requiredScopes: [] }, md, { deadline: Date.now() + 3000 }, (e) => res(e)),
    );
    expect(err).not.toBeNull();
    // The stream lives on: checkpoints keep coming, and it never went to backoff.
    const fresh = sub.freshAtMs!;
    await eventually(() => sub.freshAtMs! > fresh, 5000, "a checkpoint after the connection was killed");
    expect(rec.states.slice(statesBefore).map((s) => s.state)).not.toContain("backoff");
    expect(sub.state).toBe("live");
    // And the client itself recovers on a new connection.
    expect((await client.getKeySet()).keys.length).toBeGreaterThan(0);
  });

  it("leaves nothing that keeps the process alive after close (checked in a child process)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "baton-sub-"));
    const script = join(dir, "close.mjs");
    const sdk = pathToFileURL(resolve(import.meta.dirname, "../src/index.ts")).href;
    writeFileSync(
      script,
      `import { RevocationSubscriber } from ${JSON.stringify(sdk)};
const caller = { clientId: process.env.CLIENT_ID, clientSecret: process.env.CLIENT_SECRET };
const live = new RevocationSubscriber({ target: process.env.TARGET, caller });
live.start();
await live.ready();
live.close();
// One closed while waiting to reconnect to nothing.
const dead = new RevocationSubscriber({ target: "127.0.0.1:1", caller, backoffBaseMs: 60000, backoffMaxMs: 60000 });
dead.start();
await new Promise((r) => dead.onStateChange((s) => s === "backoff" && r()));
dead.close();
console.log("closed");
`,
    );
    try {
      const child = spawn(process.execPath, ["--import", "tsx", script], {
        cwd: resolve(import.meta.dirname, "../../.."),
        env: { ...process.env, TARGET: b.address, CLIENT_ID: app.clientId, CLIENT_SECRET: app.clientSecret },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const code = await new Promise<number | string>((res) => {
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          res("still running 15 s after close");
        }, 15_000);
        child.on("exit", (c) => {
          clearTimeout(timer);
          res(c ?? -1);
        });
      });
      expect(code, out).toBe(0);
      expect(out).toContain("closed");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("across a broker restart", () => {
  it("resumes from its cursor on a new address after SHUTTING_DOWN, and sees later revocations exactly once", async () => {
    const env = { ...ENV, BATON_MASTER_KEY: MasterKey.generate() };
    const b1 = await startTestBroker(env);
    let b2: TestBroker | null = null;
    let address = b1.address;
    const a = await createApp(b1);
    const app = { clientId: a.appId, clientSecret: a.secret };
    const c1 = new BrokerClient(b1.address);
    let c2: BrokerClient | null = null;
    const sub = new RevocationSubscriber({ target: () => address, caller: app, ...FAST });
    const rec = record(sub);
    try {
      const t0 = await c1.issue(app, { taskId: "t", scopes: ["read:records:*"], audiences: ["ehr-api"] });
      await c1.revoke(app, { target: "token", id: t0.claims.tokenId });
      sub.start();
      await sub.ready();
      const t1 = await c1.issue(app, { taskId: "t", scopes: ["read:records:*"], audiences: ["ehr-api"] });
      const t2 = await c1.issue(app, { taskId: "t", scopes: ["read:records:*"], audiences: ["ehr-api"] });
      await c1.revoke(app, { target: "token", id: t1.claims.tokenId });
      await eventually(() => sub.isRevoked(facts(t1)), 5000, "revocation before the restart");

      await b1.broker.stop();
      await eventually(() => rec.states.some((s) => s.error?.reason === "SHUTTING_DOWN"), 5000, "SHUTTING_DOWN");
      const seenBefore = rec.revocations.length;

      b2 = await startTestBroker(env, b1.database);
      expect(b2.address).not.toBe(b1.address);
      address = b2.address;
      c2 = new BrokerClient(b2.address);
      const rev = await c2.revoke(app, { target: "token", id: t2.claims.tokenId });
      await eventually(() => sub.isRevoked(facts(t2)), 10_000, "revocation after the restart");

      // Resumed, not re-snapshotted: nothing seen before came again.
      const after = rec.revocations.slice(seenBefore);
      expect(after.map((e) => e.r.id)).toEqual([t2.claims.tokenId]);
      expect(after[0]!.snapshot).toBe(false);
      expect(sub.cursor).toBe(rev.cursor);
      const cursors = rec.revocations.map((e) => e.r.cursor);
      expect(new Set(cursors).size).toBe(cursors.length);
      expect(sub.isRevoked(facts(t0)) && sub.isRevoked(facts(t1))).toBe(true);
    } finally {
      sub.close();
      c1.close();
      c2?.close();
      await b2?.stop();
      await b1.stop();
    }
  });
});

describe("against a scripted broker", () => {
  type Stream = ServerWritableStream<StreamRevocationsRequest, StreamRevocationsResponse>;
  const failWith = (call: Stream, code: status, reason: string, metadata: Record<string, string> = {}): void => {
    const info = ErrorInfo.encode({ reason, domain: "baton.dev", metadata }).finish();
    const st = Status.encode({ code, message: reason, details: [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(info) }] }).finish();
    const md = new Metadata();
    md.set("grpc-status-details-bin", Buffer.from(st));
    call.emit("error", { code, details: reason, metadata: md });
  };
  const rev = (id: string, cursor: string): StreamRevocationsResponse => ({
    revocation: { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id, appId: "app", revokeTime: new Date(), expireTime: new Date(Date.now() + 60_000), cursor },
  });
  const tokenFacts = (tokenId: string): RevocationFacts => ({ tokenId, agentId: "agent", appId: "app", taskId: "task", lineage: [], rootIssuedAtMs: 0 });

  it("resumes from its own cursor after TOO_SLOW, re-snapshots after CURSOR_EXPIRED, and swaps sets only at SnapshotComplete", async () => {
    const cursors: string[] = [];
    let third: Stream | null = null;
    const script: ((call: Stream) => void)[] = [
      (call) => {
        call.write(rev("tA", "1"));
        call.write({ snapshotComplete: { cursor: "1" } });
        call.write(rev("tB", "2"));
        // The broker's metadata claims more than was applied here; the subscriber's own cursor wins.
        setTimeout(() => failWith(call, status.RESOURCE_EXHAUSTED, "SUBSCRIBER_TOO_SLOW", { cursor: "5" }), 50);
      },
      (call) => failWith(call, status.OUT_OF_RANGE, "CURSOR_EXPIRED"),
      (call) => {
        third = call;
        call.write(rev("tC", "7"));
      },
    ];
    const server = new Server();
    server.addService(BrokerServiceService, {
      streamRevocations: (call: Stream) => {
        cursors.push(call.request.cursor);
        script[cursors.length - 1]?.(call);
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const sub = new RevocationSubscriber({ target: `127.0.0.1:${port}`, caller: { operatorToken: "op" }, ...FAST });
    const rec = record(sub);
    try {
      sub.start();
      await sub.ready();
      await eventually(() => third !== null, 5000, "the third connection");
      await eventually(() => sub.isRevoked(tokenFacts("tC")), 5000, "the snapshot entry");
      expect(cursors).toEqual(["", "2", ""]);
      expect(rec.states.map((s) => s.error?.reason).filter(Boolean)).toEqual(["SUBSCRIBER_TOO_SLOW", "CURSOR_EXPIRED"]);
      // Mid-snapshot: the old set still answers, the partial snapshot adds to it, freshness does not move.
      const fresh = sub.freshAtMs;
      expect(sub.isRevoked(tokenFacts("tA")) && sub.isRevoked(tokenFacts("tB"))).toBe(true);
      expect(sub.state).toBe("snapshot");
      expect(sub.cursor).toBe("");

      third!.write({ snapshotComplete: { cursor: "7" } });
      await eventually(() => sub.cursor === "7", 5000, "SnapshotComplete");
      expect(sub.isRevoked(tokenFacts("tA")) || sub.isRevoked(tokenFacts("tB"))).toBe(false);
      expect(sub.isRevoked(tokenFacts("tC"))).toBe(true);
      expect(sub.freshAtMs).toBeGreaterThanOrEqual(fresh!);

      // A checkpoint stamped by a clock ahead of ours never makes the view look fresher than now.
      third!.write({ checkpoint: { cursor: "8", observeTime: new Date(Date.now() + 3_600_000) } });
      await eventually(() => sub.cursor === "8", 5000, "the checkpoint");
      expect(sub.freshAtMs!).toBeLessThanOrEqual(Date.now());
    } finally {
      sub.close();
      server.forceShutdown();
    }
  });
});

describe("its own connection, and reconnecting a silent stream", () => {
  type Stream = ServerWritableStream<StreamRevocationsRequest, StreamRevocationsResponse>;
  interface Opened {
    readonly call: Stream;
    readonly cursor: string;
    readonly peer: string;
    readonly atMs: number;
  }

  /** A broker that records every stream it accepts and runs `onStream` on it; GetKeySet answers with its peer. */
  async function scripted(onStream: (call: Stream, n: number) => void) {
    const streams: Opened[] = [];
    const unaryPeers: string[] = [];
    const server = new Server();
    server.addService(BrokerServiceService, {
      streamRevocations: (call: Stream) => {
        streams.push({ call, cursor: call.request.cursor, peer: call.getPeer(), atMs: Date.now() });
        onStream(call, streams.length);
      },
      getKeySet: (call: { getPeer(): string }, cb: (err: null, res: { jwksJson: string }) => void) => {
        unaryPeers.push(call.getPeer());
        cb(null, { jwksJson: '{"keys":[]}' });
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    return { streams, unaryPeers, address: `127.0.0.1:${port}`, stop: () => server.forceShutdown() };
  }

  it("does not share its connection with a BrokerClient to the same address", async () => {
    const broker = await scripted((call) => call.write({ snapshotComplete: { cursor: "1" } }));
    const sub = new RevocationSubscriber({ target: broker.address, caller: { operatorToken: "op" }, ...FAST });
    const client = new BrokerClient(broker.address);
    try {
      sub.start();
      await sub.ready();
      await client.getKeySet();
      expect(broker.streams).toHaveLength(1);
      expect(broker.unaryPeers).toHaveLength(1);
      // Another client port: another TCP connection.
      expect(broker.unaryPeers[0]).not.toBe(broker.streams[0]!.peer);
    } finally {
      sub.close();
      client.close();
      broker.stop();
    }
  });

  it("reconnects on a new connection, from its cursor, when nothing arrives for twice the checkpoint interval", async () => {
    // The first stream completes a snapshot and then goes silent, as a half-open connection would; later ones say nothing at all.
    const broker = await scripted((call, n) => {
      if (n === 1) call.write({ snapshotComplete: { cursor: "3" } });
    });
    const sub = new RevocationSubscriber({ target: broker.address, caller: { operatorToken: "op" }, ...FAST, checkpointIntervalMs: 500 });
    const rec = record(sub);
    try {
      sub.start();
      await sub.ready();
      const fresh = sub.freshAtMs;
      await eventually(() => broker.streams.length >= 3, 20_000, "two reconnections");
      const [first, second, third] = broker.streams as [Opened, Opened, Opened];
      expect([first.cursor, second.cursor, third.cursor]).toEqual(["", "3", "3"]);
      // Not before the idle timeout (1000 ms); the upper bound is generous for a loaded machine.
      const gap = second.atMs - first.atMs;
      expect(gap).toBeGreaterThanOrEqual(950);
      expect(gap).toBeLessThan(10_000);
      // Each reconnection on a new TCP connection: the silent one may be half-open.
      expect(new Set([first.peer, second.peer, third.peer]).size).toBe(3);
      const idle = rec.states.filter((s) => s.state === "backoff").map((s) => s.error?.code);
      expect(idle.slice(0, 2)).toEqual([status.DEADLINE_EXCEEDED, status.DEADLINE_EXCEEDED]);
      // Silence does not make the view look fresh: verifiers go STALE as for any outage.
      expect(sub.freshAtMs).toBe(fresh);
    } finally {
      sub.close();
      broker.stop();
    }
  });

  it("by default, reconnects a silent stream after 10 s (twice the 5 s checkpoint interval)", async () => {
    const broker = await scripted(() => {});
    const sub = new RevocationSubscriber({ target: broker.address, caller: { operatorToken: "op" } });
    try {
      sub.start();
      await eventually(() => broker.streams.length >= 2, 25_000, "a reconnection");
      const gap = broker.streams[1]!.atMs - broker.streams[0]!.atMs;
      expect(gap).toBeGreaterThanOrEqual(9_950);
      expect(gap).toBeLessThan(25_000);
    } finally {
      sub.close();
      broker.stop();
    }
  }, 40_000);
});

describe("RevocationSet (property)", () => {
  const targets = [
    RevocationTarget.REVOCATION_TARGET_TOKEN,
    RevocationTarget.REVOCATION_TARGET_AGENT,
    RevocationTarget.REVOCATION_TARGET_TASK,
    RevocationTarget.REVOCATION_TARGET_CHAIN,
    RevocationTarget.REVOCATION_TARGET_APP,
  ] as const;
  const serverTarget: Record<(typeof targets)[number], ServerTarget> = {
    [RevocationTarget.REVOCATION_TARGET_TOKEN]: "token",
    [RevocationTarget.REVOCATION_TARGET_AGENT]: "agent",
    [RevocationTarget.REVOCATION_TARGET_TASK]: "task",
    [RevocationTarget.REVOCATION_TARGET_CHAIN]: "chain",
    [RevocationTarget.REVOCATION_TARGET_APP]: "app",
  };
  // Small alphabets, so that ids collide often.
  const tokenId = fc.constantFrom("t0", "t1", "t2", "t3");
  const agentId = fc.constantFrom("a0", "a1", "a2", "a3");
  const appId = fc.constantFrom("p0", "p1");
  const taskId = fc.constantFrom("k0", "k1");
  const time = fc.integer({ min: 0, max: 100 });
  const revocation = fc
    .record({ target: fc.constantFrom(...targets), token: tokenId, agent: agentId, app: appId, task: taskId, revokedAtMs: time, expiresAtMs: fc.integer({ min: 0, max: 200 }) })
    .map((g) => {
      const id = { 1: g.token, 2: g.agent, 3: g.task, 4: g.token, 5: g.app }[g.target];
      return { target: g.target, id, appId: g.app, revokedAtMs: g.revokedAtMs, expiresAtMs: g.expiresAtMs };
    });
  const token = fc.record({
    tokenId,
    agentId,
    appId,
    taskId,
    lineage: fc.array(fc.record({ tokenId, agentId }), { maxLength: 3 }),
    rootIssuedAtMs: time,
  });

  /** The rules of DESIGN §6, read directly. */
  function oracle(rs: readonly { target: number; id: string; appId: string; revokedAtMs: number }[], t: RevocationFacts): boolean {
    const tokenIds = [t.tokenId, ...t.lineage.map((e) => e.tokenId)];
    const agentIds = [t.agentId, ...t.lineage.map((e) => e.agentId)];
    const root = t.lineage[0]?.tokenId ?? t.tokenId;
    return rs.some((r) => {
      switch (r.target) {
        case RevocationTarget.REVOCATION_TARGET_TOKEN:
          return tokenIds.includes(r.id);
        case RevocationTarget.REVOCATION_TARGET_AGENT:
          return agentIds.includes(r.id);
        case RevocationTarget.REVOCATION_TARGET_CHAIN:
          return r.id === root;
        case RevocationTarget.REVOCATION_TARGET_TASK:
          return r.appId === t.appId && r.id === t.taskId && t.rootIssuedAtMs <= r.revokedAtMs;
        case RevocationTarget.REVOCATION_TARGET_APP:
          return r.appId === t.appId && t.rootIssuedAtMs <= r.revokedAtMs;
        default:
          return false;
      }
    });
  }

  it("isRevoked agrees with the rules and with the broker's set, before and after pruning", () => {
    fc.assert(
      fc.property(fc.array(revocation, { maxLength: 12 }), fc.array(token, { minLength: 1, maxLength: 8 }), fc.option(fc.integer({ min: 0, max: 220 })), (rs, tokens, pruneAt) => {
        const mine = new RevocationSet();
        const theirs = new ServerRevocationSet();
        rs.forEach((r, i) => {
          mine.add({ target: r.target, id: r.id, appId: r.appId, revokeTime: new Date(r.revokedAtMs), expireTime: new Date(r.expiresAtMs), cursor: String(i + 1) });
          theirs.add({ target: serverTarget[r.target], id: r.id, appId: r.appId, revokedAtMs: r.revokedAtMs, expiresAtMs: r.expiresAtMs, cursor: BigInt(i + 1) });
        });
        let live = rs;
        if (pruneAt !== null) {
          expect(mine.prune(pruneAt)).toBe(theirs.prune(pruneAt));
          live = rs.filter((r) => r.expiresAtMs >= pruneAt);
        }
        expect(mine.size).toBe(theirs.size);
        for (const t of tokens) {
          const expected = oracle(live, t);
          expect(mine.isRevoked(t)).toBe(expected);
          expect(theirs.isRevoked({ ...t, lineage: [...t.lineage] })).toBe(expected);
        }
      }),
      { numRuns: 500 },
    );
  });
});
