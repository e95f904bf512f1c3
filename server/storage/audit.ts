// The hash-chained audit trail (DESIGN §9). Writers call appendAudit inside
// the transaction of the change they record; the head row's lock orders the
// chain across writers and replicas. hash = sha256(prev_hash || payload),
// payload = canonical JSON (sorted keys) of the event including its seq.

import { createHash } from "node:crypto";
import type { Queryable, Tx } from "./db.js";

export interface AuditEvent {
  /** e.g. "token.issued", "issue.refused", "revocation.created", "app.created". */
  readonly kind: string;
  readonly time: Date;
  readonly appId: string | null;
  readonly requestId: string | null;
  /** Who acted: "operator", "app:<id>" or "agent:<agent id>". */
  readonly actor: string;
  /** Event facts: lineage, scopes, reasons. Never a token, secret or key. */
  readonly data: Readonly<Record<string, unknown>>;
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
}

export function chainHash(prev: Buffer, payload: string): Buffer {
  return createHash("sha256").update(prev).update(payload, "utf8").digest();
}

/** Appends events, in order, to the chain. Must run inside a transaction. */
export async function appendAudit(tx: Tx, events: readonly AuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  const head = await tx.query<{ seq: string; hash: Buffer }>("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE");
  let seq = BigInt(head.rows[0]!.seq);
  let prev = head.rows[0]!.hash;
  const cols = { seq: [] as string[], time: [] as Date[], kind: [] as string[], app: [] as (string | null)[], req: [] as (string | null)[], payload: [] as string[], prev: [] as Buffer[], hash: [] as Buffer[] };
  for (const e of events) {
    seq += 1n;
    const payload = canonicalJson({
      seq: seq.toString(),
      time: e.time.toISOString(),
      kind: e.kind,
      app_id: e.appId,
      request_id: e.requestId,
      actor: e.actor,
      data: e.data,
    });
    const hash = chainHash(prev, payload);
    cols.seq.push(seq.toString());
    cols.time.push(e.time);
    cols.kind.push(e.kind);
    cols.app.push(e.appId);
    cols.req.push(e.requestId);
    cols.payload.push(payload);
    cols.prev.push(prev);
    cols.hash.push(hash);
    prev = hash;
  }
  await tx.query(
    `INSERT INTO audit_events (seq, event_time, kind, app_id, request_id, payload, prev_hash, hash)
     SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[])`,
    [cols.seq, cols.time, cols.kind, cols.app, cols.req, cols.payload, cols.prev, cols.hash],
  );
  await tx.query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", [seq.toString(), prev]);
}

export interface AuditVerification {
  readonly intact: boolean;
  readonly eventCount: number;
  /** 0 when intact. */
  readonly firstBrokenSeq: bigint;
}

/** Re-computes the chain from the first event, a page at a time. */
export async function verifyAudit(db: Queryable, pageSize = 5000): Promise<AuditVerification> {
  let prev: Buffer = Buffer.alloc(32);
  let expectSeq = 1n;
  let count = 0;
  for (;;) {
    const { rows } = await db.query<{ seq: string; payload: string; prev_hash: Buffer; hash: Buffer }>(
      "SELECT seq, payload, prev_hash, hash FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2",
      [expectSeq.toString(), pageSize],
    );
    for (const r of rows) {
      const seq = BigInt(r.seq);
      const payloadSeq = safeSeq(r.payload);
      if (seq !== expectSeq || payloadSeq !== seq || !r.prev_hash.equals(prev) || !chainHash(prev, r.payload).equals(r.hash)) {
        return { intact: false, eventCount: count, firstBrokenSeq: expectSeq };
      }
      prev = r.hash;
      expectSeq += 1n;
      count += 1;
    }
    if (rows.length < pageSize) break;
  }
  const head = await db.query<{ seq: string; hash: Buffer }>("SELECT seq, hash FROM audit_head WHERE id = 1");
  const h = head.rows[0]!;
  if (BigInt(h.seq) !== expectSeq - 1n || !h.hash.equals(prev)) {
    // Events were deleted from the end.
    return { intact: false, eventCount: count, firstBrokenSeq: expectSeq };
  }
  return { intact: true, eventCount: count, firstBrokenSeq: 0n };
}

function safeSeq(payload: string): bigint | null {
  try {
    const v = (JSON.parse(payload) as { seq?: unknown }).seq;
    return typeof v === "string" && /^\d+$/.test(v) ? BigInt(v) : null;
  } catch {
    return null;
  }
}
