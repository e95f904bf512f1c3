// Filtered reads of the audit trail (ListAuditEvents). Every filter is an
// indexed column (migration 0009), and a page is read in seq order after the
// last seq of the previous one, so appends between pages never shift it.

import type { StoredAuditEvent } from "./audit.js";
import type { Queryable } from "./db.js";

const text = (v: unknown): string | null => (typeof v === "string" ? v : null);

/**
 * The facts ListAuditEvents filters on, from an event's data: the rules of
 * the database function that fills the query columns on insert
 * (baton_audit_query_columns, migration 0009), for the converter to show what the
 * filters match. A revocation written before its data named the token, agent
 * or task directly says it through `target` and `id`.
 */
export function auditIndexFacts(kind: string, data: Readonly<Record<string, unknown>>): { taskId: string | null; agentId: string | null; human: string | null; tokenId: string | null } {
  const revocation = kind === "revocation.created" && text(data.target) !== null && text(data.id) !== null;
  const target = revocation ? text(data.target) : null;
  const targetId = revocation ? text(data.id) : null;
  return {
    taskId: text(data.task_id) ?? (target === "task" ? targetId : null),
    agentId: text(data.agent_id) ?? (target === "agent" ? targetId : null),
    human: text(data.human),
    tokenId: text(data.token_id) ?? (target === "token" || target === "chain" ? targetId : null),
  };
}

export interface AuditFilter {
  readonly appId: string | null;
  readonly taskId: string | null;
  readonly agentId: string | null;
  readonly human: string | null;
  readonly tokenId: string | null;
  /** Empty: every kind. */
  readonly kinds: readonly string[];
  /** At or after. */
  readonly start: Date | null;
  /** Before. */
  readonly end: Date | null;
}

/** A stored event without its chain links (the query answers the record; `baton audit verify` checks the chain). */
export type ListedAuditEvent = Omit<StoredAuditEvent, "prevHash" | "hash">;

/** Up to `limit` events matching `filter` with seq above `afterSeq`, oldest first. */
export async function listAuditEvents(db: Queryable, filter: AuditFilter, afterSeq: bigint, limit: number): Promise<ListedAuditEvent[]> {
  const params: unknown[] = [afterSeq.toString()];
  const where = ["seq > $1"];
  const add = (sql: string, value: unknown): void => {
    params.push(value);
    where.push(sql.replace("?", `$${params.length}`));
  };
  if (filter.appId !== null) add("app_id = ?", filter.appId);
  if (filter.taskId !== null) add("task_id = ?", filter.taskId);
  if (filter.agentId !== null) add("agent_id = ?", filter.agentId);
  if (filter.human !== null) add("human_principal = ?", filter.human);
  if (filter.tokenId !== null) add("token_id = ?", filter.tokenId);
  if (filter.kinds.length === 1) add("kind = ?", filter.kinds[0]);
  else if (filter.kinds.length > 1) add("kind = ANY(?::text[])", filter.kinds);
  if (filter.start !== null) add("event_time >= ?", filter.start);
  if (filter.end !== null) add("event_time < ?", filter.end);
  params.push(limit);
  const { rows } = await db.query<{ seq: string; event_time: Date; kind: string; app_id: string | null; request_id: string | null; payload: string }>(
    `SELECT seq, event_time, kind, app_id, request_id, payload FROM audit_events WHERE ${where.join(" AND ")} ORDER BY seq LIMIT $${params.length}`,
    params,
  );
  return rows.map((r) => ({ seq: BigInt(r.seq), eventTime: r.event_time, kind: r.kind, appId: r.app_id, requestId: r.request_id, payload: r.payload }));
}
