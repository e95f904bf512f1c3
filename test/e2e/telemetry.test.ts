// Telemetry of a real broker: Prometheus metrics on /metrics, the per-RPC
// access log, admin action lines and the request id echoed in trailers.

import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type IssueRequest, type IssueResponse, RevocationTarget } from "../../server/gen/baton/v1/broker.js";
import { createLogger } from "../../server/telemetry/logger.js";
import { agentMd } from "../helpers/agent-key.js";
import { call, createApp, issueRequest, OPERATOR_TOKEN, operatorMd, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let app: TestApp;
const lines: string[] = [];

beforeAll(async () => {
  b = await startTestBroker({}, undefined, createLogger("debug", (l) => lines.push(l)));
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxDelegationDepth: 2 });
});
afterAll(async () => b?.stop());

const scrape = async (): Promise<string> => {
  const res = await fetch(`${b.httpUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
};

/** The value of one sample (0 when absent: a labelled counter appears on first use). */
const sample = (text: string, series: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
};

describe("/metrics", () => {
  it("gives every metric family HELP text, and has the process, build, pool and stream metrics", async () => {
    // One call, so the per-method families have samples.
    await call(b.client.issue, b.client, issueRequest(), app.md);
    const text = await scrape();
    const typed = [...text.matchAll(/^# TYPE (\S+) \S+$/gm)].map((m) => m[1]!);
    const helped = new Map([...text.matchAll(/^# HELP (\S+) (.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(typed.length).toBeGreaterThan(20);
    for (const name of typed) expect(helped.get(name)?.trim(), `HELP for ${name}`).toBeTruthy();
    // Every sample belongs to a family that was typed (and so helped).
    for (const line of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)![0];
      expect(typed.some((t) => name === t || name.startsWith(`${t}_`)), line).toBe(true);
    }
    for (const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_eventloop_lag_seconds",
      "baton_db_pool_total",
      "baton_db_pool_idle",
      "baton_db_pool_waiting",
      "baton_revocation_streams",
      "baton_live_revocations",
      "baton_rate_limited_total",
      "baton_auth_throttled_total",
      "baton_grpc_requests_total",
      "baton_grpc_request_duration_seconds",
    ]) expect(typed, name).toContain(name);
    expect(text).toMatch(new RegExp(`^baton_build_info\\{version="0\\.1\\.0",node="${process.version.replace(/\./g, "\\.")}"\\} 1$`, "m"));
    expect(sample(text, "baton_db_pool_total")).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^baton_grpc_request_duration_seconds_count\{method="Issue"\} [1-9]/m);
  });

  it("counts issued, delegated and revoked tokens by bounded labels", async () => {
    const before = await scrape();
    const parent = await call(b.client.issue, b.client, issueRequest({ taskId: "metrics-task" }), app.md);
    await call(b.client.delegate, b.client, {
      scopes: ["read:records:P-1"],
      audiences: [],
      ttl: undefined,
      allowTtlClamp: false,
      agentPublicKeyJwk: "",
      approvalId: "",
    }, agentMd(parent.accessToken));
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: parent.claims!.tokenId, appId: "", reason: "" }, operatorMd());
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TASK, id: "metrics-task", appId: app.appId, reason: "" }, operatorMd());
    const after = await scrape();
    const delta = (series: string): number => sample(after, series) - sample(before, series);
    expect(delta('baton_tokens_issued_total{kind="issue"}')).toBe(1);
    expect(delta('baton_tokens_issued_total{kind="delegate"}')).toBe(1);
    expect(delta('baton_revocations_total{target="token"}')).toBe(1);
    expect(delta('baton_revocations_total{target="task"}')).toBe(1);
    expect(delta('baton_grpc_requests_total{method="Revoke",code="OK"}')).toBe(2);
    // Ids and scopes never become labels.
    for (const id of [app.appId, parent.claims!.tokenId, parent.claims!.agentId, "metrics-task", "read:records"]) expect(after).not.toContain(id);
  });

  it("counts each target of a RevokeMany", async () => {
    const before = await scrape();
    await call(b.client.revokeMany, b.client, {
      targets: ["bulk-a", "bulk-b"].map((id) => ({ target: RevocationTarget.REVOCATION_TARGET_TASK, id, appId: app.appId, reason: "" })),
    }, operatorMd());
    const after = await scrape();
    expect(sample(after, 'baton_revocations_total{target="task"}') - sample(before, 'baton_revocations_total{target="task"}')).toBe(2);
  });
});

/** Issue, with what came back in trailers (on success and on error). */
function issueWithTrailers(req: IssueRequest, md: Metadata): Promise<{ res: IssueResponse | null; err: ServiceError | null; trailers: Metadata }> {
  return new Promise((resolve) => {
    let answer: { res: IssueResponse | null; err: ServiceError | null } | null = null;
    let trailers: Metadata | null = null;
    const done = (): void => {
      if (answer && trailers) resolve({ ...answer, trailers });
    };
    const c = b.client.issue(req, md, { deadline: new Date(Date.now() + 10_000) }, (err, res) => {
      answer = { res: err ? null : res, err };
      done();
    });
    c.on("status", (s) => {
      trailers = s.metadata;
      done();
    });
  });
}

type Line = Record<string, unknown>;
const parsed = (): Line[] => lines.map((l) => JSON.parse(l) as Line);
const accessLine = (requestId: string): Line | undefined => parsed().find((l) => l.msg === "rpc" && l.request_id === requestId);

describe("access log and request id", () => {
  it("logs one line per RPC with method, code, duration and caller, and echoes the request id on success", async () => {
    const r = await issueWithTrailers(issueRequest({ taskId: "log-task" }), app.md);
    expect(r.err).toBeNull();
    const id = r.trailers.get("x-request-id")[0];
    expect(typeof id).toBe("string");
    const matching = parsed().filter((l) => l.msg === "rpc" && l.request_id === id);
    expect(matching).toHaveLength(1);
    expect(matching[0]).toMatchObject({ level: "info", method: "BrokerService/Issue", code: "OK", principal: "app", app_id: app.appId });
    expect(matching[0]!.duration_ms).toEqual(expect.any(Number));
    expect(matching[0]!.duration_ms as number).toBeGreaterThan(0);
    expect(String(matching[0]!.peer)).toContain("127.0.0.1");
  });

  it("echoes the request id on an error too, matching the log line's code", async () => {
    const r = await issueWithTrailers(issueRequest({ scopes: ["write:elsewhere:1"] }), app.md);
    expect(r.err?.code).toBe(status.PERMISSION_DENIED);
    const id = r.err!.metadata.get("x-request-id")[0];
    expect(r.trailers.get("x-request-id")[0]).toBe(id);
    expect(accessLine(String(id))).toMatchObject({ method: "BrokerService/Issue", code: "PERMISSION_DENIED", app_id: app.appId });
    // An unauthenticated call is logged without a caller.
    const anon = await issueWithTrailers(issueRequest(), new Metadata());
    const anonId = String(anon.err!.metadata.get("x-request-id")[0]);
    expect(accessLine(anonId)).toMatchObject({ code: "UNAUTHENTICATED" });
    expect(accessLine(anonId)!.principal).toBeUndefined();
  });

  it("keeps a caller's short printable x-request-id, and replaces one that is not", async () => {
    const md = app.md.clone();
    md.set("x-request-id", "trace:4bf92f35-77b3");
    const kept = await issueWithTrailers(issueRequest(), md);
    expect(kept.trailers.get("x-request-id")[0]).toBe("trace:4bf92f35-77b3");
    expect(accessLine("trace:4bf92f35-77b3")).toMatchObject({ code: "OK" });
    for (const bad of ["x".repeat(129), "two words"]) {
      const m = app.md.clone();
      m.set("x-request-id", bad);
      const r = await issueWithTrailers(issueRequest(), m);
      const echoed = String(r.trailers.get("x-request-id")[0]);
      expect(echoed).not.toBe(bad);
      expect(echoed).toMatch(/^[0-9a-f-]{36}$/);
      expect(accessLine(echoed)).toMatchObject({ code: "OK" });
    }
  });

  it("echoes the request id when a stream is refused, and logs it", async () => {
    const md = new Metadata();
    md.set("x-request-id", "stream-refused-1");
    const err = await new Promise<ServiceError>((resolve) => {
      const s = b.client.streamRevocations({ cursor: "" }, md);
      s.on("data", () => {});
      s.on("error", resolve);
    });
    expect(err.code).toBe(status.UNAUTHENTICATED);
    expect(err.metadata.get("x-request-id")[0]).toBe("stream-refused-1");
    expect(accessLine("stream-refused-1")).toMatchObject({ method: "BrokerService/StreamRevocations", code: "UNAUTHENTICATED" });
  });

  it("logs admin actions with the operator as actor", async () => {
    const created = await createApp(b, { name: "logged-admin-app" });
    await call(b.admin.disableApp, b.admin, { appId: created.appId, reason: "test" }, operatorMd());
    const admin = parsed().filter((l) => l.msg === "admin action" && l.app_id === created.appId);
    expect(admin.map((l) => l.action)).toEqual(["CreateApp", "DisableApp"]);
    for (const l of admin) expect(l).toMatchObject({ level: "info", actor: "operator" });
    expect(admin.every((l) => typeof l.request_id === "string")).toBe(true);
  });

  it("never writes a token, secret or proof into any line", async () => {
    const key = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxDelegationDepth: 1 });
    const t = await call(b.client.issue, b.client, issueRequest(), key.md);
    await call(b.client.validate, b.client, { token: t.accessToken, audience: "ehr-api", requiredScopes: [] }, key.md);
    await call(b.client.delegate, b.client, { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, agentMd(t.accessToken));
    // A refused agent call still carries its token in metadata.
    await issueWithTrailers(issueRequest(), agentMd(t.accessToken));
    const all = lines.join("");
    expect(parsed().filter((l) => l.msg === "rpc").length).toBeGreaterThan(10);
    for (const secret of [t.accessToken.split(".")[2]!, t.accessToken.split(".")[1]!, key.secret, app.secret, OPERATOR_TOKEN]) expect(all).not.toContain(secret);
  });
});
