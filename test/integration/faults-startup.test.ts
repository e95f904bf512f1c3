// `baton serve` that cannot start says why, in one line on stderr, and exits
// non-zero: a database that accepts connections but never answers.

import { createServer, type Server, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { exitWithin, spawnServe } from "../fixtures/serve.js";
import { OPERATOR_TOKEN } from "../helpers/broker.js";

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
