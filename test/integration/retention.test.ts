// Retention on real PostgreSQL: expired grants are deleted in bounded
// batches, leaves first, never a grant a live token still depends on;
// revocation still cascades afterwards; old audit events are exported, then
// pruned behind an anchor that keeps the remaining chain verifiable.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { AuditChainBrokenError, RetentionPruner, type RetentionSettings } from "../../server/service/retention.js";
import { appendAudit, auditAnchor, verifyAudit, verifyAuditExport } from "../../server/storage/audit.js";
import { type Db, withTransaction } from "../../server/storage/db.js";
import { deleteExpiredGrants, releaseRetentionLock, tryRetentionLock } from "../../server/storage/retention.js";
import { silentLogger } from "../../server/telemetry/logger.js";
import { agentMd } from "../helpers/agent-key.js";
import { call, createApp, issueRequest, operatorMd, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";

const APP = "app_RRRRRRRRRRRRRRRRRRRRRR";
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Runs the `baton` command line; resolves with its output and exit code. */
function baton(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["bin/baton.mjs", ...args], { env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

function pruner(db: Db, over: Partial<RetentionSettings> = {}): RetentionPruner {
  return new RetentionPruner(db, {
    grantRetentionMs: HOUR,
    auditRetentionMs: 0,
    auditExportDir: null,
    intervalMs: 60_000,
    batchSize: 1000,
    pauseMs: 0,
    now: () => Date.now(),
    ...over,
  }, silentLogger);
}

async function addApp(db: Db, appId = APP): Promise<void> {
  await db.query(
    "INSERT INTO apps VALUES ($1, $1, '\\x00', '{a:b:c}', '{x}', 60, 5, false, now(), now()) ON CONFLICT DO NOTHING",
    [appId],
  );
}

/** A grant expiring `expiresInMs` from now (negative: in the past), under `parent` when given. */
async function grant(db: Db, id: string, expiresInMs: number, parent?: string, opts: { appId?: string; agentId?: string } = {}): Promise<void> {
  let root = id;
  let depth = 0;
  if (parent) {
    const p = await db.query<{ root_token_id: string; depth: number }>("SELECT root_token_id, depth FROM grants WHERE token_id = $1", [parent]);
    root = p.rows[0]!.root_token_id;
    depth = p.rows[0]!.depth + 1;
  }
  const expire = new Date(Date.now() + expiresInMs);
  await db.query(
    `INSERT INTO grants (token_id, app_id, agent_id, task_id, parent_token_id, root_token_id, depth, scopes, audiences, key_id, issue_time, expire_time)
     VALUES ($1, $2, $3, 'task', $4, $5, $6, '{a:b:c}', '{x}', 'k1', $7, $8)`,
    [id, opts.appId ?? APP, opts.agentId ?? `agent-${id}`, parent ?? null, root, depth, new Date(expire.getTime() - 60_000), expire],
  );
}

async function grantIds(db: Db): Promise<string[]> {
  const { rows } = await db.query<{ token_id: string }>("SELECT token_id FROM grants ORDER BY token_id");
  return rows.map((r) => r.token_id);
}

describe("approval retention", () => {
  let d: TestDatabase;
  beforeAll(async () => {
    d = await freshDatabase();
    await addApp(d.db);
    await d.db.query("INSERT INTO approvers VALUES ('apv_RETENTIONAAAAAAAAAAAAAA', 'reviewer', '\\x00', '{clinical}', false, now(), now())");
  });
  afterAll(async () => d?.drop());

  /** An approval whose window closes `closesInMs` from now (negative: in the past), decided when `approved` is given. */
  async function approval(id: string, closesInMs: number, state: string, approved?: boolean): Promise<void> {
    const close = new Date(Date.now() + closesInMs);
    await d.db.query(
      `INSERT INTO approvals (approval_id, state, request_kind, app_id, requester, task_id, scopes, scopes_needing_approval, audiences,
         approvals_required, approver_group, create_time, expire_time)
       VALUES ($1, $2, 'issue', $3, 'app', 'task', '{a:b:c}', '{a:b:c}', '{x}', 1, 'clinical', $4, $5)`,
      [id, state, APP, new Date(close.getTime() - 900_000), close],
    );
    if (approved !== undefined) {
      await d.db.query(
        "INSERT INTO approval_decisions (approval_id, approver_id, approver_name, approved, reason, decide_time) VALUES ($1, 'apv_RETENTIONAAAAAAAAAAAAAA', 'reviewer', $2, '', now())",
        [id, approved],
      );
    }
  }

  it("deletes approvals whose window closed longer ago than the grant retention, with their decisions; keeps the rest", async () => {
    await approval("apr_old_used", -2 * HOUR, "USED", true);
    await approval("apr_old_denied", -3 * HOUR, "DENIED", false);
    await approval("apr_old_pending", -2 * HOUR, "PENDING"); // never marked EXPIRED: its window closed all the same
    await approval("apr_recent", -10_000, "EXPIRED"); // inside the retention: stays
    await approval("apr_open", 600_000, "APPROVED", true); // still usable: stays

    const run = await pruner(d.db, { batchSize: 2 }).runOnce();

    expect(run!.approvals).toEqual({ deleted: 3, batches: 2 });
    const { rows } = await d.db.query<{ approval_id: string }>("SELECT approval_id FROM approvals ORDER BY approval_id");
    expect(rows.map((r) => r.approval_id)).toEqual(["apr_open", "apr_recent"]);
    const decisions = await d.db.query<{ approval_id: string }>("SELECT approval_id FROM approval_decisions ORDER BY approval_id");
    expect(decisions.rows.map((r) => r.approval_id)).toEqual(["apr_open"]);
    // Grants are left alone by the approval batches, and the other way round.
    expect(run!.grants.deleted).toBe(0);
  });
});

describe("grant retention", () => {
  let d: TestDatabase;
  beforeAll(async () => {
    d = await freshDatabase();
    await addApp(d.db);
  });
  afterAll(async () => d?.drop());

  it("deletes grants expired beyond the margin; keeps live ones, recent ones and the expired ancestors of a live grant", async () => {
    await d.db.query("DELETE FROM grants");
    await grant(d.db, "old", -2 * HOUR); // expired beyond the margin: goes
    await grant(d.db, "live", HOUR); // live: stays
    await grant(d.db, "recent", -10_000); // expired inside the margin: stays
    // An expired root with a live child: the child's chain needs its root.
    await grant(d.db, "p-root", -2 * HOUR);
    await grant(d.db, "p-mid", -2 * HOUR, "p-root");
    await grant(d.db, "p-live", HOUR, "p-mid");
    // A whole expired chain: goes, leaves first, in one pass.
    await grant(d.db, "x-root", -3 * HOUR);
    await grant(d.db, "x-a", -3 * HOUR, "x-root");
    await grant(d.db, "x-b", -3 * HOUR, "x-a");
    await grant(d.db, "x-c", -3 * HOUR, "x-root");

    const run = await pruner(d.db).runOnce();

    expect(run!.grants.deleted).toBe(5);
    expect(await grantIds(d.db)).toEqual(["live", "p-live", "p-mid", "p-root", "recent"]);
  });

  it("works in bounded batches: 35 expired grants at a batch size of 10 take 4 batches", async () => {
    await d.db.query("DELETE FROM grants");
    for (let i = 0; i < 35; i++) await grant(d.db, `b-${String(i).padStart(2, "0")}`, -2 * HOUR);
    await grant(d.db, "keep", HOUR);

    const run = await pruner(d.db, { batchSize: 10 }).runOnce();

    expect(run!.grants).toEqual({ deleted: 35, batches: 4 });
    expect(await grantIds(d.db)).toEqual(["keep"]);
    // And one statement never deletes more than its limit.
    for (let i = 0; i < 5; i++) await grant(d.db, `c-${i}`, -2 * HOUR);
    expect(await deleteExpiredGrants(d.db, new Date(Date.now() - HOUR), 3)).toBe(3);
    expect(await deleteExpiredGrants(d.db, new Date(Date.now() - HOUR), 3)).toBe(2);
  });

  it("with several replicas only the holder of the retention lock prunes", async () => {
    await d.db.query("DELETE FROM grants");
    await grant(d.db, "old", -2 * HOUR);
    const other = await d.db.connect();
    try {
      expect(await tryRetentionLock(other)).toBe(true); // another replica is pruning
      expect(await pruner(d.db).runOnce()).toBeNull();
      expect(await grantIds(d.db)).toEqual(["old"]);
      await releaseRetentionLock(other);
    } finally {
      other.release();
    }
    expect((await pruner(d.db).runOnce())!.grants.deleted).toBe(1);
    expect(await grantIds(d.db)).toEqual([]);
  });
});

describe("revocation after pruning", () => {
  let b: TestBroker;
  let app: TestApp;
  beforeAll(async () => {
    b = await startTestBroker();
    app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"], maxDelegationDepth: 3 });
  });
  afterAll(async () => b?.stop());

  const issue = () => call(b.client.issue, b.client, issueRequest({ taskId: "task-ret", scopes: ["read:records:P-1"] }), app.md);
  const delegate = (token: string) =>
    call(b.client.delegate, b.client, { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, agentMd(token));
  const statusOf = async (token: string) =>
    (await call(b.client.validate, b.client, { token, audience: "ehr-api", requiredScopes: [] }, app.md)).status;
  const revoke = (target: RevocationTarget, id: string) =>
    call(b.client.revoke, b.client, { target, id, appId: "", reason: "test" }, operatorMd());

  it("chain and agent revocation still find every live token once expired grants are gone", async () => {
    const root = await issue();
    const child = await delegate(root.accessToken);
    const grandchild = await delegate(child.accessToken);
    const other = await issue();
    const otherChild = await delegate(other.accessToken);
    // Long-expired grants, one of them of the same agent as a live token.
    const db = b.database.db;
    await grant(db, "gone-1", -2 * HOUR, undefined, { appId: app.appId });
    await grant(db, "gone-2", -2 * HOUR, "gone-1", { appId: app.appId, agentId: otherChild.claims!.agentId });

    const run = await pruner(db).runOnce();
    expect(run!.grants.deleted).toBe(2);
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM grants WHERE app_id = $1", [app.appId]);
    expect(rows[0]!.n).toBe(5);

    // The chain is revoked through its deepest token: the broker looks up its root.
    await revoke(RevocationTarget.REVOCATION_TARGET_CHAIN, grandchild.claims!.tokenId);
    for (const t of [root, child, grandchild]) expect(await statusOf(t.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    await revoke(RevocationTarget.REVOCATION_TARGET_AGENT, otherChild.claims!.agentId);
    expect(await statusOf(otherChild.accessToken)).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    expect(await statusOf(other.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("the broker prunes on its interval", async () => {
    const w = await startTestBroker({ BATON_RETENTION_INTERVAL_SECONDS: "1", BATON_GRANT_RETENTION_SECONDS: "60" });
    try {
      const a = await createApp(w);
      await grant(w.database.db, "expired", -2 * 60_000, undefined, { appId: a.appId });
      await grant(w.database.db, "fresh", -10_000, undefined, { appId: a.appId });
      const deadline = Date.now() + 20_000;
      while ((await grantIds(w.database.db)).includes("expired") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(await grantIds(w.database.db)).toEqual(["fresh"]);
    } finally {
      await w.stop();
    }
  });
});

describe("audit retention", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "baton-audit-export-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Appends `n` events dated `ageMs` ago, in transactions of 7. */
  async function events(db: Db, n: number, ageMs: number, tag: string): Promise<void> {
    for (let i = 0; i < n; i += 7) {
      await withTransaction(db, (tx) =>
        appendAudit(tx, Array.from({ length: Math.min(7, n - i) }, (_, j) => ({
          kind: "token.issued",
          time: new Date(Date.now() - ageMs),
          appId: APP,
          requestId: `${tag}-${i + j}`,
          actor: `app:${APP}`,
          data: { token_id: `${tag}-${i + j}` },
        }))));
    }
  }

  type Row = { seq: string; event_time: Date; payload: string; prev_hash: Buffer; hash: Buffer };
  const rows = async (db: Db): Promise<Row[]> =>
    (await db.query<Row>("SELECT seq, event_time, payload, prev_hash, hash FROM audit_events ORDER BY seq")).rows;

  it("exports the old events, prunes exactly them and leaves a chain that verifies from the anchor", async () => {
    const d = await freshDatabase();
    try {
      await events(d.db, 30, 2 * DAY, "old");
      await events(d.db, 5, 0, "new");
      const before = await rows(d.db);
      const exportDir = join(dir, "a");

      const run = await pruner(d.db, { auditRetentionMs: DAY, auditExportDir: exportDir, batchSize: 10 }).runOnce();

      expect(run!.audit).toMatchObject({ deleted: 30, batches: 3 });
      expect(readdirSync(exportDir)).toEqual(["audit-00000000000000000001.jsonl"]);
      const lines = readFileSync(join(exportDir, "audit-00000000000000000001.jsonl"), "utf8").trim().split("\n");
      // The file holds exactly the pruned events, byte for byte as stored, and they chain-verify.
      expect(lines.map((l) => JSON.parse(l) as { seq: string; payload: string; hash: string })
        .map((e) => [e.seq, e.payload, e.hash])).toEqual(before.slice(0, 30).map((r) => [r.seq, r.payload, r.hash.toString("hex")]));
      const exported = await verifyAuditExport(lines);
      expect(exported).toMatchObject({ intact: true, eventCount: 30, last: { seq: 30n } });
      expect(exported.last!.hash.equals(before[29]!.hash)).toBe(true);

      const anchor = await auditAnchor(d.db);
      expect(anchor.seq).toBe(30n);
      expect(anchor.hash.equals(before[29]!.hash)).toBe(true);
      const after = await rows(d.db);
      expect(after.slice(0, 5)).toEqual(before.slice(30)); // the recent events are untouched
      // Each batch recorded itself in the chain.
      const pruned = after.slice(5).map((r) => (JSON.parse(r.payload) as { kind: string; data: { through_seq: string; events: number } }));
      expect(pruned.map((p) => [p.kind, p.data.through_seq, p.data.events])).toEqual([
        ["audit.pruned", "10", 10], ["audit.pruned", "20", 10], ["audit.pruned", "30", 10],
      ]);
      expect(await verifyAudit(d.db)).toEqual({ intact: true, eventCount: 8, firstBrokenSeq: 0n });

      // Tampering with a remaining event, or deleting the first one, is still found.
      await d.db.query("UPDATE audit_events SET payload = replace(payload, 'new-0', 'new-9') WHERE seq = 31");
      expect(await verifyAudit(d.db)).toMatchObject({ intact: false, firstBrokenSeq: 31n });
      await d.db.query("UPDATE audit_events SET payload = $1 WHERE seq = 31", [before[30]!.payload]);
      expect((await verifyAudit(d.db)).intact).toBe(true);
      await d.db.query("DELETE FROM audit_events WHERE seq = 31");
      expect(await verifyAudit(d.db)).toMatchObject({ intact: false, firstBrokenSeq: 31n });
      await d.db.query(
        "INSERT INTO audit_events (seq, event_time, kind, app_id, request_id, payload, prev_hash, hash) VALUES (31, $1, 'token.issued', $2, 'new-0', $3, $4, $5)",
        [before[30]!.event_time, APP, before[30]!.payload, before[30]!.prev_hash, before[30]!.hash],
      );
      // A tampered export line is found too.
      for (const edit of [(l: string) => l.replace("old-4", "old-X"), (l: string) => l.replaceAll("old-4", "old-X")]) {
        const edited = [...lines];
        edited[4] = edit(edited[4]!);
        expect(await verifyAuditExport(edited)).toMatchObject({ intact: false, firstBrokenSeq: 5n });
      }

      // Nothing more is old enough; and `baton audit verify` (the admin RPC) agrees.
      expect((await pruner(d.db, { auditRetentionMs: DAY, auditExportDir: exportDir }).runOnce())!.audit.deleted).toBe(0);
      // `baton audit export` writes the remaining chain in the same format;
      // `baton audit verify FILE...` checks the pruned and the remaining
      // events form one chain from the first event.
      const remaining = join(dir, "remaining.jsonl");
      const exportCli = await baton(["audit", "export", "--out", remaining], { DATABASE_URL: d.url });
      expect(JSON.parse(exportCli.stderr)).toMatchObject({ events: 8 });
      expect(readFileSync(remaining, "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { seq: string }).seq))
        .toEqual((await rows(d.db)).map((r) => r.seq));
      const prunedFile = join(exportDir, "audit-00000000000000000001.jsonl");
      const whole = await baton(["audit", "verify", prunedFile, remaining]);
      expect(JSON.parse(whole.stdout)).toMatchObject({ intact: true, event_count: 38 });
      const gap = await baton(["audit", "verify", remaining]); // without the pruned file its start is taken on trust
      expect(JSON.parse(gap.stdout)).toMatchObject({ intact: true, event_count: 8 });
      const tampered = join(dir, "tampered.jsonl");
      writeFileSync(tampered, readFileSync(prunedFile, "utf8").replaceAll("old-0", "old-Z")); // consistently: only the hash tells
      const bad = await baton(["audit", "verify", tampered, remaining]);
      expect(bad.code).toBe(1);
      expect(JSON.parse(bad.stdout)).toMatchObject({ intact: false, first_broken_seq: "1" });

      const b = await startTestBroker({}, d);
      try {
        const v = await call(b.admin.verifyAuditLog, b.admin, {}, operatorMd());
        expect(v.intact).toBe(true);
        expect(v.eventCount).toBeGreaterThan(8); // plus the broker's own start-up events
      } finally {
        await b.stop();
      }
    } finally {
      await d.drop();
    }
  }, 120_000); // four command-line runs, slow on a loaded machine

  it("refuses to prune when the export fails or the chain is already broken; without an export dir it prunes", async () => {
    const d = await freshDatabase();
    try {
      await events(d.db, 12, 2 * DAY, "old");
      const notADir = join(dir, "file");
      writeFileSync(notADir, "x");
      await expect(pruner(d.db, { auditRetentionMs: DAY, auditExportDir: notADir }).runOnce()).rejects.toThrow();
      expect(await rows(d.db)).toHaveLength(12);
      expect((await auditAnchor(d.db)).seq).toBe(0n);

      const original = (await rows(d.db))[2]!;
      await d.db.query("UPDATE audit_events SET payload = replace(payload, 'old-2', 'old-Y') WHERE seq = 3");
      await expect(pruner(d.db, { auditRetentionMs: DAY }).runOnce()).rejects.toBeInstanceOf(AuditChainBrokenError);
      expect(await rows(d.db)).toHaveLength(12);
      await d.db.query("UPDATE audit_events SET payload = $1 WHERE seq = 3", [original.payload]);

      const run = await pruner(d.db, { auditRetentionMs: DAY }).runOnce();
      expect(run!.audit).toEqual({ deleted: 12, batches: 1, exportFile: null });
      expect(await verifyAudit(d.db)).toEqual({ intact: true, eventCount: 1, firstBrokenSeq: 0n });
    } finally {
      await d.drop();
    }
  });

  it("keeps every event when no audit retention is set", async () => {
    const d = await freshDatabase();
    try {
      await events(d.db, 3, 400 * DAY, "ancient");
      expect((await pruner(d.db).runOnce())!.audit.deleted).toBe(0);
      expect(await rows(d.db)).toHaveLength(3);
    } finally {
      await d.drop();
    }
  });
});
