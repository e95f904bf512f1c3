// Tenant isolation (issue 7 item 12), on a real broker and PostgreSQL: a
// resource server streams only the revocations that can affect tokens for
// the audiences it serves, its cursor still moves past everyone else's, and
// Validate answers it only for those audiences. An app streams only its own
// revocations; the operator streams everything.

import fc from "fast-check";
import type { Metadata } from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { verifyAudit } from "../../server/storage/audit.js";
import {
  basic,
  bearer,
  call,
  createApp,
  issueRequest,
  OPERATOR_TOKEN,
  operatorMd,
  refusal,
  startTestBroker,
  type TestApp,
  type TestBroker,
} from "../helpers/broker.js";
import { lastCursor, openStream, type TestStream } from "../helpers/stream.js";

let b: TestBroker;

beforeAll(async () => {
  b = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "1" });
});
afterAll(async () => b?.stop());

interface TestResourceServer {
  readonly id: string;
  readonly secret: string;
  readonly md: Metadata;
}

let names = 0;
async function createResourceServer(audiences: string[], name = `rs-${++names}-${Math.random().toString(36).slice(2, 8)}`): Promise<TestResourceServer> {
  const res = await call(b.admin.createResourceServer, b.admin, { name, audiences }, operatorMd());
  const id = res.resourceServer!.resourceServerId;
  return { id, secret: res.clientSecret, md: basic(id, res.clientSecret) };
}

type Target = "token" | "agent" | "chain" | "task" | "app";
const TARGET: Record<Target, RevocationTarget> = {
  token: RevocationTarget.REVOCATION_TARGET_TOKEN,
  agent: RevocationTarget.REVOCATION_TARGET_AGENT,
  chain: RevocationTarget.REVOCATION_TARGET_CHAIN,
  task: RevocationTarget.REVOCATION_TARGET_TASK,
  app: RevocationTarget.REVOCATION_TARGET_APP,
};

/** Revokes as the operator; returns the cursor. */
async function revoke(target: Target, id: string, appId = ""): Promise<bigint> {
  const r = await call(b.client.revoke, b.client, { target: TARGET[target], id, appId, reason: "" }, operatorMd());
  return BigInt(r.revocation!.cursor);
}

async function issue(app: TestApp, taskId: string, audiences: string[]) {
  return call(b.client.issue, b.client, issueRequest({ taskId, audiences, scopes: ["read:records:1"] }), app.md);
}

async function delegate(token: string, audiences: string[] = []) {
  return call(b.client.delegate, b.client, { scopes: ["read:records:1"], audiences, ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, bearer(token));
}

const ready = (s: TestStream) => s.waitFor((x) => x.events.some((e) => e.snapshotComplete), 10_000, "snapshot complete");

/** Waits until the stream has seen a checkpoint (or event) at or past `cursor`. */
const passes = (s: TestStream, cursor: bigint) =>
  s.waitFor((x) => lastCursor(x) !== "" && BigInt(lastCursor(x)) >= cursor, 15_000, `cursor ${cursor}`);

/** Every revocation a subscriber receives when each kind is revoked for one app. */
async function revokeEveryKind(app: TestApp, aud: string, tag: string): Promise<{ cursors: bigint[]; secrets: string[] }> {
  const byToken = await issue(app, `${tag}-t1`, [aud]);
  const byAgent = await issue(app, `${tag}-t2`, [aud]);
  const root = await issue(app, `${tag}-t3`, [aud]);
  const child = await delegate(root.accessToken);
  await issue(app, `${tag}-task`, [aud]);
  const cursors = [
    await revoke("token", byToken.claims!.tokenId),
    await revoke("agent", byAgent.claims!.agentId),
    await revoke("chain", child.claims!.tokenId),
    await revoke("task", `${tag}-task`, app.appId),
    await revoke("app", app.appId),
  ];
  // What another tenant must never see: its task ids, agent ids, token ids.
  const secrets = [
    app.appId,
    `${tag}-task`,
    byToken.claims!.tokenId,
    byAgent.claims!.agentId,
    root.claims!.tokenId,
    child.claims!.tokenId,
  ];
  return { cursors, secrets };
}

const received = (s: TestStream): bigint[] => [...s.cursors];
const sorted = (xs: bigint[]): bigint[] => [...xs].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));

