// The only place that wires the parts together. `startBroker` is used by
// `baton serve`, by the benchmark and by the end-to-end tests.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Server as HttpServer } from "node:http";
import type { Config } from "./config.js";
import { MasterKey, MasterKeyMismatchError } from "./crypto/master-key.js";
import { randomBase62 } from "./crypto/secrets.js";
import { inlineSigner, SigningThread } from "./crypto/signing-thread.js";
import { AppAdmin, MAX_APP_TTL_SECONDS } from "./service/apps.js";
import { AppView } from "./service/app-view.js";
import { Approvals } from "./service/approvals.js";
import { ApproverAdmin } from "./service/approvers.js";
import { ApprovalWatches } from "./service/approval-watches.js";
import { APPROVALS_CHANNEL } from "./storage/approvals.js";
import { Authentication } from "./service/authentication.js";
import { Delegator } from "./service/delegate.js";
import { Issuer } from "./service/issue.js";
import { Minter } from "./service/minter.js";
import { ResourceServerAdmin } from "./service/resource-servers.js";
import { Renewer } from "./service/renew.js";
import { Revoker } from "./service/revoke.js";
import { TokenChecker } from "./service/token-check.js";
import { Validator } from "./service/validate.js";
import { KeyManager } from "./service/keys.js";
import { hashOperatorToken } from "./service/principals.js";
import { RevocationState } from "./service/revocation-state.js";
import { RevocationStreams } from "./service/revocation-streams.js";
import { revocationMarginMs } from "./domain/revocations.js";
import { RateLimits } from "./service/rate-limits.js";
import { AccessReporter } from "./service/access-reports.js";
import { RetentionPruner } from "./service/retention.js";
import { PRINCIPALS_CHANNEL } from "./storage/apps.js";
import { KEYS_CHANNEL } from "./storage/keys.js";
import { Listener } from "./storage/listener.js";
import { REVOCATIONS_CHANNEL } from "./storage/revocations.js";
import { checkConnection, createPool, type Db, type DatabaseUnavailableError, describeDatabase } from "./storage/db.js";
import { type EmbeddedDatabase, startEmbedded } from "./storage/embedded.js";
import { migrate } from "./storage/migrate.js";
import { deleteExpiredProofs } from "./storage/proofs.js";
import { createHttpServer, listenHttp } from "./http/http-server.js";
import type { Logger } from "./telemetry/logger.js";
import { Metrics } from "./telemetry/metrics.js";
import { startTracing, traceMethods } from "./telemetry/tracing.js";
import { GrpcServer } from "./transport/grpc-server.js";

export interface RunningBroker {
  readonly grpcPort: number;
  readonly httpPort: number | null;
  /** The operator credential in force (from config or the data directory). */
  readonly operatorToken: string;
  readonly db: Db;
  stop(): Promise<void>;
}

const PRUNE_INTERVAL_MS = 30_000;
// Other replicas' revocations arrive by LISTEN/NOTIFY; this poll covers a
// lost notification or a dropped LISTEN connection.
const CATCH_UP_INTERVAL_MS = 1_000;
const KEY_RELOAD_INTERVAL_MS = 30_000;
// /readyz answers "not ready" rather than wait longer than this on the database.
const READY_TIMEOUT_MS = 1_000;
// The statement timeout while migrating: a schema change on a large table is slow.
const MIGRATION_TIMEOUT_MS = 15 * 60_000;
// At most one "database unavailable" log line per interval; the rest are counted.
const DB_WARN_INTERVAL_MS = 5_000;
// The longest a stop waits for the last spans to reach the collector.
const TRACE_FLUSH_MS = 2_000;

/** The broker cannot start; the message says why and what to change. */
export class StartupError extends Error {}

/** Reads a secret file in the data directory, creating it (mode 0600) on first start. */
function secretFile(dir: string, name: string, make: () => string): string {
  const path = join(dir, name);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(path, `${make()}\n`, { mode: 0o600 });
  }
  chmodSync(path, 0o600);
  return readFileSync(path, "utf8").trim();
}

