// Rate limits and refusal audits over real gRPC and PostgreSQL (issue 7
// item 10): an app over its limit gets RESOURCE_EXHAUSTED with RATE_LIMITED
// and a RetryInfo, and nothing is stored; other apps are unaffected; the
// limit is set per app by CreateApp/UpdateApp; a source that keeps failing
// authentication is throttled, correct secret included, until the wait
// passes; and a burst of refusals is audited in group commits, every row
// present and the chain intact.

import { type Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssueRequest } from "../../server/gen/baton/v1/broker.js";
import { RetryInfo } from "../../server/gen/google/rpc/error_details.js";
import { Status } from "../../server/gen/google/rpc/status.js";
import { verifyAudit } from "../../server/storage/audit.js";
import { basic, bearer, call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestApp, type TestBroker } from "../helpers/broker.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The retry delay, in ms, of the google.rpc.RetryInfo an error carries; null without one. */
function retryDelayMs(err: unknown): number | null {
  const bin = (err as ServiceError).metadata?.get("grpc-status-details-bin")[0];
  if (!(bin instanceof Buffer)) return null;
  const any = Status.decode(bin).details.find((d) => d.typeUrl === "type.googleapis.com/google.rpc.RetryInfo");
  if (!any) return null;
  const d = RetryInfo.decode(any.value).retryDelay!;
  return d.seconds * 1000 + d.nanos / 1e6;
}

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

