// The connection pool and the one transaction helper every writer uses.
//
// Every wait on PostgreSQL is bounded, so a hung or unreachable database
// turns into UNAVAILABLE within a known time instead of a call that waits for
// its client's deadline:
//   connect:   opening a connection (TCP, TLS, authentication): the check at
//              startup, the LISTEN connection;
//   acquire:   a request waiting for a pooled connection, including opening
//              one (so that is bounded by the smaller of the two);
//   statement: the server cancels a statement after this (statement_timeout);
//              if the server does not answer at all, the client gives up
//              STATEMENT_GRACE_MS later and discards the connection.
// A connection that fails (a timeout, a dropped socket, a server shutdown)
// fails its request with UNAVAILABLE and is discarded, never reused.

import pg from "pg";
import { UnavailableError } from "../domain/errors.js";
import { bindToActive, traceQuery, traceTransaction } from "../telemetry/tracing.js";

export type Db = pg.Pool;
export type Tx = pg.PoolClient;
export type Queryable = pg.Pool | pg.PoolClient;

export interface DatabaseTimeouts {
  readonly connectMs: number;
  readonly statementMs: number;
  readonly acquireMs: number;
}

export const DEFAULT_TIMEOUTS: DatabaseTimeouts = { connectMs: 5_000, statementMs: 5_000, acquireMs: 2_000 };

/** The server's own statement_timeout normally fires first, leaving the connection usable. */
const STATEMENT_GRACE_MS = 500;

/** The database failed or did not answer: the request may succeed on retry. */
export class DatabaseUnavailableError extends UnavailableError {
  constructor(
    message: string,
    /** The driver's error, for the log only. */
    readonly driverError: unknown,
  ) {
    super(message);
  }
}

// Node socket errors that mean the server cannot be reached.
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND"]);
// SQLSTATEs of a server that is going away or refusing work: admin_shutdown,
// crash_shutdown, cannot_connect_now, too_many_connections; and class 08
// (connection exceptions).
const SERVER_CODES = new Set(["57P01", "57P02", "57P03", "53300"]);
// pg's own errors carry no code; these messages are the ones it uses for a
// lost connection, an unanswered query and a connection that timed out.
const DRIVER_MESSAGES = /^(Connection terminated|Query read timeout|timeout exceeded when trying to connect|timeout expired|Client has encountered a connection error|Client was closed)/;

/** The error a request sees: connection failures and timeouts become UNAVAILABLE, the rest is unchanged. */
export function asUnavailable(err: unknown, timeouts: DatabaseTimeouts): unknown {
  if (err instanceof DatabaseUnavailableError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : "";
  if (code === "57014" || message.startsWith("Query read timeout")) {
    // query_canceled: the broker never cancels a statement itself, so this is statement_timeout.
    return new DatabaseUnavailableError(`the database did not answer within ${timeouts.statementMs} ms; retry`, err);
  }
  if (message.startsWith("timeout exceeded when trying to connect") || message.startsWith("Connection terminated due to connection timeout")) {
    return new DatabaseUnavailableError(`no database connection within ${timeouts.acquireMs} ms; retry`, err);
  }
  if (
    (typeof code === "string" && (NETWORK_CODES.has(code) || SERVER_CODES.has(code) || code.startsWith("08"))) ||
    DRIVER_MESSAGES.test(message)
  ) {
    return new DatabaseUnavailableError("the broker lost its database connection; retry", err);
  }
  return err;
}

type AnyFn = (...args: unknown[]) => unknown;

/** Calls `fn` with `args`, converting the error of its callback or promise. */
function converting(fn: AnyFn, self: unknown, args: unknown[], convert: (err: unknown) => unknown): unknown {
  const last = args.at(-1);
  if (typeof last === "function") {
    const cb = last as AnyFn;
    return fn.apply(self, [...args.slice(0, -1), (err: unknown, ...rest: unknown[]) => cb(err ? convert(err) : err, ...rest)]);
  }
  const result = fn.apply(self, args);
  return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(convert(err))) : result;
}

