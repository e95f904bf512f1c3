// A fresh, migrated database per test file, cloned from the template.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { createPool, type Db } from "../../server/storage/db.js";

const TEMPLATE = "baton_template";

export const pgUrl = (database: string): string =>
  `postgres://baton:baton-embedded@127.0.0.1:${inject("pgPort")}/${database}`;

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  readonly db: Db;
  drop(): Promise<void>;
}

export async function freshDatabase(): Promise<TestDatabase> {
  const name = `t_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: pgUrl("postgres") });
  await admin.connect();
  // CREATE DATABASE ... TEMPLATE fails while another session is connected to
  // the template; files run in parallel, so retry briefly.
  for (let i = 0; ; i++) {
    try {
      await admin.query(`CREATE DATABASE ${name} TEMPLATE ${TEMPLATE}`);
      break;
    } catch (err) {
      if (i >= 50) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  await admin.end();
  const url = pgUrl(name);
  const db = createPool(url, 10);
  return {
    name,
    url,
    db,
    async drop() {
      await db.end();
      const a = new pg.Client({ connectionString: pgUrl("postgres") });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.end();
    },
  };
}
