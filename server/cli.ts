// `baton`: run the broker, or act as its operator through the AdminService.
//
//   baton serve
//   baton app create --name NAME --scope S [--scope S...] --audience A [...] [--max-ttl SECONDS] [--max-depth N]
//   baton app list
//   baton app disable APP_ID
//   baton rs create --name NAME --audience A [--audience A...]
//   baton rs list
//   baton rs disable RS_ID [--reason TEXT]
//   baton key rotate
//   baton audit verify [EXPORT_FILE...]
//   baton audit export [--out FILE] [--after SEQ]
//   baton token issue --task T --scope S... --audience A... [--ttl SECONDS]
//   baton token validate TOKEN --audience A
//   baton token revoke TOKEN_ID
//
// Operator commands talk to BATON_ADDR (default 127.0.0.1:50051) with the
// operator credential from BATON_OPERATOR_TOKEN (or the file BATON_OPERATOR_TOKEN_FILE
// names) or <BATON_DATA_DIR>/operator-token.
// Token commands act as an app: BATON_CLIENT_ID and BATON_CLIENT_SECRET.
// `audit export` reads the database itself: DATABASE_URL, or the embedded
// cluster of a broker running in BATON_DATA_DIR.

import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { createReadStream, createWriteStream, existsSync, openSync, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, envSecret, loadConfig } from "./config.js";
import { AdminServiceClient } from "./gen/baton/v1/admin.js";
import { BrokerServiceClient, RevocationTarget, tokenStatusToJSON } from "./gen/baton/v1/broker.js";
import { type RunningBroker, startBroker } from "./main.js";
import { type ChainPoint, exportAudit, verifyAuditExport } from "./storage/audit.js";
import { createPool } from "./storage/db.js";
import { runningEmbeddedUrl } from "./storage/embedded.js";
import { createLogger } from "./telemetry/logger.js";

const USAGE = `usage:
  baton serve
  baton app create --name NAME --scope SCOPE... --audience AUD... [--max-ttl SECONDS] [--max-depth N]
  baton app list
  baton app disable APP_ID [--reason TEXT]
  baton rs create --name NAME --audience AUD...
  baton rs list
  baton rs disable RS_ID [--reason TEXT]
  baton key rotate
  baton audit verify [EXPORT_FILE...]
  baton audit export [--out FILE] [--after SEQ]
  baton token issue --task TASK --scope SCOPE... --audience AUD... [--ttl SECONDS] [--human ID]
  baton token validate TOKEN --audience AUD
  baton token revoke TOKEN_ID`;

/** The longest a drain may take before the process exits anyway. */
const SHUTDOWN_LIMIT_MS = 20_000;

