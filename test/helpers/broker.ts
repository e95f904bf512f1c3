// A real broker on 127.0.0.1:0 over a fresh database, and the generated
// TypeScript clients to call it.

import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { loadConfig } from "../../server/config.js";
import { MasterKey } from "../../server/crypto/master-key.js";
import { startBroker, type RunningBroker } from "../../server/main.js";
import { type Logger, silentLogger } from "../../server/telemetry/logger.js";
import { AdminServiceClient } from "../../server/gen/baton/v1/admin.js";
import { BrokerServiceClient, type IssueRequest } from "../../server/gen/baton/v1/broker.js";
import { ErrorInfo } from "../../server/gen/google/rpc/error_details.js";
import { Status } from "../../server/gen/google/rpc/status.js";
import { freshDatabase, type TestDatabase } from "./database.js";

export const OPERATOR_TOKEN = "bop_test_operator_credential_0123456789abcdef";

export interface TestBroker {
  readonly broker: RunningBroker;
  readonly database: TestDatabase;
  readonly address: string;
  readonly httpUrl: string;
  readonly client: InstanceType<typeof BrokerServiceClient>;
  readonly admin: InstanceType<typeof AdminServiceClient>;
  stop(): Promise<void>;
}

export async function startTestBroker(env: Record<string, string> = {}, database?: TestDatabase, logger: Logger = silentLogger): Promise<TestBroker> {
  const db = database ?? (await freshDatabase());
  const config = loadConfig({
    DATABASE_URL: db.url,
    BATON_MASTER_KEY: env.BATON_MASTER_KEY ?? MasterKey.generate(),
    BATON_OPERATOR_TOKEN: OPERATOR_TOKEN,
    BATON_GRPC_LISTEN: "127.0.0.1:0",
    BATON_HTTP_LISTEN: "127.0.0.1:0",
    ...env,
  });
  const broker = await startBroker(config, logger);
  const address = `127.0.0.1:${broker.grpcPort}`;
  const client = new BrokerServiceClient(address, credentials.createInsecure());
  const admin = new AdminServiceClient(address, credentials.createInsecure());
  return {
    broker,
    database: db,
    address,
    httpUrl: `http://127.0.0.1:${broker.httpPort}`,
    client,
    admin,
    async stop() {
      client.close();
      admin.close();
      await broker.stop();
      if (!database) await db.drop();
    },
  };
}

export const operatorMd = (): Metadata => bearer(OPERATOR_TOKEN);

/** An IssueRequest with plain defaults; `over` replaces fields. */
export function issueRequest(over: Partial<IssueRequest> = {}): IssueRequest {
  return {
    taskId: "task-1",
    orchestrationId: "",
    humanPrincipal: "",
    scopes: ["read:records:P-1"],
    audiences: ["ehr-api"],
    ttl: undefined,
    allowTtlClamp: false,
    agentPublicKeyJwk: "",
    approvalId: "",
    ...over,
  };
}

export function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  return md;
}

export function basic(clientId: string, secret: string): Metadata {
  const md = new Metadata();
  md.set("authorization", `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`);
  return md;
}

type Unary<Req, Res> = (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => unknown;

/** Calls a generated unary method; rejects with the ServiceError. */
export function call<Req, Res>(fn: Unary<Req, Res>, self: object, req: Req, md: Metadata = new Metadata()): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn.call(self, req, md, { deadline: new Date(Date.now() + 10_000) }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

export interface DecodedError {
  readonly code: number;
  readonly message: string;
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Record<string, string>;
}

/** Decodes the google.rpc.Status + ErrorInfo a Baton error carries. */
export function decodeError(err: unknown): DecodedError {
  const e = err as ServiceError;
  const bin = e.metadata?.get("grpc-status-details-bin")[0];
  if (!(bin instanceof Buffer)) throw new Error(`error without status details: ${e.code} ${e.details}`);
  const st = Status.decode(bin);
  const any = st.details.find((d) => d.typeUrl === "type.googleapis.com/google.rpc.ErrorInfo");
  if (!any) throw new Error("status without ErrorInfo");
  const info = ErrorInfo.decode(any.value);
  return { code: e.code, message: e.details, reason: info.reason, domain: info.domain, metadata: info.metadata };
}

/** Awaits a call expected to fail; returns its decoded error. */
export async function refusal(p: Promise<unknown>): Promise<DecodedError> {
  try {
    await p;
  } catch (err) {
    return decodeError(err);
  }
  throw new Error("expected the call to be refused, but it succeeded");
}

export interface TestApp {
  readonly appId: string;
  readonly secret: string;
  readonly md: Metadata;
}

export async function createApp(
  b: TestBroker,
  opts: { name?: string; ceiling?: string[]; audiences?: string[]; maxTtlSeconds?: number; maxDelegationDepth?: number } = {},
): Promise<TestApp> {
  const res = await call(b.admin.createApp, b.admin, {
    name: opts.name ?? `app-${Math.random().toString(36).slice(2, 10)}`,
    scopeCeiling: opts.ceiling ?? ["read:records:*", "write:prescriptions:*"],
    audiences: opts.audiences ?? ["ehr-api"],
    maxTtl: opts.maxTtlSeconds ? { seconds: opts.maxTtlSeconds, nanos: 0 } : undefined,
    maxDelegationDepth: opts.maxDelegationDepth ?? 0,
    approvalPolicy: [], maxTaskLifetime: undefined,
  }, operatorMd());
  return { appId: res.app!.appId, secret: res.clientSecret, md: basic(res.app!.appId, res.clientSecret) };
}

/** What a test's issue() may change from its task's defaults. */
export interface IssueOptions {
  scopes?: string[];
  audiences?: string[];
  ttlSeconds?: number;
  /** The agent's key (a TestAgentKey): the token is bound to it. */
  key?: { readonly jwkJson: string };
  taskId?: string;
  /** Another app to issue from (ehr-api only by default). */
  into?: TestApp;
}

/**
 * issue() for the tests of one clinical task: read and write on P-1042 for
 * ehr-api and pharmacy-api, on behalf of user:dr-grey, through `app()`.
 * Getters, since the broker and app are made in beforeAll.
 */
export function clinicalIssuer(b: () => TestBroker, app: () => TestApp, task: { readonly taskId: string; readonly orchestrationId: string }) {
  return (o: IssueOptions = {}) =>
    call(b().client.issue, b().client, {
      taskId: o.taskId ?? task.taskId,
      orchestrationId: task.orchestrationId,
      humanPrincipal: "user:dr-grey",
      scopes: o.scopes ?? ["read:records:P-1042", "write:prescriptions:P-1042"],
      audiences: o.audiences ?? (o.into ? ["ehr-api"] : ["ehr-api", "pharmacy-api"]),
      ttl: o.ttlSeconds ? { seconds: o.ttlSeconds, nanos: 0 } : undefined,
      allowTtlClamp: false,
      agentPublicKeyJwk: o.key?.jwkJson ?? "",
      approvalId: "",
    }, (o.into ?? app()).md);
}
