// Starts one embedded PostgreSQL for the whole test run and migrates a
// template database that every test file clones.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startEmbedded, type EmbeddedDatabase } from "../../server/storage/embedded.js";
import { createPool } from "../../server/storage/db.js";
import { migrate } from "../../server/storage/migrate.js";

declare module "vitest" {
  export interface ProvidedContext {
    pgPort: number;
  }
}

export const TEMPLATE = "baton_template";

let embedded: EmbeddedDatabase | undefined;
let dir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  // Under /tmp, which the dedicated postgres user can traverse.
  dir = mkdtempSync(join(tmpdir(), "baton-test-pg-"));
  embedded = await startEmbedded({ dataDir: dir, persistent: false, unsafeFast: true });
  const admin = new pg.Client({ connectionString: embedded.url("postgres") });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${TEMPLATE}`);
  await admin.end();
  const pool = createPool(embedded.url(TEMPLATE), 2);
  await migrate(pool);
  await pool.end();
  project.provide("pgPort", embedded.port);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}