export async function startBroker(config: Config, logger: Logger): Promise<RunningBroker> {
  const dataDir = resolve(config.dataDir);
  let embedded: EmbeddedDatabase | null = null;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    logger.info("starting embedded PostgreSQL", { data_dir: dataDir });
    embedded = await startEmbedded({
      dataDir,
      persistent: true,
      ownSignals: true,
      onLog: (l) => logger.debug("postgres", { line: l.trim() }),
    });
    databaseUrl = embedded.url("postgres");
  }
  const masterKey = MasterKey.fromBase64(config.masterKey ?? secretFile(dataDir, "master.key", MasterKey.generate));
  const operatorToken = config.operatorToken ?? secretFile(dataDir, "operator-token", () => `bop_${randomBase62(40)}`);

  const timeouts = config.databaseTimeouts;
  let lastDbWarn = 0;
  let quietDbWarns = 0;
  const onUnavailable = (err: DatabaseUnavailableError): void => {
    if (Date.now() - lastDbWarn < DB_WARN_INTERVAL_MS) {
      quietDbWarns += 1;
      return;
    }
    logger.warn("database unavailable", { message: err.message, error: err.driverError, similar_since_last: quietDbWarns });
    lastDbWarn = Date.now();
    quietDbWarns = 0;
  };
  const db = createPool(databaseUrl, config.databasePoolSize, timeouts, onUnavailable);
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await c();
  };
  cleanups.push(async () => embedded?.stop());
  cleanups.push(() => db.end());
  try {
    // Stopped last (cleanups run in reverse): the spans of the calls that
    // drain are flushed too.
    const stopTracing = startTracing(config.tracing);
    cleanups.push(() => stopTracing(TRACE_FLUSH_MS));
    if (config.tracing) logger.info("tracing on", { sample_ratio: config.tracing.sampleRatio });
    const where = describeDatabase(databaseUrl);
    logger.info("connecting to the database", { database: where });
    await checkConnection(databaseUrl, timeouts).catch((err: Error) => {
      throw new StartupError(err.message);
    });
    // Migrating (or waiting for another replica to finish) may take longer
    // than any request: its own connection, without the statement timeout.
    const migrator = createPool(databaseUrl, 1, { ...timeouts, acquireMs: timeouts.connectMs, statementMs: MIGRATION_TIMEOUT_MS });
    const applied = await migrate(migrator).finally(() => migrator.end());
    if (applied.length > 0) logger.info("database migrated", { versions: applied });

    const now = (): number => Date.now();
    // Two different clocks to allow for: the broker's own checks only see
    // skew between replicas; offline verifiers may allow more, and every
    // revocation and retired key must outlive what they could still accept.
    const skewMs = config.validateSkewSeconds * 1000;
    const leewayMs = config.verifierLeewaySeconds * 1000;
    const marginMs = revocationMarginMs(leewayMs);
    const metrics = new Metrics();
    const revocations = new RevocationState(db, now);
    await revocations.load();
    const streams = new RevocationStreams(db, revocations, {
      checkpointIntervalMs: config.streamCheckpointSeconds * 1000,
      maxBufferedEvents: config.streamBufferEvents,
      now,
    });
    const keys = new KeyManager(db, masterKey, {
      algorithm: config.signingAlgorithm,
      retiredKeyLifetimeMs: MAX_APP_TTL_SECONDS * 1000 + marginMs,
      now: () => new Date(),
      onChange: (ring) => streams.keySetChanged(ring.jwksJson),
    });
    await keys.start().catch((err: unknown) => {
      if (!(err instanceof MasterKeyMismatchError)) throw err;
      const source = config.masterKey ? "BATON_MASTER_KEY" : `the master key in ${join(dataDir, "master.key")}`;
      throw new StartupError(`${source} does not decrypt the stored signing keys: it is not the master key this database was set up with`);
    });
    const checker = new TokenChecker(keys, revocations, { issuer: config.issuer, skewMs, now, verifiedTokenCache: config.verifiedTokenCache });
    const limits = new RateLimits({ ...config.rateLimits, now });
    // Every app and resource server, in memory: authenticating one never reads the database.
    const appView = new AppView(db);
    await appView.catchUp();
    const auth = new Authentication(db, checker, appView, { operatorTokenHash: hashOperatorToken(operatorToken), leewayMs, now, limits });
    const signer = config.signingThread ? new SigningThread((err) => logger.warn("signing thread failed; signing on the event loop for a second", { error: err })) : inlineSigner;
    cleanups.push(() => signer.close());
    const minter = new Minter(db, keys, {
      signer,
      issuer: config.issuer,
      trustDomain: config.trustDomain,
      defaultTtlSeconds: config.defaultTtlSeconds,
      now,
    });
    const approvals = new Approvals(db, { windowSeconds: config.approvalWindowSeconds, now });
    const issuer = new Issuer(minter, approvals);
    const delegator = new Delegator(minter, (id) => auth.findApp(id), approvals);
    const validator = new Validator(checker);
    const revoker = new Revoker(db, revocations, appView, { revocationMarginMs: marginMs, now });
    const renewer = new Renewer(db, keys, minter, revocations, (id) => auth.findApp(id), { maxTaskSeconds: config.maxTaskSeconds, revocationMarginMs: marginMs });
    const accessReports = new AccessReporter(db, now);
    // The change is committed: a failed read here is retried by the periodic catch-up, the RPC still succeeds.
    const catchUpView = (): Promise<void> => appView.catchUp().catch((err: unknown) => logger.warn("app view catch-up failed", { error: err }));
    const apps = new AppAdmin(db, revocations, now, marginMs, catchUpView);
    const resourceServers = new ResourceServerAdmin(db, now, async (id, disabled) => {
      await catchUpView();
      if (disabled) streams.closeResourceServer(id);
    });
    const approvers = new ApproverAdmin(db, now);
    const approvalWatches = new ApprovalWatches(approvals, now, (err) => logger.warn("approval watch read failed", { error: err }));
    metrics.gauge("baton_live_revocations", "Revocations in force, held in memory for checks.", () => revocations.size);
    metrics.gauge("baton_db_pool_total", "Database connections open in the request pool.", () => db.totalCount);
    metrics.gauge("baton_db_pool_idle", "Database connections open and idle in the request pool.", () => db.idleCount);
    metrics.gauge("baton_db_pool_waiting", "Requests waiting for a database connection.", () => db.waitingCount);
    metrics.gauge("baton_app_view_entries", "Apps and resource servers held in memory for authentication.", () => appView.size);
    metrics.gauge("baton_revocation_streams", "Open StreamRevocations calls.", () => streams.count);
    metrics.gauge("baton_approval_watches", "Open WatchApproval calls.", () => approvalWatches.count);
    metrics.counter("baton_rate_limited_total", "Requests refused because their app was over its rate limit.", () => limits.rateLimited);
    metrics.counter("baton_auth_throttled_total", "Authentications refused because their source failed too often.", () => limits.authThrottled);
    metrics.counter("baton_access_reports_total", "Access decisions reported by resource servers and stored as audit events.", () => accessReports.stored);

    const catchUpRevocations = (): void => {
      revocations.catchUp().catch((err: unknown) => logger.warn("revocation catch-up failed", { error: err }));
    };
    // Periodic and on (re)connection: whatever notification was lost is in the tables.
    const catchUp = (): void => {
      catchUpRevocations();
      void catchUpView();
    };
    const reloadKeys = (): void => {
      keys.reload().catch((err: unknown) => logger.warn("key reload failed", { error: err }));
    };
    const listener = new Listener(databaseUrl, [REVOCATIONS_CHANNEL, KEYS_CHANNEL, PRINCIPALS_CHANNEL, APPROVALS_CHANNEL], {
      onNotify: (channel, payload) => {
        if (channel === KEYS_CHANNEL) reloadKeys();
        else if (channel === APPROVALS_CHANNEL) approvalWatches.changed(payload);
        else if (channel === PRINCIPALS_CHANNEL) void catchUpView();
        else catchUpRevocations();
      },
      // Whatever was notified while nobody listened is in the tables.
      onConnected: () => {
        catchUp();
        approvalWatches.refreshAll();
        reloadKeys();
      },
      onError: (err) => logger.warn("LISTEN connection lost; reconnecting", { error: err }),
    }, timeouts.connectMs);
    await listener.start();
    cleanups.push(() => listener.stop());

    // A span per use case under each call's span (tracing on only).
    traceMethods(auth, "Authentication", ["authenticate", "charge"]);
    traceMethods(issuer, "Issuer", ["issue"]);
    traceMethods(delegator, "Delegator", ["delegate"]);
    traceMethods(validator, "Validator", ["validate"]);
    traceMethods(renewer, "Renewer", ["renew"]);
    traceMethods(revoker, "Revoker", ["revoke", "revokeMany"]);
    traceMethods(apps, "AppAdmin", ["create", "get", "list", "update", "disable", "rotateSecret"]);
    traceMethods(resourceServers, "ResourceServerAdmin", ["create", "list", "disable"]);
    traceMethods(keys, "KeyManager", ["rotate"]);
    traceMethods(streams, "RevocationStreams", ["open"]);
    traceMethods(accessReports, "AccessReporter", ["report"]);
    traceMethods(approvers, "ApproverAdmin", ["create", "list", "disable"]);
    const grpcServer = new GrpcServer({ auth, issuer, delegator, renewer, validator, revoker, accessReports, apps, resourceServers, approvers, approvals, approvalWatches, keys, streams, db, logger, metrics });
    const grpcPort = await grpcServer.listen(config.grpcListen, config.tls);
    cleanups.push(async () => {
      // Streams end first, with SHUTTING_DOWN and their cursor, so their
      // clients resume on another replica.
      streams.closeAll();
      approvalWatches.closeAll();
      await grpcServer.shutdown(5_000);
    });

    let http: HttpServer | null = null;
    let httpPort: number | null = null;
    if (config.httpListen !== "") {
      http = createHttpServer({
        jwksJson: () => keys.ring.jwksJson,
        metrics: () => metrics.render(),
        metricsContentType: metrics.contentType,
        ready: async () => {
          await db.query("SELECT 1");
          return true;
        },
        readyTimeoutMs: READY_TIMEOUT_MS,
      });
      httpPort = await listenHttp(http, config.httpListen);
      const h = http;
      cleanups.push(() => new Promise<void>((r) => h.close(() => r())));
      cleanups.push(() => h.closeAllConnections());
    }

    const timers = [
      setInterval(() => {
        revocations.prune(MAX_APP_TTL_SECONDS * 1000).catch((err: unknown) => logger.warn("revocation prune failed", { error: err }));
        deleteExpiredProofs(db, new Date()).catch((err: unknown) => logger.warn("proof prune failed", { error: err }));
      }, PRUNE_INTERVAL_MS),
      setInterval(catchUp, CATCH_UP_INTERVAL_MS),
      setInterval(reloadKeys, KEY_RELOAD_INTERVAL_MS),
    ];
    for (const t of timers) t.unref();
    cleanups.push(() => timers.forEach(clearInterval));

    const r = config.retention;
    const retention = new RetentionPruner(db, {
      grantRetentionMs: r.grantSeconds * 1000,
      auditRetentionMs: r.auditSeconds * 1000,
      auditExportDir: r.auditExportDir,
      intervalMs: r.intervalSeconds * 1000,
      batchSize: r.batchSize,
      pauseMs: 50,
      now,
    }, logger);
    retention.start();
    cleanups.push(() => retention.stop());

    grpcServer.setServing(true);
    logger.info("broker ready", { grpc_port: grpcPort, http_port: httpPort, embedded: embedded !== null, key_id: keys.ring.active.stored.keyId });
    let stopped = false;
    return {
      grpcPort,
      httpPort,
      operatorToken,
      db,
      async stop() {
        if (stopped) return;
        stopped = true;
        await cleanup();
        logger.info("broker stopped");
      },
    };
  } catch (err) {
    await cleanup().catch(() => {});
    throw err;
  }
}
