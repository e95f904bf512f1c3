// Apps and resource servers are authenticated from an in-memory view: Validate
// with app credentials answers while the database refuses every connection,
// and a change made through one replica (or written to the table behind the
// brokers' backs, with no notification) reaches the other's view quickly.

import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { basic, call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";
import { freshDatabase, pgUrl, type TestDatabase } from "../helpers/database.js";

const req = issueRequest({ taskId: "t" });
const validateAt = (broker: TestBroker, app: { md: TestApp["md"] }, token: string) =>
  call(broker.client.validate, broker.client, { token, audience: "ehr-api", requiredScopes: [] }, app.md);

async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < withinMs) {
    if (await check()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not true within ${withinMs} ms`);
}

/** Refused with this reason (any other outcome, a success or UNAVAILABLE, is false). */
const refusedWith = (reason: string, p: Promise<unknown>): Promise<boolean> =>
  refusal(p).then(
    (e) => e.reason === reason,
    () => false,
  );

async function asAdmin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: pgUrl("postgres") });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

describe("the database refuses every connection", () => {
  let database: TestDatabase;
  let broker: TestBroker;
  let blocked = false;
  const unblock = () => asAdmin((c) => c.query(`ALTER DATABASE ${database.name} ALLOW_CONNECTIONS true`));

  beforeAll(async () => {
    database = await freshDatabase();
    broker = await startTestBroker({}, database);
  });
  afterAll(async () => {
    if (blocked) await unblock();
    await broker?.stop();
    await database?.drop();
  });

  it("Validate with app credentials still answers VALID and REVOKED; an unknown app is refused as such", async () => {
    const app = await createApp(broker);
    const live = await call(broker.client.issue, broker.client, req, app.md);
    const revoked = await call(broker.client.issue, broker.client, req, app.md);
    await call(broker.client.revoke, broker.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: revoked.claims!.tokenId, appId: "", reason: "" }, app.md);

    // No connection to this database, existing or new, for anyone.
    blocked = true;
    await asAdmin(async (c) => {
      await c.query(`ALTER DATABASE ${database.name} ALLOW_CONNECTIONS false`);
      await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [database.name]);
    });
    // The database really is out of reach: a call that needs it fails.
    await refusal(call(broker.client.issue, broker.client, req, app.md));
    // Longer than the 2 s app cache there was before the view: nothing of the app is left but the view.
    await new Promise((r) => setTimeout(r, 2_500));

    expect((await validateAt(broker, app, live.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    expect((await validateAt(broker, app, revoked.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_REVOKED);
    const wrongSecret = await refusal(validateAt(broker, { md: basic(app.appId, `${app.secret}x`) }, live.accessToken));
    expect(wrongSecret.reason).toBe("CREDENTIALS_INVALID");
    const unknown = await refusal(validateAt(broker, { md: basic(`app_${"A".repeat(22)}`, app.secret) }, live.accessToken));
    expect(unknown.reason).toBe("CREDENTIALS_INVALID");

    await unblock();
    blocked = false;
  });
});

describe("two replicas on one database", () => {
  const MASTER = MasterKey.generate();
  let database: TestDatabase;
  let a: TestBroker;
  let b: TestBroker;

  beforeAll(async () => {
    database = await freshDatabase();
    a = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
    b = await startTestBroker({ BATON_MASTER_KEY: MASTER }, database);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await database?.drop();
  });

  it("an app created on A authenticates on B once notified", async () => {
    const app = await createApp(a);
    // On A itself at once: the view took the change before CreateApp answered.
    const t = await call(a.client.issue, a.client, req, app.md);
    const ms = await eventually(async () => (await validateAt(b, app, t.accessToken).catch(() => null))?.status === TokenStatus.TOKEN_STATUS_VALID, 5_000);
    console.log(`[app-view] created on A, authenticates on B after ${ms} ms`);
    const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text();
    expect(Number(/^baton_app_view_entries (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
  });

  it("DisableApp on A: B refuses the app's credentials within 1.5 s", async () => {
    const app = await createApp(a);
    const t = await call(a.client.issue, a.client, req, app.md);
    await eventually(async () => (await validateAt(b, app, t.accessToken).catch(() => null))?.status === TokenStatus.TOKEN_STATUS_VALID, 5_000);
    await call(a.admin.disableApp, a.admin, { appId: app.appId, reason: "" }, operatorMd());
    expect(await refusedWith("APP_DISABLED", validateAt(a, app, t.accessToken))).toBe(true);
    const ms = await eventually(() => refusedWith("APP_DISABLED", validateAt(b, app, t.accessToken)), 1_500);
    console.log(`[app-view] disabled on A, refused on B after ${ms} ms`);
  });

  it("RotateAppSecret on A: B refuses the old secret within 1.5 s and takes the new one", async () => {
    const app = await createApp(a);
    const t = await call(a.client.issue, a.client, req, app.md);
    await eventually(async () => (await validateAt(b, app, t.accessToken).catch(() => null))?.status === TokenStatus.TOKEN_STATUS_VALID, 5_000);
    const { clientSecret } = await call(a.admin.rotateAppSecret, a.admin, { appId: app.appId }, operatorMd());
    expect(await refusedWith("CREDENTIALS_INVALID", validateAt(a, app, t.accessToken))).toBe(true);
    const ms = await eventually(() => refusedWith("CREDENTIALS_INVALID", validateAt(b, app, t.accessToken)), 1_500);
    console.log(`[app-view] secret rotated on A, old one refused on B after ${ms} ms`);
    expect((await validateAt(b, { md: basic(app.appId, clientSecret) }, t.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
  });

  it("a resource server created on A authenticates on B; disabled on A, B refuses it", async () => {
    const app = await createApp(a);
    const t = await call(a.client.issue, a.client, req, app.md);
    const res = await call(a.admin.createResourceServer, a.admin, { name: `rs-${Math.random().toString(36).slice(2, 10)}`, audiences: ["ehr-api"] }, operatorMd());
    const rs = { md: basic(res.resourceServer!.resourceServerId, res.clientSecret) };
    expect((await validateAt(a, rs, t.accessToken)).status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    await eventually(async () => (await validateAt(b, rs, t.accessToken).catch(() => null))?.status === TokenStatus.TOKEN_STATUS_VALID, 5_000);
    await call(a.admin.disableResourceServer, a.admin, { resourceServerId: res.resourceServer!.resourceServerId, reason: "" }, operatorMd());
    expect(await refusedWith("RESOURCE_SERVER_DISABLED", validateAt(a, rs, t.accessToken))).toBe(true);
    await eventually(() => refusedWith("RESOURCE_SERVER_DISABLED", validateAt(b, rs, t.accessToken)), 1_500);
  });

  it("a change written to the table without a notification is caught up on both replicas", async () => {
    const app = await createApp(a);
    const t = await call(a.client.issue, a.client, req, app.md);
    await eventually(async () => (await validateAt(b, app, t.accessToken).catch(() => null))?.status === TokenStatus.TOKEN_STATUS_VALID, 5_000);
    // Behind the brokers' backs: no pg_notify, only the change counter the trigger bumps.
    await database.db.query("UPDATE apps SET disabled = true WHERE app_id = $1", [app.appId]);
    // The periodic catch-up runs every second; allow for a loaded machine.
    for (const broker of [a, b]) {
      const ms = await eventually(() => refusedWith("APP_DISABLED", validateAt(broker, app, t.accessToken)), 5_000);
      console.log(`[app-view] direct write without NOTIFY, refused after ${ms} ms`);
    }
  });

  it("changes made while the LISTEN connections are killed reach the other replica once it has reconnected", async () => {
    const app = await createApp(a);
    const t = await call(a.client.issue, a.client, req, app.md);
    await eventually(async () => (await validateAt(b, app, t.accessToken).catch(() => null))?.status === TokenStatus.TOKEN_STATUS_VALID, 5_000);
    await database.db.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'baton-listen' AND datname = current_database()");
    // Notified while nobody listens: lost.
    await call(a.admin.disableApp, a.admin, { appId: app.appId, reason: "" }, operatorMd());
    const fresh = await createApp(a);
    const u = await call(a.client.issue, a.client, req, fresh.md);
    await eventually(() => refusedWith("APP_DISABLED", validateAt(b, app, t.accessToken)), 5_000);
    await eventually(async () => (await validateAt(b, fresh, u.accessToken).catch(() => null))?.status === TokenStatus.TOKEN_STATUS_VALID, 5_000);
  });
});