describe("the revocation stream, per tenant", () => {
  it("sends each resource server only its audiences' revocations of every kind; the operator all; an app its own", async () => {
    const appA = await createApp(b, { name: "tenant-a", ceiling: ["read:records:*"], audiences: ["a-api"] });
    const appB = await createApp(b, { name: "tenant-b", ceiling: ["read:records:*"], audiences: ["b-api"] });
    const rsA = await createResourceServer(["a-api"]);
    const rsB = await createResourceServer(["b-api"]);
    const sA = openStream(b.client, "", rsA.md);
    const sB = openStream(b.client, "", rsB.md);
    const sOp = openStream(b.client, "", operatorMd());
    const sAppA = openStream(b.client, "", appA.md);
    await Promise.all([sA, sB, sOp, sAppA].map(ready));

    // Interleaved, so B's events fall between A's.
    const a = await revokeEveryKind(appA, "a-api", "ta");
    const bb = await revokeEveryKind(appB, "b-api", "tb");
    const a2 = await revoke("task", "ta-late", appA.appId);
    const last = a2 > bb.cursors.at(-1)! ? a2 : bb.cursors.at(-1)!;

    await sOp.waitFor((x) => [...a.cursors, ...bb.cursors, a2].every((c) => x.cursors.includes(c)), 10_000, "operator sees all");
    await Promise.all([passes(sA, last), passes(sB, last), passes(sAppA, last)]);

    expect(received(sA)).toEqual([...a.cursors, a2]);
    expect(received(sAppA)).toEqual([...a.cursors, a2]);
    expect(received(sB)).toEqual(bb.cursors);
    for (const leak of bb.secrets) expect(JSON.stringify(sA.events)).not.toContain(leak);
    for (const leak of bb.secrets) expect(JSON.stringify(sAppA.events)).not.toContain(leak);
    for (const leak of a.secrets) expect(JSON.stringify(sB.events)).not.toContain(leak);
    expect(sorted(received(sOp))).toEqual(received(sOp));
    for (const s of [sA, sB, sOp, sAppA]) s.cancel();

    // A fresh snapshot is filtered the same way.
    const snapA = openStream(b.client, "", rsA.md);
    await ready(snapA);
    expect(received(snapA)).toEqual([...a.cursors, a2]);
    snapA.cancel();
  });

  it("moves a resource server's cursor past other tenants' events: resuming loses and repeats nothing", async () => {
    const appA = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ra-api"] });
    const appB = await createApp(b, { ceiling: ["read:records:*"], audiences: ["rb-api"] });
    const rsA = await createResourceServer(["ra-api"]);

    const first = openStream(b.client, "", rsA.md);
    await ready(first);
    const a1 = await revoke("task", "a-1", appA.appId);
    const b1 = await revoke("task", "b-1", appB.appId);
    const b2 = await revoke("task", "b-2", appB.appId);
    // A checkpoint carries the cursor past B's events, though none was sent.
    await passes(first, b2);
    const resumeAt = lastCursor(first);
    expect(BigInt(resumeAt)).toBeGreaterThanOrEqual(b2);
    first.cancel();

    const b3 = await revoke("task", "b-3", appB.appId);
    const a2 = await revoke("task", "a-2", appA.appId);
    const b4 = await revoke("task", "b-4", appB.appId);
    const second = openStream(b.client, resumeAt, rsA.md);
    await passes(second, b4);
    expect([...received(first), ...received(second)]).toEqual([a1, a2]);

    // Resuming from before B's events replays A's only, once each.
    const replay = openStream(b.client, (a1 - 1n).toString(), rsA.md);
    await passes(replay, b4);
    expect(received(replay)).toEqual([a1, a2]);
    expect([b1, b2, b3, b4].some((c) => received(replay).includes(c))).toBe(false);
    second.cancel();
    replay.cancel();
  });

  it("passes skipped events at once: a resumable error carries a cursor past them without waiting for a checkpoint", async () => {
    // Its own broker: no checkpoint within the test, and it is stopped.
    const own = await startTestBroker({ BATON_STREAM_CHECKPOINT_SECONDS: "300" });
    let stopped = false;
    try {
      const appB = await createApp(own, { ceiling: ["read:records:*"], audiences: ["sb-api"] });
      const created = await call(own.admin.createResourceServer, own.admin, { name: "skip-rs", audiences: ["sa-api"] }, operatorMd());
      const rsA = basic(created.resourceServer!.resourceServerId, created.clientSecret);
      const sA = openStream(own.client, "", rsA);
      const sOp = openStream(own.client, "", operatorMd());
      await Promise.all([sA, sOp].map(ready));
      const snapshotAt = BigInt(lastCursor(sA));
      const byB = await call(own.client.revoke, own.client, { target: TARGET.task, id: "skip-1", appId: "", reason: "" }, appB.md);
      const skipped = BigInt(byB.revocation!.cursor);
      // Every session hears of a revocation in the same turn: once the operator's stream has it, A's session passed it.
      await sOp.waitFor((x) => x.cursors.includes(skipped), 10_000, "the operator stream");
      stopped = true;
      await own.stop();
      await sA.waitFor((x) => x.ended !== null, 10_000, "SHUTTING_DOWN");
      expect(sA.cursors).toEqual([]);
      expect(sA.ended).toMatchObject({ reason: "SHUTTING_DOWN" });
      expect(snapshotAt).toBeLessThan(skipped);
      expect((sA.ended as { metadata: Record<string, string> }).metadata.cursor).toBe(skipped.toString());
    } finally {
      if (!stopped) await own.stop();
    }
  });

  it("matches by the audiences of the tokens a revocation kills, not by app", async () => {
    // One app serving two audiences; a token for one of them only.
    const app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["m1-api", "m2-api"] });
    const rs1 = await createResourceServer(["m1-api"]);
    const rs2 = await createResourceServer(["m2-api", "other-api"]);
    const s1 = openStream(b.client, "", rs1.md);
    const s2 = openStream(b.client, "", rs2.md);
    await Promise.all([s1, s2].map(ready));

    const only1 = await issue(app, "m-a", ["m1-api"]);
    const both = await issue(app, "m-b", ["m1-api", "m2-api"]);
    const narrowChild = await delegate(both.accessToken, ["m2-api"]);
    const cOnly1 = await revoke("token", only1.claims!.tokenId);
    const cBoth = await revoke("agent", both.claims!.agentId);
    const cChild = await revoke("token", narrowChild.claims!.tokenId);
    // A chain named by its narrow child kills the root too: the root's audiences.
    const cChain = await revoke("chain", narrowChild.claims!.tokenId);
    const cTask = await revoke("task", "m-a", app.appId);
    await Promise.all([passes(s1, cTask), passes(s2, cTask)]);
    expect(received(s1)).toEqual([cOnly1, cBoth, cChain, cTask]);
    expect(received(s2)).toEqual([cBoth, cChild, cChain, cTask]);
    s1.cancel();
    s2.cancel();
  });

  it("for random grants and revocations, each resource server gets exactly those whose audiences meet its own", async () => {
    const POOL = 3;
    const grant = fc.record({
      app: fc.nat(1),
      audiences: fc.uniqueArray(fc.nat(POOL - 1), { minLength: 1, maxLength: POOL }),
      delegateTo: fc.option(fc.uniqueArray(fc.nat(POOL - 1), { minLength: 1, maxLength: POOL }), { nil: null }),
    });
    const revocation = fc.record({ kind: fc.constantFrom<Target>("token", "agent", "chain", "task", "app"), grant: fc.nat(), child: fc.boolean() });
    const scenario = fc.record({
      apps: fc.tuple(
        fc.uniqueArray(fc.nat(POOL - 1), { minLength: 1, maxLength: POOL }),
        fc.uniqueArray(fc.nat(POOL - 1), { minLength: 1, maxLength: POOL }),
      ),
      servers: fc.array(fc.uniqueArray(fc.nat(POOL - 1), { minLength: 1, maxLength: POOL }), { minLength: 1, maxLength: 3 }),
      grants: fc.array(grant, { minLength: 1, maxLength: 4 }),
      revocations: fc.array(revocation, { minLength: 1, maxLength: 5 }),
    });
    let run = 0;
    await fc.assert(
      fc.asyncProperty(scenario, async (sc) => {
        run += 1;
        // Audience names unique to the run, so earlier runs' revocations never match.
        const aud = (i: number): string => `p${run}-aud${i}`;
        const apps = await Promise.all(sc.apps.map((auds) => createApp(b, { ceiling: ["read:records:*"], audiences: auds.map(aud) })));
        const appAudiences = sc.apps.map((auds) => auds.map(aud));
        const servers = await Promise.all(sc.servers.map((auds) => createResourceServer(auds.map(aud))));
        const streams = servers.map((rs) => openStream(b.client, "", rs.md));
        await Promise.all(streams.map(ready));

        const tokens: { root: { id: string; agent: string; audiences: string[] }; child: { id: string; audiences: string[] } | null; app: number; task: string }[] = [];
        for (const [i, g] of sc.grants.entries()) {
          const own = appAudiences[g.app]!;
          const audiences = g.audiences.map((x) => own[x % own.length]!).filter((x, j, all) => all.indexOf(x) === j);
          const task = `task-${i}`;
          const t = await issue(apps[g.app]!, task, audiences);
          let child = null;
          if (g.delegateTo !== null) {
            const childAudiences = g.delegateTo.map((x) => audiences[x % audiences.length]!).filter((x, j, all) => all.indexOf(x) === j);
            const c = await delegate(t.accessToken, childAudiences);
            child = { id: c.claims!.tokenId, audiences: childAudiences };
          }
          tokens.push({ root: { id: t.claims!.tokenId, agent: t.claims!.agentId, audiences }, child, app: g.app, task });
        }

        // The model: the audiences each revocation can affect.
        const expected: { cursor: bigint; audiences: string[] }[] = [];
        for (const r of sc.revocations) {
          const t = tokens[r.grant % tokens.length]!;
          const appId = apps[t.app]!.appId;
          const useChild = r.child && t.child !== null;
          switch (r.kind) {
            case "token":
              expected.push(useChild
                ? { cursor: await revoke("token", t.child!.id), audiences: t.child!.audiences }
                : { cursor: await revoke("token", t.root.id), audiences: t.root.audiences });
              break;
            case "chain":
              expected.push({ cursor: await revoke("chain", useChild ? t.child!.id : t.root.id), audiences: t.root.audiences });
              break;
            case "agent":
              expected.push({ cursor: await revoke("agent", t.root.agent), audiences: t.root.audiences });
              break;
            case "task":
              expected.push({ cursor: await revoke("task", t.task, appId), audiences: appAudiences[t.app]! });
              break;
            case "app":
              expected.push({ cursor: await revoke("app", appId), audiences: appAudiences[t.app]! });
              break;
          }
        }
        const last = expected.at(-1)!.cursor;
        await Promise.all(streams.map((s) => passes(s, last)));
        for (const [i, s] of streams.entries()) {
          const served = new Set(sc.servers[i]!.map(aud));
          const want = expected.filter((e) => e.audiences.some((a) => served.has(a))).map((e) => e.cursor);
          expect(received(s)).toEqual(want);
          s.cancel();
        }
      }),
      { numRuns: 20 },
    );
  }, 180_000);
});

