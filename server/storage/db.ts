// The connection pool and the one transaction helper every writer uses.

import pg from "pg";

export type Db = pg.Pool;
export type Tx = pg.PoolClient;
export type Queryable = pg.Pool | pg.PoolClient;

// int8 -> bigint would be exact, but only cursors and audit sequence numbers
// are int8 and callers convert those explicitly; leave the default (string).

export function createPool(connectionString: string, max = 10): Db {
  const pool = new pg.Pool({ connectionString, max, application_name: "baton" });
  // An idle client losing its connection must not crash the process; the
  // pool replaces it and the next query reports the failure.
  pool.on("error", () => {});
  return pool;
}

export async function withTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const tx = await db.connect();
  try {
    await tx.query("BEGIN");
    const result = await fn(tx);
    await tx.query("COMMIT");
    return result;
  } catch (err) {
    await tx.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    tx.release();
  }
}
