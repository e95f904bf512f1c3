// ListAuditEvents: the operator's filtered, paged view of the audit trail.
//
// A page token is the last seq returned plus a digest of the filters it was
// made under (and of that seq): used with other filters, or altered, it is
// refused rather than silently answering a different question. It carries
// no secret and grants nothing: only the operator lists, and `after_seq`
// already lets it start anywhere.

import { createHash } from "node:crypto";
import { InvalidRequestError } from "../domain/errors.js";
import { type AuditFilter, listAuditEvents, type ListedAuditEvent } from "../storage/audit-query.js";
import type { Queryable } from "../storage/db.js";

export const DEFAULT_AUDIT_PAGE = 100;
export const MAX_AUDIT_PAGE = 1000;
const MAX_FILTER_LENGTH = 1024;
const MAX_KINDS = 32;
const KIND = /^[a-z0-9_]{1,32}(\.[a-z0-9_]{1,32}){0,3}$/;

export interface AuditQueryInput {
  readonly appId: string;
  readonly taskId: string;
  readonly agentId: string;
  readonly human: string;
  readonly tokenId: string;
  readonly kinds: readonly string[];
  readonly start: Date | null;
  readonly end: Date | null;
  /** 0: from the start. */
  readonly afterSeq: bigint;
  /** 0: the default. */
  readonly pageSize: number;
  readonly pageToken: string;
}

export interface AuditPage {
  readonly events: ListedAuditEvent[];
  /** "" on the last page. */
  readonly nextPageToken: string;
}

function optionalFilter(field: string, value: string): string | null {
  if (value === "") return null;
  if (value.length > MAX_FILTER_LENGTH) throw new InvalidRequestError(field, `must be at most ${MAX_FILTER_LENGTH} characters`);
  return value;
}

function filterOf(input: AuditQueryInput): AuditFilter {
  if (input.kinds.length > MAX_KINDS) throw new InvalidRequestError("kinds", `at most ${MAX_KINDS} kinds are allowed`);
  for (const k of input.kinds) if (!KIND.test(k)) throw new InvalidRequestError("kinds", "each kind must look like `token.issued`");
  if (input.start !== null && Number.isNaN(input.start.getTime())) throw new InvalidRequestError("start_time", "is not a valid time");
  if (input.end !== null && Number.isNaN(input.end.getTime())) throw new InvalidRequestError("end_time", "is not a valid time");
  if (input.start !== null && input.end !== null && input.end <= input.start) {
    throw new InvalidRequestError("end_time", "must be after start_time");
  }
  return {
    appId: optionalFilter("app_id", input.appId),
    taskId: optionalFilter("task_id", input.taskId),
    agentId: optionalFilter("agent_id", input.agentId),
    human: optionalFilter("human_principal", input.human),
    tokenId: optionalFilter("token_id", input.tokenId),
    kinds: [...new Set(input.kinds)].sort(),
    start: input.start,
    end: input.end,
  };
}

/** Binds a page token to the question it continues: every filter and after_seq, and its own seq. */
function digest(filter: AuditFilter, afterSeq: bigint, seq: bigint): string {
  const question = JSON.stringify([filter, afterSeq.toString(), seq.toString()]);
  return createHash("sha256").update(question, "utf8").digest("base64url").slice(0, 22);
}

const TOKEN = /^(\d{1,19})\.([A-Za-z0-9_-]{22})$/;

function seqOfToken(token: string, filter: AuditFilter, afterSeq: bigint): bigint {
  const m = TOKEN.exec(Buffer.from(token, "base64url").toString("utf8"));
  if (!m || digest(filter, afterSeq, BigInt(m[1]!)) !== m[2]) {
    throw new InvalidRequestError("page_token", "is not a token from a previous page of this same query");
  }
  return BigInt(m[1]!);
}

export async function queryAudit(db: Queryable, input: AuditQueryInput): Promise<AuditPage> {
  const size = input.pageSize === 0 ? DEFAULT_AUDIT_PAGE : input.pageSize;
  if (size > MAX_AUDIT_PAGE) throw new InvalidRequestError("page_size", `must be at most ${MAX_AUDIT_PAGE}`);
  const filter = filterOf(input);
  const after = input.pageToken === "" ? input.afterSeq : seqOfToken(input.pageToken, filter, input.afterSeq);
  const rows = await listAuditEvents(db, filter, after, size + 1);
  const events = rows.slice(0, size);
  const last = events.at(-1);
  const nextPageToken =
    rows.length > size && last ? Buffer.from(`${last.seq}.${digest(filter, input.afterSeq, last.seq)}`, "utf8").toString("base64url") : "";
  return { events, nextPageToken };
}
