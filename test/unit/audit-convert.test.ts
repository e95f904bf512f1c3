// What each stored event kind answers as an AuditEvent, including events
// written before their writers used the shared data keys.

import { describe, expect, it } from "vitest";
import { canonicalJson } from "../../server/storage/audit.js";
import type { ListedAuditEvent } from "../../server/storage/audit-query.js";
import { auditEventToProto } from "../../server/transport/audit-convert.js";

const stored = (kind: string, data: unknown, time = "2026-12-03T12:00:00.700Z", actor = "operator"): ListedAuditEvent => ({
  seq: 7n,
  eventTime: new Date(time),
  kind,
  appId: "app_1",
  requestId: "req-1",
  payload: canonicalJson({ seq: "7", time, kind, app_id: "app_1", request_id: "req-1", actor, data }),
});

describe("auditEventToProto", () => {
  it("a token written before ttl_seconds: its lifetime from expiry and the whole second of issuance", () => {
    const e = auditEventToProto(stored("token.issued", { token_id: "t", expire_time: "2026-12-03T12:05:00.000Z", scopes: ["read:x:1"] }, undefined, "app:app_1"));
    expect(e).toMatchObject({ seq: 7, actor: "app:app_1", appId: "app_1", requestId: "req-1", tokenId: "t", credentialLifetime: { seconds: 300, nanos: 0 }, outcome: "ok" });
    expect(auditEventToProto(stored("token.issued", { ttl_seconds: 120, expire_time: "2026-12-03T12:05:00.000Z" })).credentialLifetime).toEqual({ seconds: 120, nanos: 0 });
    // Not a minting event: no lifetime, even with an expiry in its data.
    expect(auditEventToProto(stored("app.updated", { expire_time: "2026-12-03T12:05:00.000Z" })).credentialLifetime).toBeUndefined();
  });

  it("a revocation written before it named its target's keys: found and shown by token, agent or task", () => {
    expect(auditEventToProto(stored("revocation.created", { target: "token", id: "tok", reason: "r" }))).toMatchObject({ tokenId: "tok", reason: "r", outcome: "ok" });
    expect(auditEventToProto(stored("revocation.created", { target: "chain", id: "root" })).tokenId).toBe("root");
    expect(auditEventToProto(stored("revocation.created", { target: "agent", id: "spiffe://a" })).agentId).toBe("spiffe://a");
    expect(auditEventToProto(stored("revocation.created", { target: "task", id: "t-9" })).taskId).toBe("t-9");
    expect(auditEventToProto(stored("key.rotated", { target: "token", id: "x" })).tokenId).toBe("");
  });

  it("a refusal: its ErrorReason is the outcome; an explicit outcome wins and keeps the reason", () => {
    expect(auditEventToProto(stored("issue.refused", { reason: "SCOPE_NOT_COVERED", details: {} }))).toMatchObject({ outcome: "SCOPE_NOT_COVERED", reason: "" });
    expect(auditEventToProto(stored("access.refused", { outcome: "denied", reason: "scope missing" }))).toMatchObject({ outcome: "denied", reason: "scope missing" });
    expect(auditEventToProto(stored("approval.denied", { approval_id: "apr_1", approval_result: "denied", reason: "no" }))).toMatchObject({
      approvalId: "apr_1", approvalResult: "denied", reason: "no", outcome: "ok",
    });
  });

  it("operator, broker and resource-server events; odd data yields empty fields, never a throw", () => {
    expect(auditEventToProto(stored("app.created", { scope_ceiling: ["read:*"], audiences: ["api"] }))).toMatchObject({ scopes: ["read:*"], audiences: ["api"] });
    expect(auditEventToProto(stored("resource_server.disabled", { resource_server_id: "rs_1", reason: "gone" }))).toMatchObject({ resourceServerId: "rs_1", reason: "gone" });
    for (const data of [null, 5, "x", [1], { lineage: "no", scopes: [1, "a"], human: 3, ttl_seconds: -1 }]) {
      const e = auditEventToProto(stored("weird.kind", data));
      expect(e).toMatchObject({ lineage: [], humanPrincipal: "", credentialLifetime: undefined, outcome: "ok" });
      expect(e.dataJson).toBe(canonicalJson(data));
    }
    expect(auditEventToProto({ ...stored("x.y", {}), payload: "{not json" })).toMatchObject({ kind: "x.y", appId: "app_1", actor: "", dataJson: "null" });
    expect(auditEventToProto(stored("x.y", { scopes: [1, "a"], lineage: [{ token_id: "t", agent_id: 2 }, null] }))).toMatchObject({
      scopes: ["a"], lineage: [{ tokenId: "t", agentId: "" }, { tokenId: "", agentId: "" }],
    });
  });
});