describe("per-app rate limits", () => {
  let b: TestBroker;
  beforeAll(async () => {
    // A default far above what these tests send: only apps given their own
    // limit are ever throttled here.
    b = await startTestBroker({ BATON_APP_RATE_PER_SECOND: "10000", BATON_APP_BURST: "10000" });
  });
  afterAll(async () => b?.stop());

  const issue = (app: TestApp, over: Partial<IssueRequest> = {}) => call(b.client.issue, b.client, issueRequest(over), app.md);
  const setLimit = (app: TestApp, perSecond: number, burst: number) =>
    call(b.admin.updateApp, b.admin, { appId: app.appId, updateScopeCeiling: false, scopeCeiling: [], updateAudiences: false, audiences: [], maxTtl: undefined, rateLimitPerSecond: perSecond, rateLimitBurst: burst, approvalPolicy: [], maxTaskLifetime: undefined, updateApprovalPolicy: false }, operatorMd());
  const stored = async () => {
    const { rows } = await b.database.db.query<{ grants: string; audit: string }>("SELECT (SELECT count(*) FROM grants) AS grants, (SELECT count(*) FROM audit_events) AS audit");
    return { grants: Number(rows[0]!.grants), audit: Number(rows[0]!.audit) };
  };
  /** Issues one at a time until refused (at most `max`); returns how many succeeded and the refusal. */
  const drain = async (app: TestApp, max = 50): Promise<{ ok: number; err: unknown }> => {
    for (let ok = 0; ok < max; ok++) {
      try {
        await issue(app, { taskId: `drain-${ok}` });
      } catch (err) {
        return { ok, err };
      }
    }
    throw new Error(`not refused after ${max} requests`);
  };

  it("refuses an app over its limit with RESOURCE_EXHAUSTED, RATE_LIMITED and RetryInfo, stores nothing, and serves it again after the wait", async () => {
    const res = await call(
      b.admin.createApp,
      b.admin,
      { name: "limited", scopeCeiling: ["read:records:*"], audiences: ["ehr-api"], maxTtl: undefined, maxDelegationDepth: 0, rateLimitPerSecond: 1, rateLimitBurst: 3, approvalPolicy: [], maxTaskLifetime: undefined },
      operatorMd(),
    );
    expect(res.app!.rateLimitPerSecond).toBe(1);
    expect(res.app!.rateLimitBurst).toBe(3);
    const app: TestApp = { appId: res.app!.appId, secret: res.clientSecret, md: basic(res.app!.appId, res.clientSecret) };
    const other = await createApp(b);

    const t0 = Date.now();
    const { ok, err } = await drain(app);
    // The burst of 3, plus at most one more per second the draining took.
    expect(ok).toBeGreaterThanOrEqual(3);
    expect(ok).toBeLessThanOrEqual(3 + Math.ceil((Date.now() - t0) / 1000));
    const e = await refusal(Promise.reject(err));
    expect(e.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(e.reason).toBe("RATE_LIMITED");
    expect(e.metadata).toEqual({ app_id: app.appId, limit: "1", burst: "3" });
    const delay = retryDelayMs(err);
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(1000);

    // The refused request stored nothing: no grant, no audit event.
    const before = await stored();
    const again = await failure(issue(app, { taskId: "refused" }));
    expect((again as ServiceError).code).toBe(status.RESOURCE_EXHAUSTED);
    expect(await stored()).toEqual(before);

    // Another app is not affected.
    expect((await issue(other)).accessToken).not.toBe("");

    // After the wait it advertises, the app is served.
    await sleep(retryDelayMs(again)! + 5);
    expect((await issue(app, { taskId: "after-wait" })).accessToken).not.toBe("");

    const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text();
    expect(Number(/^baton_rate_limited_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  });

  it("charges Delegate and Revoke by the app's agents to the app, but not Validate", async () => {
    const app = await createApp(b);
    const token = (await issue(app)).accessToken;
    await setLimit(app, 1, 1);
    await drain(app);
    const delegated = await refusal(
      call(b.client.delegate, b.client, { scopes: ["read:records:P-1"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, bearer(token)),
    );
    expect([delegated.code, delegated.reason]).toEqual([status.RESOURCE_EXHAUSTED, "RATE_LIMITED"]);
    const revoked = await refusal(call(b.client.revoke, b.client, { target: 1, id: "", appId: "", reason: "" }, bearer(token)));
    expect([revoked.code, revoked.reason]).toEqual([status.RESOURCE_EXHAUSTED, "RATE_LIMITED"]);
    // Validate does no database work and serves resource servers: not limited.
    for (let i = 0; i < 5; i++) {
      const v = await call(b.client.validate, b.client, { token, audience: "ehr-api", requiredScopes: [] }, app.md);
      expect(v.valid).toBe(true);
    }
  });

  it("applies a limit set by UpdateApp at once, and 0 returns the app to the default", async () => {
    const app = await createApp(b);
    for (let i = 0; i < 10; i++) await issue(app, { taskId: `free-${i}` });
    const updated = await setLimit(app, 1, 2);
    expect([updated.app!.rateLimitPerSecond, updated.app!.rateLimitBurst]).toEqual([1, 2]);
    const got = await call(b.admin.getApp, b.admin, { appId: app.appId }, operatorMd());
    expect([got.app!.rateLimitPerSecond, got.app!.rateLimitBurst]).toEqual([1, 2]);
    const t0 = Date.now();
    const { ok, err } = await drain(app);
    expect(ok).toBeLessThanOrEqual(2 + Math.ceil((Date.now() - t0) / 1000));
    expect((await refusal(Promise.reject(err))).reason).toBe("RATE_LIMITED");

    await setLimit(app, 0, 0);
    for (let i = 0; i < 10; i++) await issue(app, { taskId: `back-${i}` });
  });

  it("refuses a limit out of range", async () => {
    const app = await createApp(b);
    const e = await refusal(setLimit(app, 2_000_000, 0));
    expect([e.code, e.reason, e.metadata.field]).toEqual([status.INVALID_ARGUMENT, "INVALID_REQUEST", "rate_limit_per_second"]);
  });

  it("audits a burst of refusals in group commits: every event present, the chain intact", async () => {
    const noisy = await createApp(b, { ceiling: ["read:records:*"] });
    const busy = await createApp(b, { ceiling: ["read:records:*"] });
    const agent = (await issue(noisy)).accessToken;
    const withId = (md: Metadata, id: string): Metadata => {
      const m = md.clone();
      m.set("x-request-id", id);
      return m;
    };
    const N = 200;
    const refusals = Array.from({ length: N }, (_, i) =>
      i % 4 === 3
        ? refusal(call(b.client.delegate, b.client, { scopes: ["write:billing:*"], audiences: [], ttl: undefined, allowTtlClamp: false, agentPublicKeyJwk: "", approvalId: "" }, withId(bearer(agent), `burst-${i}`)))
        : refusal(call(b.client.issue, b.client, issueRequest({ scopes: ["write:billing:*"] }), withId(noisy.md, `burst-${i}`))),
    );
    // Issuance by another app at the same time: grant batches and refusal
    // batches take the chain's head lock in turn.
    const issued = Array.from({ length: 50 }, (_, i) => issue(busy, { taskId: `busy-${i}` }));
    const errs = await Promise.all(refusals);
    await Promise.all(issued);
    expect(new Set(errs.map((e) => e.reason))).toEqual(new Set(["SCOPE_NOT_COVERED"]));

    const { rows } = await b.database.db.query<{ kind: string; n: string; txns: string }>(
      `SELECT kind, count(*) AS n, count(DISTINCT xmin::text) AS txns FROM audit_events WHERE request_id LIKE 'burst-%' GROUP BY kind ORDER BY kind`,
    );
    expect(rows.map((r) => [r.kind, Number(r.n)])).toEqual([
      ["delegation.refused", N / 4],
      ["issue.refused", (3 * N) / 4],
    ]);
    // Group commit: fewer transactions than events (one each before).
    const all = await b.database.db.query<{ txns: string }>(`SELECT count(DISTINCT xmin::text) AS txns FROM audit_events WHERE request_id LIKE 'burst-%'`);
    const txns = Number(all.rows[0]!.txns);
    console.log(`${N} refusal events in ${txns} transactions`);
    expect(txns).toBeLessThan(N);
    const v = await verifyAudit(b.database.db);
    expect(v.intact).toBe(true);
  });
});

describe("failed authentication throttled per source", () => {
  let b: TestBroker;
  beforeAll(async () => {
    // 5 failures at once, then one more every 2 s.
    b = await startTestBroker({ BATON_AUTH_FAILURES: "5", BATON_AUTH_FAILURE_WINDOW_SECONDS: "10" });
  });
  afterAll(async () => b?.stop());

  const issueAs = (md: Metadata) => call(b.client.issue, b.client, issueRequest(), md);

  it("does not count successful authentications", async () => {
    const app = await createApp(b);
    for (let i = 0; i < 12; i++) await issueAs(app.md);
  });

  it("throttles a source after repeated bad secrets, the right secret too, until the wait passes", async () => {
    const app = await createApp(b);
    const wrong = basic(app.appId, "bsec_wrong");
    let failures = 0;
    let throttled: unknown = null;
    for (; failures < 30; failures++) {
      const err = await failure(issueAs(wrong));
      if ((await refusal(Promise.reject(err))).reason !== "CREDENTIALS_INVALID") {
        throttled = err;
        break;
      }
    }
    // 5 allowed at once, plus one per 2 s the loop took.
    expect(failures).toBeGreaterThanOrEqual(5);
    expect(failures).toBeLessThan(30);
    const t = await refusal(Promise.reject(throttled));
    expect([t.code, t.reason]).toEqual([status.RESOURCE_EXHAUSTED, "AUTHENTICATION_THROTTLED"]);
    expect(retryDelayMs(throttled)).toBeGreaterThan(0);
    expect(retryDelayMs(throttled)).toBeLessThanOrEqual(2000);

    // The right secret is refused too, and so is an id that does not exist:
    // nothing is looked up or hashed.
    const right = await failure(issueAs(app.md));
    expect((await refusal(Promise.reject(right))).reason).toBe("AUTHENTICATION_THROTTLED");
    expect((await refusal(issueAs(basic("app_0000000000000000000000", "x")))).reason).toBe("AUTHENTICATION_THROTTLED");
    // The operator credential and agent tokens come from the same source.
    expect((await refusal(call(b.admin.listApps, b.admin, { pageSize: 0, pageToken: "" }, operatorMd()))).reason).toBe("AUTHENTICATION_THROTTLED");

    await sleep(retryDelayMs(right)! + 5);
    expect((await issueAs(app.md)).accessToken).not.toBe("");

    const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text();
    expect(Number(/^baton_auth_throttled_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(4);
  });
});
