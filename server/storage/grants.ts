// Grants: one row per issued or delegated token (query functions only).

import { type AuditEvent, payloadParts } from "./audit.js";
import type { Queryable } from "./db.js";

export interface GrantRecord {
  readonly tokenId: string;
  readonly appId: string;
  readonly agentId: string;
  readonly taskId: string;
  readonly orchestrationId: string | null;
  readonly humanPrincipal: string | null;
  readonly parentTokenId: string | null;
  readonly rootTokenId: string;
  readonly depth: number;
  readonly scopes: readonly string[];
  readonly audiences: readonly string[];
  readonly keyThumbprint: string | null;
  readonly keyId: string;
  readonly issueTime: Date;
  readonly expireTime: Date;
  /** When the token's renewal line began (Renew copies it); unset on insert: its issue time. */
  readonly taskStartTime?: Date;
}

// The grants of a batch as unnest parameters $1..$16 (with the app versions).
// Arrays of arrays cannot go through unnest, so scopes and audiences travel
// as space-joined text (neither may contain a space) and are split in SQL.
const GRANT_ROWS = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
       $9::int[], $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
       $17::timestamptz[])
       AS x(t, a, ag, tk, o, h, p, r, d, s, au, k, kid, it, et, v, ts)`;
const INSERT_GRANTS = `INSERT INTO grants (token_id, app_id, agent_id, task_id, orchestration_id, human_principal, parent_token_id,
       root_token_id, depth, scopes, audiences, key_thumbprint, key_id, issue_time, expire_time, task_start_time)`;
const GRANT_VALUES = "t, a, ag, tk, o, h, p, r, d, string_to_array(s, ' '), string_to_array(au, ' '), k, kid, it, et, COALESCE(ts, it)";
// The apps of the batch that are enabled, share-locked: a concurrent disable
// waits for this batch, and its revocation covers every grant committed here.
const LIVE_APPS = "SELECT app_id, update_time FROM apps WHERE app_id = ANY($2::text[]) AND NOT disabled FOR SHARE";
// A grant may be stored while its app is enabled and, when its version is
// given, unchanged since (its update_time): the ceiling and credentials
// checked at the door still hold at commit, so a narrowing, disable or
// secret rotation committed on any replica stops issuance under the old
// settings at once.
const APP_HOLDS = "live.app_id = x.a AND (x.v IS NULL OR live.update_time = x.v)";

function grantParams(gs: readonly GrantRecord[], appVersions: readonly (Date | null)[]): unknown[] {
  return [
    gs.map((g) => g.tokenId),
    gs.map((g) => g.appId),
    gs.map((g) => g.agentId),
    gs.map((g) => g.taskId),
    gs.map((g) => g.orchestrationId),
    gs.map((g) => g.humanPrincipal),
    gs.map((g) => g.parentTokenId),
    gs.map((g) => g.rootTokenId),
    gs.map((g) => g.depth),
    gs.map((g) => g.scopes.join(" ")),
    gs.map((g) => g.audiences.join(" ")),
    gs.map((g) => g.keyThumbprint),
    gs.map((g) => g.keyId),
    gs.map((g) => g.issueTime),
    gs.map((g) => g.expireTime),
    appVersions,
    gs.map((g) => g.taskStartTime ?? null),
  ];
}

/**
 * Inserts many grants in one statement (the issuance batch), each only if its
 * app still holds (see APP_HOLDS). Returns the ids inserted.
 */
export async function insertGrants(db: Queryable, gs: readonly GrantRecord[], appVersions: readonly (Date | null)[]): Promise<Set<string>> {
  if (gs.length === 0) return new Set();
  const { rows } = await db.query<{ token_id: string }>(
    `WITH live AS (${LIVE_APPS})
     ${INSERT_GRANTS}
     SELECT ${GRANT_VALUES} FROM ${GRANT_ROWS}
     JOIN live ON ${APP_HOLDS}
     RETURNING token_id`,
    grantParams(gs, appVersions),
  );
  return new Set(rows.map((r) => r.token_id));
}

/**
 * Stores every grant with its audit event in one statement, which is its
 * own transaction, or nothing: one round trip instead of a transaction of
 * six. The apps are share-locked first (the order every writer locks in:
 * apps, then the audit head), and the grants and their events are stored
 * only if every grant's app still holds; PostgreSQL chains the events where
 * the head is when it gets its lock (baton_append_audit, migration 0011),
 * so several batches, from this broker or other replicas, can be in flight.
 * False, having stored nothing, when an app no longer holds: the caller
 * takes the locked path (insertGrants and appendAudit in a transaction),
 * which stores the grants that still hold.
 */
export async function insertGrantsChained(
  db: Queryable,
  gs: readonly GrantRecord[],
  appVersions: readonly (Date | null)[],
  events: readonly AuditEvent[],
): Promise<boolean> {
  const n = 18; // the first parameter after grantParams
  const parts = events.map(payloadParts);
  // `chained` runs once (a CTE with a volatile function is not inlined),
  // after `held` share-locked the apps, and only when they all hold.
  const res = await db.query({
    name: "grants-chained",
    text: `WITH live AS (${LIVE_APPS}),
     x AS (SELECT * FROM ${GRANT_ROWS}),
     held AS (SELECT count(*) = $${n + 6}::int AS yes FROM x JOIN live ON ${APP_HOLDS}),
     chained AS (
       SELECT baton_append_audit($${n}::timestamptz[], $${n + 1}::text[], $${n + 2}::text[], $${n + 3}::text[], $${n + 4}::text[], $${n + 5}::text[])
       WHERE (SELECT yes FROM held)
     )
     ${INSERT_GRANTS} SELECT ${GRANT_VALUES} FROM x WHERE EXISTS (SELECT 1 FROM chained)`,
    values: [
      ...grantParams(gs, appVersions),
      events.map((e) => e.time),
      events.map((e) => e.kind),
      events.map((e) => e.appId),
      events.map((e) => e.requestId),
      parts.map((p) => p.beforeSeq),
      parts.map((p) => p.afterSeq),
      gs.length,
    ],
  });
  return res.rowCount === gs.length;
}

interface Row {
  token_id: string;
  app_id: string;
  agent_id: string;
  task_id: string;
  orchestration_id: string | null;
  human_principal: string | null;
  parent_token_id: string | null;
  root_token_id: string;
  depth: number;
  scopes: string[];
  audiences: string[];
  key_thumbprint: string | null;
  key_id: string;
  issue_time: Date;
  expire_time: Date;
  task_start_time: Date | null;
}

const fromRow = (r: Row): GrantRecord => ({
  tokenId: r.token_id,
  appId: r.app_id,
  agentId: r.agent_id,
  taskId: r.task_id,
  orchestrationId: r.orchestration_id,
  humanPrincipal: r.human_principal,
  parentTokenId: r.parent_token_id,
  rootTokenId: r.root_token_id,
  depth: r.depth,
  scopes: r.scopes,
  audiences: r.audiences,
  keyThumbprint: r.key_thumbprint,
  keyId: r.key_id,
  issueTime: r.issue_time,
  expireTime: r.expire_time,
  // Grants written before migration 0010 began their line themselves.
  taskStartTime: r.task_start_time ?? r.issue_time,
});

export async function getGrant(db: Queryable, tokenId: string): Promise<GrantRecord | null> {
  const { rows } = await db.query<Row>("SELECT * FROM grants WHERE token_id = $1", [tokenId]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** The grants among `tokenIds` (one statement however many). */
export async function getGrants(db: Queryable, tokenIds: readonly string[]): Promise<GrantRecord[]> {
  const { rows } = await db.query<Row>("SELECT * FROM grants WHERE token_id = ANY($1::text[])", [tokenIds]);
  return rows.map(fromRow);
}

/**
 * What revoking an agent covers: its app, the latest expiry among its
 * grants, and the audiences of all of them (its descendants' are a subset),
 * sorted; null when the agent has no grant.
 */
export async function agentGrantSpan(db: Queryable, agentId: string): Promise<{ appId: string; expireTime: Date; audiences: string[] } | null> {
  const { rows } = await db.query<{ app_id: string; expire_time: Date; audiences: string[] }>(
    `SELECT app_id, max(expire_time) AS expire_time,
            ARRAY(SELECT DISTINCT a FROM grants g, unnest(g.audiences) AS a WHERE g.agent_id = $1 ORDER BY a) AS audiences
     FROM grants WHERE agent_id = $1 GROUP BY app_id`,
    [agentId],
  );
  return rows[0] ? { appId: rows[0].app_id, expireTime: rows[0].expire_time, audiences: rows[0].audiences } : null;
}

/** Grants of an app still alive at `now` (for re-checking them against a narrowed ceiling). */
export async function liveGrantsOfApp(db: Queryable, appId: string, now: Date): Promise<GrantRecord[]> {
  const { rows } = await db.query<Row>("SELECT * FROM grants WHERE app_id = $1 AND expire_time > $2", [appId, now]);
  return rows.map(fromRow);
}

export async function countGrants(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: string }>("SELECT count(*) AS n FROM grants");
  return Number(rows[0]!.n);
}

/** A grant with its delegation lineage, read for access reports. */
export interface GrantWithLineage
  extends Pick<GrantRecord, "tokenId" | "appId" | "agentId" | "taskId" | "orchestrationId" | "humanPrincipal" | "audiences"> {
  /** The ancestors, root first (empty for a token an app issued). */
  readonly lineage: readonly { readonly tokenId: string; readonly agentId: string }[];
}

/**
 * The grants of `tokenIds` that exist, each with its ancestors, in one
 * recursive query (a chain is at most the app's delegation depth long).
 */
export async function grantsWithLineage(db: Queryable, tokenIds: readonly string[]): Promise<Map<string, GrantWithLineage>> {
  const { rows } = await db.query<{
    leaf: string; token_id: string; app_id: string; agent_id: string; task_id: string; orchestration_id: string | null;
    human_principal: string | null; audiences: string[]; depth: number;
  }>(
    `WITH RECURSIVE chain AS (
       SELECT token_id AS leaf, g.* FROM grants g WHERE token_id = ANY($1::text[])
       UNION ALL
       SELECT c.leaf, g.* FROM chain c JOIN grants g ON g.token_id = c.parent_token_id
     )
     SELECT leaf, token_id, app_id, agent_id, task_id, orchestration_id, human_principal, audiences, depth
     FROM chain ORDER BY leaf, depth`,
    [[...new Set(tokenIds)]],
  );
  const out = new Map<string, GrantWithLineage>();
  const ancestors = new Map<string, { tokenId: string; agentId: string }[]>();
  for (const r of rows) {
    if (r.token_id !== r.leaf) {
      ancestors.set(r.leaf, [...(ancestors.get(r.leaf) ?? []), { tokenId: r.token_id, agentId: r.agent_id }]);
      continue;
    }
    out.set(r.leaf, {
      tokenId: r.token_id, appId: r.app_id, agentId: r.agent_id, taskId: r.task_id, orchestrationId: r.orchestration_id,
      humanPrincipal: r.human_principal, audiences: r.audiences, lineage: [],
    });
  }
  for (const [leaf, g] of out) out.set(leaf, { ...g, lineage: ancestors.get(leaf) ?? [] });
  return out;
}
