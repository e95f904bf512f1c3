// A stored audit event as the AuditEvent message: every event kind answers
// the same fields from the same data keys (see appendAudit's callers), and
// data_json keeps all its facts as hashed.

import type { AuditEvent } from "../gen/baton/v1/admin.js";
import type { LineageEntry } from "../gen/baton/v1/broker.js";
import type { Duration } from "../gen/google/protobuf/duration.js";
import { canonicalJson } from "../storage/audit.js";
import { auditIndexFacts, type ListedAuditEvent } from "../storage/audit-query.js";

const text = (v: unknown): string => (typeof v === "string" ? v : "");
const texts = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);

function lineageOf(v: unknown): LineageEntry[] {
  if (!Array.isArray(v)) return [];
  return v.map((e: unknown) => {
    const o = (typeof e === "object" && e !== null ? e : {}) as Record<string, unknown>;
    return { tokenId: text(o.token_id), agentId: text(o.agent_id) };
  });
}

/**
 * The lifetime of the credential an event minted: its `ttl_seconds`, or for
 * a token event written before that key, expiry minus the whole second of
 * issuance (the token's not-before).
 */
function lifetimeOf(kind: string, data: Record<string, unknown>, eventTime: Date): Duration | undefined {
  if (typeof data.ttl_seconds === "number" && Number.isFinite(data.ttl_seconds) && data.ttl_seconds >= 0) {
    return { seconds: Math.floor(data.ttl_seconds), nanos: 0 };
  }
  if ((kind === "token.issued" || kind === "token.delegated") && typeof data.expire_time === "string") {
    const s = Math.floor((Date.parse(data.expire_time) - Math.floor(eventTime.getTime() / 1000) * 1000) / 1000);
    if (Number.isFinite(s) && s >= 0) return { seconds: s, nanos: 0 };
  }
  return undefined;
}

/** A damaged row (VerifyAuditLog names it) still lists, with what its columns say. */
function parsed(payload: string): { actor?: unknown; data?: unknown } {
  try {
    const p: unknown = JSON.parse(payload);
    return typeof p === "object" && p !== null ? p : {};
  } catch {
    return {};
  }
}

export function auditEventToProto(e: ListedAuditEvent): AuditEvent {
  const payload = parsed(e.payload);
  const data = (typeof payload.data === "object" && payload.data !== null ? payload.data : {}) as Record<string, unknown>;
  // A refusal's `reason` is its ErrorReason: the outcome. Elsewhere `reason` is what a person or resource server gave.
  const refusal = e.kind.endsWith(".refused") && typeof data.outcome !== "string";
  // What the filters match on, so an event found by token, agent or task shows it.
  const facts = auditIndexFacts(e.kind, data);
  return {
    seq: Number(e.seq),
    kind: e.kind,
    eventTime: e.eventTime,
    actor: text(payload.actor),
    appId: e.appId ?? "",
    requestId: e.requestId ?? "",
    taskId: facts.taskId ?? "",
    orchestrationId: text(data.orchestration_id),
    agentId: facts.agentId ?? "",
    humanPrincipal: facts.human ?? "",
    tokenId: facts.tokenId ?? "",
    lineage: lineageOf(data.lineage),
    // An app's events state its ceiling: the permissions it may grant.
    scopes: texts(data.scopes ?? data.scope_ceiling),
    audiences: texts(data.audiences),
    approvalId: text(data.approval_id),
    approvalResult: text(data.approval_result),
    credentialLifetime: lifetimeOf(e.kind, data, e.eventTime),
    resourceServerId: text(data.resource_server_id),
    outcome: typeof data.outcome === "string" ? data.outcome : refusal ? text(data.reason) : "ok",
    reason: refusal ? "" : text(data.reason),
    // As stored, whatever its shape.
    dataJson: canonicalJson(payload.data),
  };
}