async function serve(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  for (const warning of config.warnings) logger.warn(warning);

  // The one place that handles signals. The first SIGINT or SIGTERM drains:
  // new calls are refused with SHUTTING_DOWN, streams end with their cursor,
  // running calls finish (up to the gRPC grace period), then the database
  // connections and any embedded PostgreSQL stop, and the process exits 0.
  // A second signal, or a drain that overruns SHUTDOWN_LIMIT_MS (say, on a
  // hung database), exits at once with status 1.
  let broker: RunningBroker | null = null;
  let stopping = false;
  const stop = (): void => {
    const started = Date.now();
    setTimeout(() => {
      logger.error("shutdown did not finish in time; exiting", { limit_ms: SHUTDOWN_LIMIT_MS });
      process.exit(1);
    }, SHUTDOWN_LIMIT_MS);
    broker!.stop().then(
      () => {
        logger.info("shutdown complete", { drain_ms: Date.now() - started });
        process.exit(0);
      },
      (err: unknown) => {
        logger.error("shutdown failed", { error: err });
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn("second signal; exiting without draining", { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info("shutting down", { signal });
    // While starting, the drain begins once the broker is up.
    if (broker) stop();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  broker = await startBroker(config, logger);
  if (!config.operatorToken) {
    logger.info("operator credential is in the data directory", { file: join(config.dataDir, "operator-token") });
  }
  if (stopping) stop();
}


function operatorToken(): string {
  const fromEnv = envSecret(process.env, "BATON_OPERATOR_TOKEN");
  if (fromEnv) return fromEnv;
  const file = join(process.env.BATON_DATA_DIR || ".baton", "operator-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  throw new Error(`no operator credential: set BATON_OPERATOR_TOKEN or run where ${file} exists`);
}

function adminClient(): { client: InstanceType<typeof AdminServiceClient>; md: Metadata } {
  const client = new AdminServiceClient(process.env.BATON_ADDR || "127.0.0.1:50051", credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${operatorToken()}`);
  return { client, md };
}

function appClient(): { client: InstanceType<typeof BrokerServiceClient>; md: Metadata } {
  const id = process.env.BATON_CLIENT_ID;
  const secret = process.env.BATON_CLIENT_SECRET;
  if (!id || !secret) throw new Error("set BATON_CLIENT_ID and BATON_CLIENT_SECRET (from `baton app create`)");
  const client = new BrokerServiceClient(process.env.BATON_ADDR || "127.0.0.1:50051", credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`);
  return { client, md };
}

/** Calls one unary method with a 10 s deadline. */
function call<Req, Res>(
  fn: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  md: Metadata,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, md, { deadline: new Date(Date.now() + 10_000) }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

const print = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
};

/** Writes the stored audit chain (after the anchor, or --after SEQ) as JSON lines: the format of the pruner's export files. */
async function exportAuditLog(args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { out: { type: "string" }, after: { type: "string" } } });
  if (values.after !== undefined && !/^\d{1,19}$/.test(values.after)) throw new Error("--after must be an event sequence number");
  const url = envSecret(process.env, "DATABASE_URL") || runningEmbeddedUrl(process.env.BATON_DATA_DIR || ".baton");
  if (!url) throw new Error("set DATABASE_URL, or run where BATON_DATA_DIR holds a running broker's embedded database");
  // A new file only: an export never overwrites an earlier one. Opened
  // here so that failure says why; a later write error reaches the write
  // callback, which reports it.
  const out = values.out ? createWriteStream("", { fd: openSync(values.out, "wx", 0o600) }).on("error", () => {}) : process.stdout;
  const db = createPool(url, 1);
  try {
    const write = (text: string): Promise<void> => new Promise((resolve, reject) => out.write(text, (err) => (err ? reject(err) : resolve())));
    const r = await exportAudit(db, values.after === undefined ? null : BigInt(values.after), write);
    if (out !== process.stdout) await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
    process.stderr.write(`${JSON.stringify({ events: r.count, last_seq: r.last?.seq.toString() ?? null, last_hash: r.last?.hash.toString("hex") ?? null })}\n`);
  } finally {
    await db.end();
  }
}

/** Verifies export files offline, in the order given, each continuing the chain of the one before. */
async function verifyExportFiles(files: string[]): Promise<void> {
  let at: ChainPoint | undefined;
  let events = 0;
  for (const file of files) {
    const r = await verifyAuditExport(createInterface({ input: createReadStream(file), crlfDelay: Infinity }), at);
    events += r.eventCount;
    if (!r.intact) {
      print({ intact: false, file, event_count: events, first_broken_seq: r.firstBrokenSeq.toString() });
      process.exitCode = 1;
      return;
    }
    at = r.last ?? at;
  }
  print({ intact: true, event_count: events, last_seq: at?.seq.toString() ?? null, last_hash: at?.hash.toString("hex") ?? null });
}

async function main(argv: string[]): Promise<void> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === "serve") return serve();
  if (cmd === "app" && sub === "create") {
    const { values } = parseArgs({
      args: rest,
      options: {
        name: { type: "string" },
        scope: { type: "string", multiple: true },
        audience: { type: "string", multiple: true },
        "max-ttl": { type: "string" },
        "max-depth": { type: "string" },
      },
    });
    const { client, md } = adminClient();
    const res = await call(client.createApp.bind(client), {
      name: values.name ?? "",
      scopeCeiling: values.scope ?? [],
      audiences: values.audience ?? [],
      maxTtl: values["max-ttl"] ? { seconds: Number(values["max-ttl"]), nanos: 0 } : undefined,
      maxDelegationDepth: Number(values["max-depth"] ?? 0),
    }, md);
    print({ app_id: res.app?.appId, client_secret: res.clientSecret, note: "the client secret is shown only now" });
    return;
  }
  if (cmd === "app" && sub === "list") {
    const { client, md } = adminClient();
    let pageToken = "";
    do {
      const res = await call(client.listApps.bind(client), { pageSize: 100, pageToken }, md);
      for (const a of res.apps) print({ app_id: a.appId, name: a.name, disabled: a.disabled, scope_ceiling: a.scopeCeiling, audiences: a.audiences });
      pageToken = res.nextPageToken;
    } while (pageToken);
    return;
  }
  if (cmd === "app" && sub === "disable" && rest[0]) {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { reason: { type: "string" } } });
    const { client, md } = adminClient();
    const res = await call(client.disableApp.bind(client), { appId: positionals[0] ?? "", reason: values.reason ?? "" }, md);
    print({ app_id: res.app?.appId, disabled: res.app?.disabled });
    return;
  }
  if (cmd === "rs" && sub === "create") {
    const { values } = parseArgs({ args: rest, options: { name: { type: "string" }, audience: { type: "string", multiple: true } } });
    const { client, md } = adminClient();
    const res = await call(client.createResourceServer.bind(client), { name: values.name ?? "", audiences: values.audience ?? [] }, md);
    print({
      resource_server_id: res.resourceServer?.resourceServerId,
      client_secret: res.clientSecret,
      audiences: res.resourceServer?.audiences,
      note: "the client secret is shown only now",
    });
    return;
  }
  if (cmd === "rs" && sub === "list") {
    const { client, md } = adminClient();
    let pageToken = "";
    do {
      const res = await call(client.listResourceServers.bind(client), { pageSize: 100, pageToken }, md);
      for (const r of res.resourceServers) print({ resource_server_id: r.resourceServerId, name: r.name, disabled: r.disabled, audiences: r.audiences });
      pageToken = res.nextPageToken;
    } while (pageToken);
    return;
  }
  if (cmd === "rs" && sub === "disable" && rest[0]) {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { reason: { type: "string" } } });
    const { client, md } = adminClient();
    const res = await call(client.disableResourceServer.bind(client), { resourceServerId: positionals[0] ?? "", reason: values.reason ?? "" }, md);
    print({ resource_server_id: res.resourceServer?.resourceServerId, disabled: res.resourceServer?.disabled });
    return;
  }
  if (cmd === "key" && sub === "rotate") {
    const { client, md } = adminClient();
    const res = await call(client.rotateSigningKey.bind(client), {}, md);
    print({ active_key_id: res.active?.keyId, next_key_id: res.next?.keyId });
    return;
  }
  if (cmd === "audit" && sub === "verify" && rest.length > 0) return verifyExportFiles(rest);
  if (cmd === "audit" && sub === "export") return exportAuditLog(rest);
  if (cmd === "audit" && sub === "verify") {
    const { client, md } = adminClient();
    const res = await call(client.verifyAuditLog.bind(client), {}, md);
    print(res);
    if (!res.intact) process.exitCode = 1;
    return;
  }
  if (cmd === "token" && sub === "issue") {
    const { values } = parseArgs({
      args: rest,
      options: {
        task: { type: "string" },
        scope: { type: "string", multiple: true },
        audience: { type: "string", multiple: true },
        ttl: { type: "string" },
        human: { type: "string" },
      },
    });
    const { client, md } = appClient();
    const res = await call(client.issue.bind(client), {
      taskId: values.task ?? "",
      orchestrationId: "",
      humanPrincipal: values.human ?? "",
      scopes: values.scope ?? [],
      audiences: values.audience ?? [],
      ttl: values.ttl ? { seconds: Number(values.ttl), nanos: 0 } : undefined,
      allowTtlClamp: false,
      agentPublicKeyJwk: "",
    }, md);
    print({ access_token: res.accessToken, token_id: res.claims?.tokenId, agent_id: res.claims?.agentId, expire_time: res.claims?.expireTime });
    return;
  }
  if (cmd === "token" && sub === "validate" && rest[0]) {
    const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { audience: { type: "string" } } });
    const { client, md } = appClient();
    const res = await call(client.validate.bind(client), { token: positionals[0] ?? "", audience: values.audience ?? "", requiredScopes: [] }, md);
    print({ valid: res.valid, status: tokenStatusToJSON(res.status), scopes: res.claims?.scopes, agent_id: res.claims?.agentId });
    if (!res.valid) process.exitCode = 1;
    return;
  }
  if (cmd === "token" && sub === "revoke" && rest[0]) {
    const { client, md } = appClient();
    const res = await call(client.revoke.bind(client), { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: rest[0], appId: "", reason: "revoked from the command line" }, md);
    print({ revoked: res.revocation?.id, cursor: res.revocation?.cursor });
    return;
  }
  process.stderr.write(`${USAGE}\n`);
  process.exitCode = 2;
}

// Exit explicitly once a command is done: tsx's loader does not pass
// process.exitCode through, and open gRPC channels would keep us alive.
const isServe = process.argv[2] === "serve";
main(process.argv.slice(2)).then(
  () => {
    if (!isServe) process.exit(process.exitCode ?? 0);
  },
  (err: unknown) => {
    // One line, no stack: the message says what is wrong.
    const e = (err ?? {}) as Partial<ServiceError>;
    process.stderr.write(`baton: ${e.details ?? e.message ?? String(err)}\n`);
    process.exit(1);
  },
);