export function createPool(
  connectionString: string,
  max = 10,
  timeouts: DatabaseTimeouts = DEFAULT_TIMEOUTS,
  /** Called with each connection failure or timeout a request sees (for the log). */
  onUnavailable: (err: DatabaseUnavailableError) => void = () => {},
): Db {
  const convert = (err: unknown): unknown => {
    const out = asUnavailable(err, timeouts);
    if (out instanceof DatabaseUnavailableError && out !== err) onUnavailable(out);
    return out;
  };
  // Every statement, pooled or in a transaction, passes through
  // Client.query: the one place for its span.
  class Client extends pg.Client {
    override query(...args: unknown[]): never {
      return traceQuery(args, (a) => converting(super.query as AnyFn, this, a, convert)) as never;
    }
  }
  class Pool extends pg.Pool {
    override connect(...args: unknown[]): never {
      // pg-pool's own query() connects with a callback: keep the caller's trace.
      const last = args.at(-1);
      if (typeof last === "function") args = [...args.slice(0, -1), bindToActive(last as AnyFn)];
      return converting(super.connect as AnyFn, this, args, convert) as never;
    }
    override query(...args: unknown[]): never {
      return converting(super.query as AnyFn, this, args, convert) as never;
    }
  }
  const pool = new Pool({
    connectionString,
    max,
    application_name: "baton",
    Client,
    // pg-pool applies this both to waiting in its queue and to opening a
    // connection for a waiting request: the acquire bound.
    connectionTimeoutMillis: Math.min(timeouts.acquireMs, timeouts.connectMs),
    statement_timeout: timeouts.statementMs,
    query_timeout: timeouts.statementMs + STATEMENT_GRACE_MS,
    keepAlive: true,
  });
  // An idle client losing its connection must not crash the process; the
  // pool replaces it and the next query reports the failure.
  pool.on("error", () => {});
  // Nor a checked-out one: pg emits `error` on a client whose connection
  // drops, and an `error` event without a listener ends the process. The
  // query it was running (or the next one) fails, and the holder discards it.
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/** `begin`: the statement that opens the transaction (an isolation level, READ ONLY). */
export function withTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>, begin = "BEGIN"): Promise<T> {
  return traceTransaction(() => transaction(db, fn, begin));
}

async function transaction<T>(db: Db, fn: (tx: Tx) => Promise<T>, begin: string): Promise<T> {
  const tx = await db.connect();
  try {
    await tx.query(begin);
    const result = await fn(tx);
    await tx.query("COMMIT");
    tx.release();
    return result;
  } catch (err) {
    if (err instanceof DatabaseUnavailableError) {
      // The connection is broken or its state unknown: discard it (the
      // server rolls back what it had) rather than wait on a ROLLBACK.
      tx.release(err);
    } else {
      await tx.query("ROLLBACK").then(
        () => tx.release(),
        (e: unknown) => tx.release(e instanceof Error ? e : new Error(String(e))),
      );
    }
    throw err;
  }
}

/** Where a connection string points, without its password: for messages. */
export function describeDatabase(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    return `${u.username ? `${decodeURIComponent(u.username)}@` : ""}${u.hostname}:${u.port || "5432"}${u.pathname}`;
  } catch {
    return "(unparsable DATABASE_URL)";
  }
}

/**
 * Opens one connection and runs one statement, within the connect and
 * statement timeouts: at startup, so a database that is down or hung is
 * reported at once, by name and with the timeout that expired, rather than
 * as a silent wait. Throws an Error whose message says what failed.
 */
export async function checkConnection(connectionString: string, timeouts: DatabaseTimeouts): Promise<void> {
  const where = describeDatabase(connectionString);
  const client = new pg.Client({
    connectionString,
    application_name: "baton",
    connectionTimeoutMillis: timeouts.connectMs,
    query_timeout: timeouts.statementMs,
  });
  client.on("error", () => {});
  try {
    await client.connect().catch((err: unknown) => {
      const timedOut = err instanceof Error && /timeout/i.test(err.message);
      throw new Error(
        timedOut
          ? `cannot connect to the database ${where}: no answer within ${timeouts.connectMs} ms (BATON_DATABASE_CONNECT_TIMEOUT_MS)`
          : `cannot connect to the database ${where}: ${err instanceof Error ? err.message : String(err)}`,
      );
    });
    await client.query("SELECT 1").catch((err: unknown) => {
      const timedOut = err instanceof Error && err.message.startsWith("Query read timeout");
      throw new Error(
        timedOut
          ? `the database ${where} did not answer a query within ${timeouts.statementMs} ms (BATON_DATABASE_STATEMENT_TIMEOUT_MS)`
          : `the database ${where} refused a query: ${err instanceof Error ? err.message : String(err)}`,
      );
    });
  } finally {
    // A hung server never answers the goodbye either.
    void client.end().catch(() => {});
  }
}