describe("Validate, per tenant", () => {
  it("answers a resource server only for the audiences it serves", async () => {
    const appA = await createApp(b, { ceiling: ["read:records:*"], audiences: ["va-api"] });
    const appB = await createApp(b, { ceiling: ["read:records:*"], audiences: ["vb-api"] });
    const rsA = await createResourceServer(["va-api"]);
    const tokA = await issue(appA, "v-a", ["va-api"]);
    const tokB = await issue(appB, "v-b", ["vb-api"]);
    const validate = (md: Metadata, token: string, audience: string) => call(b.client.validate, b.client, { token, audience, requiredScopes: [] }, md);

    const own = await validate(rsA.md, tokA.accessToken, "va-api");
    expect(own.valid).toBe(true);
    expect(own.claims!.taskId).toBe("v-a");

    // Asking about an audience it does not serve is refused outright.
    const e = await refusal(validate(rsA.md, tokB.accessToken, "vb-api"));
    expect(e.code).toBe(7); // PERMISSION_DENIED
    expect(e.reason).toBe("AUDIENCE_NOT_SERVED");
    expect(e.metadata.audience).toBe("vb-api");

    // B's token asked about for A's audience: no claims, and not even whether it was revoked.
    const other = await validate(rsA.md, tokB.accessToken, "va-api");
    expect(other).toMatchObject({ valid: false, status: TokenStatus.TOKEN_STATUS_AUDIENCE_NOT_SERVED });
    expect(other.claims).toBeUndefined();
    await revoke("token", tokB.claims!.tokenId);
    const revokedOther = await validate(rsA.md, tokB.accessToken, "va-api");
    expect(revokedOther.status).toBe(TokenStatus.TOKEN_STATUS_AUDIENCE_NOT_SERVED);
    expect(revokedOther.claims).toBeUndefined();

    // An app is answered for its own tokens only; the operator for all.
    const byAppB = await validate(appB.md, tokA.accessToken, "va-api");
    expect(byAppB.status).toBe(TokenStatus.TOKEN_STATUS_AUDIENCE_NOT_SERVED);
    expect(byAppB.claims).toBeUndefined();
    expect((await validate(appA.md, tokA.accessToken, "va-api")).valid).toBe(true);
    expect((await validate(operatorMd(), tokA.accessToken, "va-api")).valid).toBe(true);
    expect((await validate(operatorMd(), tokB.accessToken, "vb-api")).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
  });
});

describe("resource server credentials", () => {
  it("are created, listed and disabled by the operator only; nothing is stored from a refused request", async () => {
    const before = (await call(b.admin.listResourceServers, b.admin, { pageSize: 500, pageToken: "" }, operatorMd())).resourceServers.length;
    const app = await createApp(b);
    const refused = [
      await refusal(call(b.admin.createResourceServer, b.admin, { name: "nope", audiences: ["x-api"] }, app.md)),
      await refusal(call(b.admin.createResourceServer, b.admin, { name: "no-audience", audiences: [] }, operatorMd())),
      await refusal(call(b.admin.createResourceServer, b.admin, { name: "bad name!", audiences: ["x-api"] }, operatorMd())),
      await refusal(call(b.admin.createResourceServer, b.admin, { name: "spaces", audiences: ["x api"] }, operatorMd())),
    ];
    expect(refused.map((e) => e.reason)).toEqual(["NOT_PERMITTED", "INVALID_REQUEST", "INVALID_REQUEST", "INVALID_REQUEST"]);
    await createResourceServer(["x-api"], "dup-rs");
    expect((await refusal(createResourceServer(["x-api"], "dup-rs"))).reason).toBe("ALREADY_EXISTS");

    const made: string[] = [];
    for (let i = 0; i < 4; i++) made.push((await createResourceServer(["x-api"], `page-rs-${i}`)).id);
    const seen: string[] = [];
    let pageToken = "";
    do {
      const res = await call(b.admin.listResourceServers, b.admin, { pageSize: 2, pageToken }, operatorMd());
      expect(res.resourceServers.length).toBeLessThanOrEqual(2);
      seen.push(...res.resourceServers.map((r) => r.resourceServerId));
      pageToken = res.nextPageToken;
    } while (pageToken);
    expect(seen.length).toBe(before + 5);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of made) expect(seen).toContain(id);
    expect(seen).toEqual([...seen].sort());
    const garbage = await refusal(call(b.admin.listResourceServers, b.admin, { pageSize: 2, pageToken: "x" }, operatorMd()));
    expect(garbage.reason).toBe("INVALID_REQUEST");
  });

  it("authenticate only for streaming and Validate, and stop working once disabled", async () => {
    const app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["d-api"] });
    const rs = await createResourceServer(["d-api"]);
    const t = await issue(app, "d", ["d-api"]);

    // Not an app: it issues and revokes nothing.
    expect((await refusal(call(b.client.issue, b.client, issueRequest({ audiences: ["d-api"] }), rs.md))).reason).toBe("NOT_PERMITTED");
    const rev = await refusal(call(b.client.revoke, b.client, { target: TARGET.token, id: t.claims!.tokenId, appId: "", reason: "" }, rs.md));
    expect(rev.reason).toBe("NOT_PERMITTED");
    expect((await refusal(call(b.admin.listApps, b.admin, { pageSize: 1, pageToken: "" }, rs.md))).reason).toBe("NOT_PERMITTED");
    const wrong = await refusal(call(b.client.validate, b.client, { token: t.accessToken, audience: "d-api", requiredScopes: [] }, basic(rs.id, `${rs.secret}x`)));
    expect(wrong.reason).toBe("CREDENTIALS_INVALID");
    const unknown = await refusal(call(b.client.validate, b.client, { token: t.accessToken, audience: "d-api", requiredScopes: [] }, basic("rs_AAAAAAAAAAAAAAAAAAAAAA", rs.secret)));
    expect(unknown.reason).toBe("CREDENTIALS_INVALID");

    const s = openStream(b.client, "", rs.md);
    await ready(s);
    const disabled = await call(b.admin.disableResourceServer, b.admin, { resourceServerId: rs.id, reason: "rotated out" }, operatorMd());
    expect(disabled.resourceServer!.disabled).toBe(true);
    await s.waitFor((x) => x.ended !== null, 10_000, "the stream to end");
    expect(s.ended).toMatchObject({ reason: "RESOURCE_SERVER_DISABLED", code: 7 });
    const after = await refusal(call(b.client.validate, b.client, { token: t.accessToken, audience: "d-api", requiredScopes: [] }, rs.md));
    expect(after.reason).toBe("RESOURCE_SERVER_DISABLED");
    const again = openStream(b.client, "", rs.md);
    await again.waitFor((x) => x.ended !== null, 10_000, "the refusal");
    expect(again.ended).toMatchObject({ reason: "RESOURCE_SERVER_DISABLED" });
    const missing = await refusal(call(b.admin.disableResourceServer, b.admin, { resourceServerId: "rs_nope", reason: "" }, operatorMd()));
    expect(missing.reason).toBe("NOT_FOUND");

    // Audited, and no secret in the trail.
    const audit = await b.broker.db.query<{ kind: string; payload: string }>("SELECT kind, payload FROM audit_events WHERE kind LIKE 'resource_server.%'");
    expect(audit.rows.map((r) => r.kind)).toContain("resource_server.disabled");
    for (const r of audit.rows) expect(r.payload).not.toContain(rs.secret);
    expect((await verifyAudit(b.broker.db)).intact).toBe(true);
  });
});

