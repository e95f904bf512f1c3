// Versioned migrations: server/storage/migrations/NNNN_name.sql, applied in
// order at start, each in its own transaction, under an advisory lock so
// replicas starting together do not race. A database migrated by newer code
// than this is refused: old code must not write to a schema it does not know.

import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Db } from "./db.js";
import { withTransaction } from "./db.js";

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), "migrations");
const LOCK_KEY = 0x6261746f6e; // "baton"

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f, sql: readFileSync(join(dir, f), "utf8") }));
}

export class DatabaseTooNewError extends Error {
  constructor(dbVersion: number, codeVersion: number) {
    super(`database schema version ${dbVersion} is newer than this broker's ${codeVersion}; upgrade the broker`);
  }
}

/** Applies pending migrations; returns the versions applied. */
export async function migrate(db: Db, migrations = loadMigrations()): Promise<number[]> {
  const latest = migrations.at(-1)?.version ?? 0;
  return withTransaction(db, async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [LOCK_KEY]);
    await tx.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_time timestamptz NOT NULL DEFAULT now())",
    );
    const { rows } = await tx.query<{ v: number | null }>("SELECT max(version) AS v FROM schema_migrations");
    const current = rows[0]?.v ?? 0;
    if (current > latest) throw new DatabaseTooNewError(current, latest);
    const applied: number[] = [];
    for (const m of migrations) {
      if (m.version <= current) continue;
      await tx.query(m.sql);
      await tx.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
      applied.push(m.version);
    }
    return applied;
  });
}
