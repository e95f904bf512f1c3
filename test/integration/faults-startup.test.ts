// `baton serve` that cannot start says why, in one line on stderr, and exits
// non-zero: a database that accepts connections but never answers, a master
// key that does not open the stored signing keys, an embedded data directory
// that another broker holds.

import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { exitWithin, serveReady, spawnServe } from "../fixtures/serve.js";
import { OPERATOR_TOKEN, startTestBroker } from "../helpers/broker.js";
import { freshDatabase } from "../helpers/database.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** One line, "baton: ...", and nothing that looks like a stack trace. */
function expectOneLine(stderr: string, message: RegExp | string): void {
  const lines = stderr.trimEnd().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^baton: /);
  if (typeof message === "string") expect(lines[0]).toContain(message);
  else expect(lines[0]).toMatch(message);
  expect(stderr).not.toMatch(/^\s+at /m);
}

describe("a database that accepts connections and never answers", () => {
  it("startup fails within the connect timeout, naming the database and the timeout", async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      const p = spawnServe({
        DATABASE_URL: `postgres://baton:not-shown@127.0.0.1:${port}/baton`,
        BATON_MASTER_KEY: MasterKey.generate(),
        BATON_OPERATOR_TOKEN: OPERATOR_TOKEN,
      });
      const code = await exitWithin(p, 60_000);
      console.log(`[faults-startup] silent database: exit ${code} after ${Date.now() - started} ms (default connect timeout 5000 ms)`);
      expect(code).toBe(1);
      expect(sockets.length).toBeGreaterThan(0);
      expectOneLine(p.stderr(), `cannot connect to the database baton@127.0.0.1:${port}/baton: no answer within 5000 ms (BATON_DATABASE_CONNECT_TIMEOUT_MS)`);
      expect(p.stderr() + p.stdout()).not.toContain("not-shown");
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  }, 90_000);
});

describe("a wrong master key", () => {
  it("says that the master key does not decrypt the stored signing keys", async () => {
    const database = await freshDatabase();
    try {
      // A broker creates the signing keys under one master key...
      const first = await startTestBroker({ BATON_MASTER_KEY: MasterKey.generate() }, database);
      await first.stop();
      // ...and another is started on the same database with another.
      const p = spawnServe({ DATABASE_URL: database.url, BATON_MASTER_KEY: MasterKey.generate(), BATON_OPERATOR_TOKEN: OPERATOR_TOKEN });
      expect(await exitWithin(p, 60_000)).toBe(1);
      expectOneLine(
        p.stderr(),
        "baton: BATON_MASTER_KEY does not decrypt the stored signing keys: it is not the master key this database was set up with",
      );
      expect(p.stderr()).not.toContain("Unsupported state");
    } finally {
      await database.drop();
    }
  }, 90_000);
});

describe("a second broker on the same embedded data directory", () => {
  it("says the directory is in use and by which pid; the first broker is unharmed", async () => {
    // Under /tmp, which the dedicated postgres user can traverse.
    const dir = mkdtempSync(join(tmpdir(), "baton-twice-"));
    dirs.push(dir);
    const first = await serveReady({ BATON_DATA_DIR: dir, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN });
    try {
      const second = spawnServe({ BATON_DATA_DIR: dir, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN });
      expect(await exitWithin(second, 60_000)).toBe(1);
      expectOneLine(second.stderr(), `baton: the data directory ${dir} is in use by another broker (pid ${first.child.pid};`);
      expect(second.stderr()).not.toContain("TypeError");

      expect(first.exit()).toBeNull();
      const res = await fetch(`http://127.0.0.1:${first.httpPort}/readyz`, { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      first.child.kill("SIGTERM");
      expect(await exitWithin(first, 30_000)).toBe(0);
    } finally {
      first.close();
      if (first.exit() === null) first.child.kill("SIGKILL");
    }
  }, 180_000);
});