describe("baton rs", () => {
  const baton = async (...args: string[]): Promise<string> => {
    const { stdout } = await promisify(execFile)(process.execPath, [join(import.meta.dirname, "../../bin/baton.mjs"), ...args], {
      env: { ...process.env, BATON_ADDR: b.address, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN },
    });
    return stdout;
  };

  it("creates, lists and disables resource servers from the command line", async () => {
    const created = JSON.parse(await baton("rs", "create", "--name", "cli-rs", "--audience", "cli-api", "--audience", "cli2-api"));
    expect(created.resource_server_id).toMatch(/^rs_[0-9A-Za-z]{22}$/);
    expect(created.audiences).toEqual(["cli-api", "cli2-api"]);
    const md = basic(created.resource_server_id, created.client_secret);
    const s = openStream(b.client, "", md);
    await ready(s);
    expect(await baton("rs", "list")).toContain(`"resource_server_id": "${created.resource_server_id}"`);
    const disabled = JSON.parse(await baton("rs", "disable", created.resource_server_id, "--reason", "test"));
    expect(disabled).toEqual({ resource_server_id: created.resource_server_id, disabled: true });
    await s.waitFor((x) => x.ended !== null, 10_000, "the stream to end");
    expect(s.ended).toMatchObject({ reason: "RESOURCE_SERVER_DISABLED" });
  }, 60_000);
});
