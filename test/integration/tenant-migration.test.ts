// Migration 0005 on a database with revocations written before it: each row
// gets the audiences of the tokens it can kill, by the rules the broker now
// applies at revoke time, so resource servers streaming after an upgrade
// miss nothing.

import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createPool, type Db } from "../../server/storage/db.js";
import { loadMigrations, migrate } from "../../server/storage/migrate.js";
import { pgUrl } from "../helpers/database.js";

const name = `t_mig_${randomBytes(5).toString("hex")}`;
let db: Db;

async function admin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: pgUrl("postgres") });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  await admin(`CREATE DATABASE ${name}`);
  db = createPool(pgUrl(name), 2);
});
afterAll(async () => {
  await db?.end();
  await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
});

it("backfills the audiences of revocations stored before it", async () => {
  const all = loadMigrations();
  const before = all.filter((m) => m.version < 5);
  expect(all.some((m) => m.version === 5)).toBe(true);
  await migrate(db, before);

  const t = new Date();
  const later = new Date(t.getTime() + 600_000);
  await db.query(
    `INSERT INTO apps VALUES ('app_A', 'a', '\\x00', '{read:x:*}', '{a1-api,a2-api}', 3600, 5, false, $1, $1),
                            ('app_Gone', 'gone', '\\x00', '{read:x:*}', '{g-api}', 3600, 5, false, $1, $1)`,
    [t],
  );
  const grant = (id: string, agent: string, parent: string | null, root: string, aud: string) =>
    db.query(
      `INSERT INTO grants (token_id, app_id, agent_id, task_id, parent_token_id, root_token_id, depth, scopes, audiences, key_id, issue_time, expire_time)
       VALUES ($1, 'app_A', $2, 'task-1', $3, $4, $5, '{read:x:1}', $6, 'k', $7, $8)`,
      [id, agent, parent, root, parent ? 1 : 0, aud, t, later],
    );
  await grant("root", "agent-r", null, "root", "{a1-api,a2-api}");
  await grant("child", "agent-c", "root", "root", "{a2-api}");
  await grant("other", "agent-r", null, "other", "{a1-api}");
  const revocations: [number, string, string, string][] = [
    [1, "token", "child", "app_A"],
    [2, "chain", "root", "app_A"],
    [3, "agent", "agent-c", "app_A"],
    [4, "agent", "agent-r", "app_A"],
    [5, "task", "task-1", "app_A"],
    [6, "app", "app_A", "app_A"],
    [7, "token", "no-such-grant", "app_Gone"],
  ];
  for (const [cursor, target, id, appId] of revocations) {
    await db.query("INSERT INTO revocations (cursor, target, target_id, app_id, revoke_time, expire_time) VALUES ($1, $2, $3, $4, $5, $6)", [
      cursor,
      target,
      id,
      appId,
      t,
      later,
    ]);
  }

  expect(await migrate(db, all)).toContain(5);
  const { rows } = await db.query<{ cursor: string; audiences: string[] }>("SELECT cursor, audiences FROM revocations ORDER BY cursor");
  expect(rows.map((r) => [Number(r.cursor), r.audiences])).toEqual([
    [1, ["a2-api"]], // the child's own
    [2, ["a1-api", "a2-api"]], // the root's
    [3, ["a2-api"]],
    [4, ["a1-api", "a2-api"]], // the union over the agent's grants
    [5, ["a1-api", "a2-api"]], // the app's
    [6, ["a1-api", "a2-api"]],
    [7, ["g-api"]], // grant gone: the app's
  ]);
  // Every writer must now say which audiences a revocation affects.
  await expect(
    db.query("INSERT INTO revocations (cursor, target, target_id, app_id, revoke_time, expire_time) VALUES (8, 'app', 'app_A', 'app_A', $1, $1)", [t]),
  ).rejects.toThrow(/audiences/);
});
