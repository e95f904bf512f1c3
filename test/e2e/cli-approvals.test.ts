// The approval commands of `baton` (issue 8), run as a child process against
// a real broker: a policy set with --approval-rule, an approver created,
// an issue held for approval, the approval listed, approved (secret from a
// file) and used, then read back as the operator.

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../helpers/broker.js";

const ROOT = join(import.meta.dirname, "../..");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function baton(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, "bin/baton.mjs"), ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

let b: TestBroker;
let operator: Record<string, string>;
const dir = mkdtempSync(join(tmpdir(), "baton-cli-approvals-"));

async function ok(args: string[], env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const r = await baton(args, { ...operator, ...env });
  expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

beforeAll(async () => {
  b = await startTestBroker();
  operator = { BATON_ADDR: b.address, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN };
});
afterAll(async () => {
  await b?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("baton approvers / approvals", () => {
  it("--help documents the rule syntax; a malformed rule exits 2 and sends nothing", async () => {
    const help = await baton(["app", "create", "--help"]);
    expect(help.stdout).toContain("--approval-rule <rule>");
    expect(help.stdout.replace(/\s+/g, " ")).toContain("PATTERN=CLASS[:N[:GROUP]]");
    for (const bad of ["write:x:*", "write:x:*=urgent", "write:x:*=dangerous:two:g", "write:x:*=dangerous:1:g:extra"]) {
      const r = await baton(["app", "create", "--name", "bad-rule", "--scope", "write:x:*", "--audience", "a", "--approval-rule", bad], operator);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain("--approval-rule");
    }
    const list = await baton(["app", "list"], operator);
    expect(list.stdout).not.toContain("bad-rule");
    const approve = await baton(["approvals", "approve", "apr_x", "--reason", "ok"], operator);
    expect(approve.code).toBe(2);
    expect(approve.stderr).toContain("--approver-id");
  }, 120_000);

  it("runs the whole flow from the command line", async () => {
    const app = await ok(["app", "create", "--name", "clinic", "--scope", "write:prescriptions:*", "--scope", "read:records:*", "--audience", "ehr-api",
      "--approval-rule", "write:prescriptions:*=dangerous:1:pharmacists", "--approval-rule", "read:*:*=read"]);
    const got = await ok(["app", "get", app.app_id as string]);
    expect(got.approval_policy).toEqual(["write:prescriptions:*=dangerous:1:pharmacists", "read:*:*=read:0"]);
    const asApp = { BATON_CLIENT_ID: app.app_id as string, BATON_CLIENT_SECRET: app.client_secret as string };

    const approver = await ok(["approvers", "create", "--name", "dr-smith", "--group", "pharmacists"]);
    expect(approver.approver_id).toMatch(/^apv_/);
    const secretFile = join(dir, "approver-secret");
    writeFileSync(secretFile, `${approver.client_secret as string}\n`, { mode: 0o600 });
    const asApprover = { BATON_APPROVER_ID: approver.approver_id as string, BATON_APPROVER_SECRET_FILE: secretFile };

    const issue = ["token", "issue", "--task", "visit-77", "--human", "dr-house", "--scope", "write:prescriptions:P-1042", "--audience", "ehr-api"];
    const held = await baton(issue, { ...operator, ...asApp });
    expect(held.code).toBe(1);
    expect(held.stderr).toContain("(reason: APPROVAL_REQUIRED)");
    const approvalId = /apr_[0-9A-Za-z]{22}/.exec(held.stderr)![0];

    const table = await baton(["approvals", "list", "--state", "pending", "--output", "table"], { ...operator, ...asApprover });
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain(approvalId);
    expect(table.stdout).toContain("write:prescriptions:P-1042");

    const early = await baton([...issue, "--approval-id", approvalId], { ...operator, ...asApp });
    expect(early.stderr).toContain("(reason: APPROVAL_PENDING)");

    const decided = await ok(["approvals", "approve", approvalId, "--reason", "dose checked"], asApprover);
    expect(decided.state).toBe("approved");
    const minted = await ok([...issue, "--approval-id", approvalId], asApp);
    expect(minted.approval_id).toBe(approvalId);

    const after = await ok(["approvals", "get", approvalId]);
    expect(after).toMatchObject({ state: "used", token_id: minted.token_id, requester: `app:${app.app_id as string}` });
    expect((after.decisions as string[])[0]).toContain("approved by dr-smith");

    const listed = await baton(["approvers", "list", "--output", "table"], operator);
    expect(listed.stdout).toContain("dr-smith");
    const disabled = await ok(["approvers", "disable", approver.approver_id as string, "--reason", "left"]);
    expect(disabled.disabled).toBe(true);
    const refused = await baton(["approvals", "list"], { ...operator, ...asApprover });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("(reason: APPROVER_DISABLED)");
    // The secret never shows up in what the command printed after creation.
    expect(refused.stderr + table.stdout).not.toContain(approver.client_secret as string);
  }, 180_000);
});
