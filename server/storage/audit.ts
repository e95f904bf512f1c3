// The hash-chained audit trail (DESIGN §9). Writers call appendAudit inside
// the transaction of the change they record; the head row's lock orders the
// chain across writers and replicas. hash = sha256(prev_hash || payload),
// payload = canonical JSON (sorted keys) of the event including its seq.
// Grant and revocation batches, each written in one statement, have
// PostgreSQL chain their events under the head lock instead
// (baton_append_audit, migration 0011), from the payload in two parts
// around the seq (payloadParts).

import { createHash } from "node:crypto";
import type { Db, Queryable, Tx } from "./db.js";

export interface AuditEvent {
  /** e.g. "token.issued", "issue.refused", "revocation.created", "app.created". */
  readonly kind: string;
  readonly time: Date;
  readonly appId: string | null;
  readonly requestId: string | null;
  /** Who acted: "operator", "broker" (its own housekeeping), "app:<id>" or "agent:<agent id>". */
  readonly actor: string;
  /** Event facts: lineage, scopes, reasons. Never a token, secret or key. */
  readonly data: Readonly<Record<string, unknown>>;
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  return `{${sortedMembers(value as Record<string, unknown>).map(member).join(",")}}`;
}

export function chainHash(prev: Buffer, payload: string): Buffer {
  return createHash("sha256").update(prev).update(payload, "utf8").digest();
}

/** Events as audit_events columns, chained from a head. */
interface ChainedEvents {
  readonly seq: string[];
  readonly time: Date[];
  readonly kind: string[];
  readonly appId: (string | null)[];
  readonly requestId: (string | null)[];
  readonly payload: string[];
  readonly prevHash: Buffer[];
  readonly hash: Buffer[];
  /** The head after the last of them. */
  readonly head: ChainPoint;
}

/**
 * An event's payload (canonical JSON of seq, time, kind, app_id,
 * request_id, actor and data) in the two parts around its seq: keys are
 * sorted, so "seq" comes after "request_id" and before "time". The payload
 * is `beforeSeq + '"seq":"<seq>",' + afterSeq` (payloadAt); PostgreSQL joins
 * them the same way (baton_append_audit, migration 0011).
 */
export interface PayloadParts {
  readonly beforeSeq: string;
  readonly afterSeq: string;
}

const member = ([k, v]: [string, unknown]): string => `${JSON.stringify(k)}:${canonicalJson(v)}`;
const sortedMembers = (o: Readonly<Record<string, unknown>>): [string, unknown][] =>
  Object.entries(o)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

export function payloadParts(e: AuditEvent): PayloadParts {
  const rest = canonicalJson({ actor: e.actor, app_id: e.appId, data: e.data, kind: e.kind, request_id: e.requestId });
  return { beforeSeq: `${rest.slice(0, -1)},`, afterSeq: `"time":${JSON.stringify(e.time.toISOString())}}` };
}

/**
 * payloadParts with the string value of `data[key]` also left out (a
 * revocation's cursor, assigned in PostgreSQL): the payload is
 * `beforeValue + '"<value>"' + beforeSeq + '"seq":"<seq>",' + afterSeq`
 * (baton_append_revocations, migration 0011).
 */
export function payloadPartsAround(e: AuditEvent, key: string): PayloadParts & { readonly beforeValue: string } {
  const data = sortedMembers(e.data).filter(([k]) => k !== key);
  const at = data.findIndex(([k]) => k > key);
  const before = (at < 0 ? data : data.slice(0, at)).map(member);
  const after = at < 0 ? [] : data.slice(at).map(member);
  const top = `{${member(["actor", e.actor])},${member(["app_id", e.appId])},"data":`;
  return {
    beforeValue: `${top}{${[...before, `${JSON.stringify(key)}:`].join(",")}`,
    beforeSeq: `${after.map((m) => `,${m}`).join("")}},${member(["kind", e.kind])},${member(["request_id", e.requestId])},`,
    afterSeq: `"time":${JSON.stringify(e.time.toISOString())}}`,
  };
}

export const payloadAt = (p: PayloadParts, seq: bigint): string => `${p.beforeSeq}"seq":"${seq}",${p.afterSeq}`;

