// The store on real PostgreSQL: migrations, key rotation, the audit chain,
// pruning, and revocation cursors under concurrent writers.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationSet } from "../../server/domain/revocations.js";
import { type IssueRequest, RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { RevocationState } from "../../server/service/revocation-state.js";
import { verifyAudit } from "../../server/storage/audit.js";
import { withTransaction } from "../../server/storage/db.js";
import { DatabaseTooNewError, loadMigrations, migrate } from "../../server/storage/migrate.js";
import { insertRevocation, liveRevocations } from "../../server/storage/revocations.js";
import { call, createApp, issueRequest, operatorMd, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { freshDatabase, type TestDatabase } from "../helpers/database.js";

let b: TestBroker;
let app: TestApp;

beforeAll(async () => {
  b = await startTestBroker();
  app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
});
afterAll(async () => b?.stop());

const req = issueRequest({ taskId: "task-s", humanPrincipal: "user:bob", scopes: ["read:records:P-9"] });
const issue = (over: Partial<IssueRequest> = {}) => call(b.client.issue, b.client, { ...req, ...over }, app.md);
const statusOf = async (token: string) =>
  (await call(b.client.validate, b.client, { token, audience: "ehr-api", requiredScopes: [] }, app.md)).status;

describe("migrations", () => {
  let d: TestDatabase;
  beforeAll(async () => {
    d = await freshDatabase();
  });
  afterAll(async () => d?.drop());

  it("are applied once; a second run applies nothing", async () => {
    expect(await migrate(d.db)).toEqual([]); // the template is already migrated
    const { rows } = await d.db.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
    expect(rows.map((r) => r.version)).toEqual(loadMigrations().map((m) => m.version));
  });

  it("refuse a database migrated by newer code", async () => {
    await d.db.query("INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')");
    await expect(migrate(d.db)).rejects.toBeInstanceOf(DatabaseTooNewError);
  });
});

describe("signing keys", () => {
  it("rotation: the next key was published before it signs, old tokens keep validating", async () => {
    const before = await issue();
    const keysBefore = await call(b.admin.listSigningKeys, b.admin, {}, operatorMd());
    const next = keysBefore.keys.find((k) => k.state === 1)!; // NEXT
    expect(JSON.parse((await call(b.client.getKeySet, b.client, {})).jwksJson).keys.map((k: { kid: string }) => k.kid)).toContain(next.keyId);

    const rotated = await call(b.admin.rotateSigningKey, b.admin, {}, operatorMd());
    expect(rotated.active!.keyId).toBe(next.keyId);
    const after = await issue();
    const kid = (t: string) => (JSON.parse(Buffer.from(t.split(".")[0]!, "base64url").toString()) as { kid: string }).kid;
    expect(kid(after.accessToken)).toBe(next.keyId);
    expect(kid(before.accessToken)).not.toBe(next.keyId);
    expect(await statusOf(before.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect(await statusOf(after.accessToken)).toBe(TokenStatus.TOKEN_STATUS_VALID);
    const jwks = JSON.parse((await call(b.client.getKeySet, b.client, {})).jwksJson) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([kid(before.accessToken), next.keyId, rotated.next!.keyId]));
  });

  it("private keys are stored encrypted, never as a JWK", async () => {
    const { rows } = await b.database.db.query<{ public_jwk: string; private_key_enc: Buffer }>("SELECT public_jwk, private_key_enc FROM signing_keys");
    for (const r of rows) {
      expect(r.public_jwk).not.toMatch(/"d"/);
      expect(r.private_key_enc.toString("latin1")).not.toMatch(/BEGIN|PRIVATE/);
    }
  });
});

describe("audit", () => {
  it("records issuance, refusal and revocation in an intact chain, with no token or secret", async () => {
    const t = await issue();
    await call(b.client.issue, b.client, { ...req, scopes: ["admin:all:*"] }, app.md).catch(() => {});
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: t.claims!.tokenId, appId: "", reason: "done" }, app.md);
    const { rows } = await b.database.db.query<{ kind: string; payload: string }>("SELECT kind, payload FROM audit_events ORDER BY seq");
    const kinds = rows.map((r) => r.kind);
    expect(kinds).toEqual(expect.arrayContaining(["key.created", "app.created", "token.issued", "issue.refused", "revocation.created"]));
    const issued = rows.find((r) => r.kind === "token.issued" && r.payload.includes(t.claims!.tokenId))!;
    expect(JSON.parse(issued.payload)).toMatchObject({ app_id: app.appId, data: { human: "user:bob", task_id: "task-s", agent_id: t.claims!.agentId } });
    const all = rows.map((r) => r.payload).join("\n");
    expect(all).not.toContain(t.accessToken.split(".")[2]);
    expect(all).not.toContain(app.secret);
    expect(all).not.toContain("bop_test_operator");
    const v = await call(b.admin.verifyAuditLog, b.admin, {}, operatorMd());
    expect(v).toMatchObject({ intact: true, firstBrokenSeq: 0 });
    expect(v.eventCount).toBe(rows.length);
  });

  it("under 200 concurrent issuances and revocations, each grant has exactly one event and the chain stays intact", async () => {
    const before = await b.database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_events WHERE kind = 'token.issued'");
    const issued = await Promise.all(Array.from({ length: 200 }, (_, i) => issue({ taskId: `burst-${i}` })));
    await Promise.all(issued.slice(0, 50).map((t) =>
      call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: t.claims!.tokenId, appId: "", reason: "" }, app.md)));
    const { rows } = await b.database.db.query<{ payload: string }>("SELECT payload FROM audit_events WHERE kind = 'token.issued'");
    expect(rows.length - before.rows[0]!.n).toBe(200);
    const ids = rows.map((r) => (JSON.parse(r.payload) as { data: { token_id: string } }).data.token_id);
    for (const t of issued) expect(ids.filter((id) => id === t.claims!.tokenId)).toHaveLength(1);
    const grants = await b.database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM grants WHERE task_id LIKE 'burst-%'");
    expect(grants.rows[0]!.n).toBe(200);
    expect(await call(b.admin.verifyAuditLog, b.admin, {}, operatorMd())).toMatchObject({ intact: true, firstBrokenSeq: 0 });
  });

  it("verification finds an edited, a deleted and a truncated event", async () => {
    const d = b.database.db;
    const { rows } = await d.query<{ seq: string; payload: string }>("SELECT seq, payload FROM audit_events ORDER BY seq LIMIT 3");
    const target = rows[1]!;
    await d.query("UPDATE audit_events SET payload = replace(payload, 'app', 'apq') WHERE seq = $1", [target.seq]);
    expect(await verifyAudit(d)).toMatchObject({ intact: false, firstBrokenSeq: BigInt(target.seq) });
    await d.query("UPDATE audit_events SET payload = $2 WHERE seq = $1", [target.seq, target.payload]);
    expect((await verifyAudit(d)).intact).toBe(true);
    const last = await d.query<{ seq: string }>("SELECT max(seq) AS seq FROM audit_events");
    await d.query("DELETE FROM audit_events WHERE seq = $1", [last.rows[0]!.seq]);
    expect((await verifyAudit(d)).intact).toBe(false);
  });
});

