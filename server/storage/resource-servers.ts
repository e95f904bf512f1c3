// Resource servers: operator-registered principals naming the audiences they
// serve (query functions only).

import { notifyPrincipalChanged } from "./apps.js";
import type { Queryable } from "./db.js";

export interface ResourceServerRecord {
  readonly resourceServerId: string;
  readonly name: string;
  readonly secretHash: Buffer;
  readonly audiences: readonly string[];
  readonly disabled: boolean;
  readonly createTime: Date;
  readonly updateTime: Date;
}

interface Row {
  resource_server_id: string;
  name: string;
  secret_hash: Buffer;
  audiences: string[];
  disabled: boolean;
  create_time: Date;
  update_time: Date;
}

const COLUMNS = "resource_server_id, name, secret_hash, audiences, disabled, create_time, update_time";

const fromRow = (r: Row): ResourceServerRecord => ({
  resourceServerId: r.resource_server_id,
  name: r.name,
  secretHash: r.secret_hash,
  audiences: r.audiences,
  disabled: r.disabled,
  createTime: r.create_time,
  updateTime: r.update_time,
});

/** Inserts a resource server; returns false when the name is taken. */
export async function insertResourceServer(db: Queryable, r: ResourceServerRecord): Promise<boolean> {
  const res = await db.query(
    `INSERT INTO resource_servers (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING`,
    [r.resourceServerId, r.name, r.secretHash, r.audiences, r.disabled, r.createTime, r.updateTime],
  );
  if (res.rowCount !== 1) return false;
  await notifyPrincipalChanged(db, r.resourceServerId);
  return true;
}

export async function getResourceServer(db: Queryable, id: string, forUpdate = false): Promise<ResourceServerRecord | null> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM resource_servers WHERE resource_server_id = $1${forUpdate ? " FOR UPDATE" : ""}`,
    [id],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Resource servers with id > afterId, ordered by id. */
export async function listResourceServers(db: Queryable, afterId: string, limit: number): Promise<ResourceServerRecord[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM resource_servers WHERE resource_server_id > $1 ORDER BY resource_server_id LIMIT $2`,
    [afterId, limit],
  );
  return rows.map(fromRow);
}

export async function disableResourceServer(db: Queryable, id: string, at: Date): Promise<void> {
  await db.query("UPDATE resource_servers SET disabled = true, update_time = $2 WHERE resource_server_id = $1", [id, at]);
  await notifyPrincipalChanged(db, id);
}

/** Resource servers written after change `afterSeq` (every one for -1), like appsChangedSince. */
export async function resourceServersChangedSince(
  db: Queryable,
  afterSeq: bigint,
): Promise<{ resourceServers: ResourceServerRecord[]; lastSeq: bigint }> {
  const { rows } = await db.query<Row & { change_seq: string }>(
    `SELECT ${COLUMNS}, change_seq FROM resource_servers WHERE change_seq > $1 ORDER BY change_seq`,
    [afterSeq.toString()],
  );
  return { resourceServers: rows.map(fromRow), lastSeq: rows.length > 0 ? BigInt(rows.at(-1)!.change_seq) : afterSeq };
}