/** Numbers and hashes `events`, in order, as the chain's next links after `from`. */
function chainEvents(from: ChainPoint, events: readonly AuditEvent[]): ChainedEvents {
  let seq = from.seq;
  let prev = from.hash;
  const out = { seq: [] as string[], time: [] as Date[], kind: [] as string[], appId: [] as (string | null)[], requestId: [] as (string | null)[], payload: [] as string[], prevHash: [] as Buffer[], hash: [] as Buffer[] };
  for (const e of events) {
    seq += 1n;
    const payload = payloadAt(payloadParts(e), seq);
    const hash = chainHash(prev, payload);
    out.seq.push(seq.toString());
    out.time.push(e.time);
    out.kind.push(e.kind);
    out.appId.push(e.appId);
    out.requestId.push(e.requestId);
    out.payload.push(payload);
    out.prevHash.push(prev);
    out.hash.push(hash);
    prev = hash;
  }
  return { ...out, head: { seq, hash: prev } };
}

const INSERT_CHAINED = `INSERT INTO audit_events (seq, event_time, kind, app_id, request_id, payload, prev_hash, hash)
   SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bytea[], $8::bytea[])`;

/**
 * Appends events, in order, to the chain, and returns the new head. Must run
 * inside a transaction: the head row stays locked until it commits.
 */
export async function appendAudit(tx: Tx, events: readonly AuditEvent[]): Promise<ChainPoint | null> {
  if (events.length === 0) return null;
  const head = await tx.query<{ seq: string; hash: Buffer }>("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE");
  const chained = chainEvents({ seq: BigInt(head.rows[0]!.seq), hash: head.rows[0]!.hash }, events);
  await tx.query(INSERT_CHAINED, [chained.seq, chained.time, chained.kind, chained.appId, chained.requestId, chained.payload, chained.prevHash, chained.hash]);
  await tx.query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", [chained.head.seq.toString(), chained.head.hash]);
  return chained.head;
}

export interface AuditVerification {
  readonly intact: boolean;
  readonly eventCount: number;
  /** 0 when intact. */
  readonly firstBrokenSeq: bigint;
}

export interface ChainPoint {
  readonly seq: bigint;
  readonly hash: Buffer;
}

/** Where the stored chain starts: the last pruned event (seq 0 and zero hash while nothing was pruned). */
export async function auditAnchor(db: Queryable): Promise<ChainPoint> {
  const { rows } = await db.query<{ seq: string; hash: Buffer }>("SELECT seq, hash FROM audit_anchor WHERE id = 1");
  return { seq: BigInt(rows[0]!.seq), hash: rows[0]!.hash };
}

/**
 * Re-computes the chain from the anchor (the last pruned event) to the head,
 * a page at a time, in one snapshot so that concurrent appends and pruning
 * do not look like damage.
 */
