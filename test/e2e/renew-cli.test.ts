// `baton app create|update --max-task-seconds` (issue 8): the real command
// against a real broker; `baton app get` shows the value (null: the
// broker's default); a value out of range exits 2 naming the flag, sending
// nothing.

import { execFile } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../helpers/broker.js";

const ROOT = join(import.meta.dirname, "../..");

let b: TestBroker;
const baton = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, "bin/baton.mjs"), ...args, "--output", "json"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", BATON_ADDR: b.address, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN },
      timeout: 60_000,
    }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });

beforeAll(async () => {
  b = await startTestBroker();
});
afterAll(async () => b?.stop());

describe("baton app --max-task-seconds", () => {
  it("sets, shows and changes an app's task lifetime maximum", async () => {
    const created = await baton(["app", "create", "--name", "cli-renew", "--scope", "read:records:*", "--audience", "ehr-api", "--max-task-seconds", "3600"]);
    expect(created.code, created.stderr).toBe(0);
    const appId = (JSON.parse(created.stdout) as { app_id: string }).app_id;
    const got = await baton(["app", "get", appId]);
    expect(JSON.parse(got.stdout)).toMatchObject({ app_id: appId, max_task_seconds: 3600 });
    const updated = await baton(["app", "update", appId, "--max-task-seconds", "120"]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ max_task_seconds: 120, revoked_token_count: 0 });

    const other = await baton(["app", "create", "--name", "cli-renew-default", "--scope", "read:records:*", "--audience", "ehr-api"]);
    const otherId = (JSON.parse(other.stdout) as { app_id: string }).app_id;
    expect(JSON.parse((await baton(["app", "get", otherId])).stdout)).toMatchObject({ max_task_seconds: null });

    for (const bad of ["0", "2592001", "1h"]) {
      const r = await baton(["app", "update", appId, "--max-task-seconds", bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain("--max-task-seconds");
    }
    expect(JSON.parse((await baton(["app", "get", appId])).stdout)).toMatchObject({ max_task_seconds: 120 });
  }, 120_000);
});
