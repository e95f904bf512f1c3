// A stopped broker leaves nothing running: its streams end with
// SHUTTING_DOWN, and the process exits by itself (no timer, stream, pool or
// LISTEN connection left to keep it alive).

import { spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";

let db: TestDatabase;
beforeAll(async () => {
  db = await freshDatabase();
});
afterAll(async () => db?.drop());

it("stop() ends streams and the process exits on its own", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/stop-and-exit.ts"], {
    env: { ...process.env, DATABASE_URL: db.url },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve("still running 20 s after start");
    }, 20_000);
    child.on("exit", (c) => {
      clearTimeout(timer);
      resolve(c ?? -1);
    });
  });
  expect(out).toContain("stream error: the broker is shutting down");
  expect(out).toContain("stopped");
  expect(code).toBe(0);
}, 30_000);