export async function verifyAudit(db: Db, pageSize = 5000): Promise<AuditVerification> {
  const client = await db.connect();
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const result = await verifyInSnapshot(client, pageSize);
    await client.query("COMMIT");
    return result;
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

async function verifyInSnapshot(db: Queryable, pageSize: number): Promise<AuditVerification> {
  const anchor = await auditAnchor(db);
  let prev = anchor.hash;
  let expectSeq = anchor.seq + 1n;
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
  // Rows below the anchor would mean the anchor was moved past them.
  const below = await db.query("SELECT 1 FROM audit_events WHERE seq <= $1 LIMIT 1", [anchor.seq.toString()]);
  const head = await db.query<{ seq: string; hash: Buffer }>("SELECT seq, hash FROM audit_head WHERE id = 1");
  const h = head.rows[0]!;
  if (below.rows.length > 0 || BigInt(h.seq) !== expectSeq - 1n || !h.hash.equals(prev)) {
    // Events were deleted from the end.
    return { intact: false, eventCount: count, firstBrokenSeq: expectSeq };
  }
  return { intact: true, eventCount: count, firstBrokenSeq: 0n };
}

/** One line of an audit export (JSON lines): the stored row, hashes in hex. */
export interface ExportedAuditEvent {
  readonly seq: string;
  readonly event_time: string;
  readonly kind: string;
  readonly app_id: string | null;
  readonly request_id: string | null;
  /** The exact bytes the hash covers. */
  readonly payload: string;
  readonly prev_hash: string;
  readonly hash: string;
}

export interface StoredAuditEvent {
  readonly seq: bigint;
  readonly eventTime: Date;
  readonly kind: string;
  readonly appId: string | null;
  readonly requestId: string | null;
  readonly payload: string;
  readonly prevHash: Buffer;
  readonly hash: Buffer;
}

/** Stored events after `afterSeq`, in order. */
export async function auditEventsAfter(db: Queryable, afterSeq: bigint, limit: number): Promise<StoredAuditEvent[]> {
  const { rows } = await db.query<{
    seq: string; event_time: Date; kind: string; app_id: string | null; request_id: string | null; payload: string; prev_hash: Buffer; hash: Buffer;
  }>(
    "SELECT seq, event_time, kind, app_id, request_id, payload, prev_hash, hash FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
    [afterSeq.toString(), limit],
  );
  return rows.map((r) => ({
    seq: BigInt(r.seq), eventTime: r.event_time, kind: r.kind, appId: r.app_id, requestId: r.request_id, payload: r.payload, prevHash: r.prev_hash, hash: r.hash,
  }));
}

export function exportLine(e: StoredAuditEvent): string {
  const line: ExportedAuditEvent = {
    seq: e.seq.toString(),
    event_time: e.eventTime.toISOString(),
    kind: e.kind,
    app_id: e.appId,
    request_id: e.requestId,
    payload: e.payload,
    prev_hash: e.prevHash.toString("hex"),
    hash: e.hash.toString("hex"),
  };
  return `${JSON.stringify(line)}\n`;
}

export interface ExportVerification extends AuditVerification {
  /** The last event verified: where the next export file must continue. */
  readonly last: ChainPoint | null;
}

/**
 * Checks exported lines (streamed: a file may be large) chain from `start` (the event before the first line;
 * omitted: the first line's own prev_hash is taken on trust, unless it is
 * seq 1, which starts from the zero hash).
 */
export async function verifyAuditExport(lines: Iterable<string> | AsyncIterable<string>, start?: ChainPoint): Promise<ExportVerification> {
  let at: ChainPoint | null = start ?? null;
  let count = 0;
  for await (const raw of lines) {
    if (raw.trim() === "") continue;
    let e: Partial<ExportedAuditEvent>;
    try {
      e = JSON.parse(raw) as Partial<ExportedAuditEvent>;
    } catch {
      e = {};
    }
    const expect = at === null ? null : at.seq + 1n;
    const seq = typeof e.seq === "string" && /^\d+$/.test(e.seq) ? BigInt(e.seq) : null;
    const prevHash = typeof e.prev_hash === "string" ? Buffer.from(e.prev_hash, "hex") : Buffer.alloc(0);
    if (at === null && seq !== null) at = { seq: seq - 1n, hash: seq === 1n ? Buffer.alloc(32) : prevHash };
    const ok =
      at !== null && seq === at.seq + 1n && typeof e.payload === "string" && safeSeq(e.payload) === seq && matchesPayload(e) &&
      prevHash.equals(at.hash) && typeof e.hash === "string" && chainHash(at.hash, e.payload).toString("hex") === e.hash;
    if (!ok) return { intact: false, eventCount: count, firstBrokenSeq: expect ?? seq ?? 0n, last: at };
    at = { seq: seq!, hash: Buffer.from(e.hash!, "hex") };
    count += 1;
  }
  return { intact: true, eventCount: count, firstBrokenSeq: 0n, last: at };
}

/** The convenience columns of an export line say what its hashed payload says. */
function matchesPayload(e: Partial<ExportedAuditEvent>): boolean {
  try {
    const p = JSON.parse(e.payload!) as Record<string, unknown>;
    return p.time === e.event_time && p.kind === e.kind && p.app_id === e.app_id && p.request_id === e.request_id;
  } catch {
    return false;
  }
}

function safeSeq(payload: string): bigint | null {
  try {
    const v = (JSON.parse(payload) as { seq?: unknown }).seq;
    return typeof v === "string" && /^\d+$/.test(v) ? BigInt(v) : null;
  } catch {
    return null;
  }
}

/**
 * Writes the stored events after `afterSeq` (default: the anchor, so the
 * whole remaining chain) as export lines, read in one snapshot so a
 * concurrent pruning cannot leave a gap. Returns the count and the last event.
 */
export async function exportAudit(db: Db, afterSeq: bigint | null, write: (text: string) => Promise<void>, pageSize = 5000): Promise<{ count: number; last: ChainPoint | null }> {
  const client = await db.connect();
  try {
    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    let after = afterSeq ?? (await auditAnchor(client)).seq;
    let count = 0;
    let last: ChainPoint | null = null;
    for (;;) {
      const page = await auditEventsAfter(client, after, pageSize);
      if (page.length === 0) break;
      await write(page.map(exportLine).join(""));
      const e = page.at(-1)!;
      last = { seq: e.seq, hash: e.hash };
      after = e.seq;
      count += page.length;
    }
    await client.query("COMMIT");
    return { count, last };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