describe("revocation store", () => {
  let d: TestDatabase;
  beforeAll(async () => {
    d = await freshDatabase();
    await d.db.query(
      "INSERT INTO apps VALUES ('app_AAAAAAAAAAAAAAAAAAAAAA', 'a', '\\x00', '{a:b:c}', '{x}', 60, 5, false, now(), now())",
    );
  });
  afterAll(async () => d?.drop());

  it("concurrent revokers get distinct, gap-free cursors in commit order", async () => {
    const n = 40;
    const committed: bigint[] = [];
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        withTransaction(d.db, async (tx) => {
          const r = await insertRevocation(tx, { target: "token", id: `t${i}`, appId: "app_AAAAAAAAAAAAAAAAAAAAAA", revokedAtMs: Date.now(), expiresAtMs: Date.now() + 60_000, audiences: ["ehr-api"] }, null);
          // Hold the transaction open a random while: commits interleave.
          await new Promise((res) => setTimeout(res, Math.random() * 20));
          return r.cursor;
        }).then((c) => committed.push(c)),
      ),
    );
    // Commit order (the order the promises resolved) is cursor order.
    expect(committed).toEqual([...committed].sort((x, y) => (x < y ? -1 : 1)));
    expect(committed.map(Number)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  });

  it("prunes expired revocations from memory and, past retention, from the table", async () => {
    const now = Date.now();
    await withTransaction(d.db, async (tx) => {
      await insertRevocation(tx, { target: "token", id: "old", appId: "app_AAAAAAAAAAAAAAAAAAAAAA", revokedAtMs: now - 7200_000, expiresAtMs: now - 3600_000, audiences: ["ehr-api"] }, null);
      await insertRevocation(tx, { target: "token", id: "live", appId: "app_AAAAAAAAAAAAAAAAAAAAAA", revokedAtMs: now, expiresAtMs: now + 3600_000, audiences: ["ehr-api"] }, null);
    });
    const state = new RevocationState(d.db, () => now);
    await state.load();
    const live = await liveRevocations(d.db, now);
    expect(live.map((r) => r.id)).toContain("live");
    expect(live.map((r) => r.id)).not.toContain("old");
    const sizeBefore = state.size;
    const r = await state.prune(60_000);
    expect(r.memory).toBe(0); // "old" was never loaded: it had already expired
    expect(r.stored).toBe(1);
    expect(state.size).toBe(sizeBefore);
    const set = new RevocationSet();
    for (const x of live) set.add(x);
    expect(set.prune(now + 3600_001)).toBe(live.length);
    expect(set.size).toBe(0);
  });
});

describe("proof ids", () => {
  it("each is accepted once, also when a batch holds it twice, and is pruned once stale", async () => {
    const { useProofs, deleteExpiredProofs } = await import("../../server/storage/proofs.js");
    const id = (s: string) => Buffer.from(s.padEnd(32, "-"));
    const soon = new Date(Date.now() + 60_000);
    expect(await useProofs(b.broker.db, [{ jtiHash: id("a"), expireTime: soon }, { jtiHash: id("a"), expireTime: soon }, { jtiHash: id("b"), expireTime: soon }])).toEqual([true, false, true]);
    expect(await useProofs(b.broker.db, [{ jtiHash: id("b"), expireTime: soon }, { jtiHash: id("c"), expireTime: new Date(Date.now() - 1000) }])).toEqual([false, true]);
    expect(await deleteExpiredProofs(b.broker.db, new Date())).toBe(1);
    expect(await useProofs(b.broker.db, [{ jtiHash: id("a"), expireTime: soon }])).toEqual([false]);
  });
});
