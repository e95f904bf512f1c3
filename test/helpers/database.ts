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

/** The pool, counting what the writer asks of it. */
export function counting(db: Db): { db: Db; connects: () => number; statements: () => number; reset(): void } {
  let connects = 0;
  let statements = 0;
  const proxy = new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === "connect") {
        return async () => {
          connects++;
          const client = await target.connect();
          return new Proxy(client, {
            get(c, p, r) {
              if (p === "query") return (...args: unknown[]) => (statements++, (c.query as (...a: unknown[]) => unknown)(...args));
              return Reflect.get(c, p, r) as unknown;
            },
          });
        };
      }
      if (prop === "query") return (...args: unknown[]) => (statements++, (target.query as (...a: unknown[]) => unknown)(...args));
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  return { db: proxy, connects: () => connects, statements: () => statements, reset: () => ((connects = 0), (statements = 0)) };
}
