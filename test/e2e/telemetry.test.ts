// Telemetry of a real broker: Prometheus metrics on /metrics.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget } from "../../server/gen/baton/v1/broker.js";
import { agentMd } from "../helpers/agent-key.js";
import { call, createApp, issueRequest, operatorMd, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker();
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
});
