// `baton audit list` and `baton audit tail [--follow]`, run as an operator
// runs them (node bin/baton.mjs as a child process) against a real broker.

import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, createApp, issueRequest, OPERATOR_TOKEN, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

const ROOT = join(import.meta.dirname, "../..");
const BIN = join(ROOT, "bin/baton.mjs");

let b: TestBroker;
let app: TestApp;
let env: Record<string, string>;

function baton(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

const lines = (out: string) => out.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
const issue = (taskId: string, humanPrincipal = "user:dana") => call(b.client.issue, b.client, issueRequest({ taskId, humanPrincipal }), app.md);

beforeAll(async () => {
  b = await startTestBroker();
  env = { PATH: process.env.PATH ?? "", BATON_ADDR: b.address, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN };
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
  for (let i = 0; i < 5; i++) await issue(`cli-${i}`);
  await issue("cli-x", "user:erin");
});
afterAll(async () => b?.stop());

describe("baton audit list", () => {
  it("filters with typed flags, pages through up to --limit, prints one JSON event a line or a table", async () => {
    const all = await baton(["audit", "list", "--app", app.appId, "--kind", "token.issued", "--human", "user:dana", "--limit", "0"]);
    expect(all.code, all.stderr).toBe(0);
    const events = lines(all.stdout);
    expect(events.map((e) => e.task_id)).toEqual(["cli-0", "cli-1", "cli-2", "cli-3", "cli-4"]);
    expect(events[0]).toMatchObject({ kind: "token.issued", actor: `app:${app.appId}`, human_principal: "user:dana", outcome: "ok", credential_lifetime_seconds: 300 });
    expect(events[0]!.data).toMatchObject({ task_id: "cli-0" });

    const two = await baton(["audit", "list", "--app", app.appId, "--kind", "token.issued", "--after-seq", String(events[1]!.seq), "--limit", "2"]);
    expect(lines(two.stdout).map((e) => e.task_id)).toEqual(["cli-2", "cli-3"]);

    const since = await baton(["audit", "list", "--task", "cli-x", "--since", "1h", "--until", new Date(Date.now() + 60_000).toISOString(), "--output", "table"]);
    expect(since.code, since.stderr).toBe(0);
    const rows = since.stdout.trim().split("\n");
    expect(rows[0]).toMatch(/^SEQ\s+TIME\s+KIND\s+ACTOR\s+TASK/);
    expect(rows).toHaveLength(2);
    expect(rows[1]).toContain("token.issued");
    expect(rows[1]).toContain("user:erin");
  }, 120_000);

  it("a bad time is a usage error naming the flag; a refused filter exits 1 with its reason", async () => {
    const bad = await baton(["audit", "list", "--since", "yesterday"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--since <time>");
    const refused = await baton(["audit", "list", "--kind", "NOT A KIND"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("reason: INVALID_REQUEST");
  }, 120_000);
});

describe("baton audit tail", () => {
  it("prints the last N matching events", async () => {
    const r = await baton(["audit", "tail", "-n", "3", "--app", app.appId]);
    expect(r.code, r.stderr).toBe(0);
    expect(lines(r.stdout).map((e) => e.task_id)).toEqual(["cli-3", "cli-4", "cli-x"]);
    const more = await baton(["audit", "tail", "-n", "50", "--human", "user:erin"]);
    expect(lines(more.stdout).map((e) => e.task_id)).toEqual(["cli-x"]);
  }, 120_000);

  it("--follow prints new events as they are appended, and ends cleanly on SIGINT", async () => {
    const child = spawn(process.execPath, [BIN, "audit", "tail", "-n", "1", "--follow", "--interval", "100", "--app", app.appId], { cwd: ROOT, env });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const waitFor = async (n: number) => {
      for (let i = 0; i < 600 && lines(out).length < n; i++) await new Promise((r) => setTimeout(r, 100));
    };
    await waitFor(1);
    expect(lines(out).map((e) => e.task_id)).toEqual(["cli-x"]);
    await issue("follow-1");
    await issue("follow-2");
    await waitFor(3);
    child.kill("SIGINT");
    expect(await exited, err).toBe(0);
    expect(lines(out).map((e) => e.task_id)).toEqual(["cli-x", "follow-1", "follow-2"]);
  }, 120_000);
});
