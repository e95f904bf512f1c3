// What every client command shares: the global connection and output flags,
// the credentials, one unary call with a deadline, typed flag parsers and
// the two output formats.

import { type ChannelCredentials, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { InvalidArgumentError, type Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { envSecret } from "../config.js";
import { AdminServiceClient } from "../gen/baton/v1/admin.js";
import { BrokerServiceClient } from "../gen/baton/v1/broker.js";
import { ErrorInfo } from "../gen/google/rpc/error_details.js";
import { Status } from "../gen/google/rpc/status.js";

// package.json sits two levels up from the sources (server/cli) and three
// from the build (dist/server/cli).
const PACKAGE_JSON = ["../../package.json", "../../../package.json"].map((p) => new URL(p, import.meta.url)).find((u) => existsSync(u));
export const VERSION = PACKAGE_JSON ? (JSON.parse(readFileSync(PACKAGE_JSON, "utf8")) as { version: string }).version : "unknown";

/** The global flags, as commander hands them to every command. */
export interface GlobalOptions {
  addr: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  output: "json" | "table";
}

export const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>();

/** Reads a file a flag names; a missing file is a usage error naming the flag. */
function flagFile(cmd: Command, flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    cmd.error(`error: option '--${flag}': cannot read ${file}: ${(err as Error).message}`, { exitCode: 2, code: "baton.badFile" });
  }
}

/** Plaintext unless a TLS flag is given; --ca replaces the system roots, --cert/--key add a client certificate. */
export function channelCredentials(cmd: Command): ChannelCredentials {
  const o = globals(cmd);
  if (!o.tls && !o.ca && !o.cert && !o.key) return credentials.createInsecure();
  // grpc-js sends an IP address (--addr 10.0.0.5:50051) as the TLS server
  // name, and Node warns about it (DEP0123) on stderr, which is the user's.
  process.noDeprecation = true;
  return credentials.createSsl(
    o.ca ? flagFile(cmd, "ca", o.ca) : null,
    o.key ? flagFile(cmd, "key", o.key) : null,
    o.cert ? flagFile(cmd, "cert", o.cert) : null,
  );
}

/** Checked before any command runs: usage errors exit 2 and name the flag. */
export function checkGlobals(cmd: Command): void {
  const o = globals(cmd);
  if (o.cert && !o.key) cmd.error("error: option '--cert <file>' needs '--key <file>' (mutual TLS takes both)", { exitCode: 2, code: "baton.certWithoutKey" });
  if (o.key && !o.cert) cmd.error("error: option '--key <file>' needs '--cert <file>' (mutual TLS takes both)", { exitCode: 2, code: "baton.keyWithoutCert" });
}

export function operatorToken(): string {
  const fromEnv = envSecret(process.env, "BATON_OPERATOR_TOKEN");
  if (fromEnv) return fromEnv;
  const file = join(process.env.BATON_DATA_DIR || ".baton", "operator-token");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  throw new Error(`no operator credential: set BATON_OPERATOR_TOKEN or run where ${file} exists`);
}

function operatorMetadata(): Metadata {
  const md = new Metadata();
  md.set("authorization", `Bearer ${operatorToken()}`);
  return md;
}

export const hasAppCredentials = (): boolean => Boolean(process.env.BATON_CLIENT_ID && process.env.BATON_CLIENT_SECRET);

function appMetadata(): Metadata {
  const id = process.env.BATON_CLIENT_ID;
  const secret = process.env.BATON_CLIENT_SECRET;
  if (!id || !secret) throw new Error("set BATON_CLIENT_ID and BATON_CLIENT_SECRET (from `baton app create`)");
  const md = new Metadata();
  md.set("authorization", `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`);
  return md;
}

export function adminClient(cmd: Command): { client: InstanceType<typeof AdminServiceClient>; md: Metadata } {
  const md = operatorMetadata();
  return { client: new AdminServiceClient(globals(cmd).addr, channelCredentials(cmd)), md };
}

/** The BrokerService as an app (client credentials) or as the operator. */
export function brokerClient(cmd: Command, as: "app" | "operator"): { client: InstanceType<typeof BrokerServiceClient>; md: Metadata } {
  const md = as === "app" ? appMetadata() : operatorMetadata();
  return { client: new BrokerServiceClient(globals(cmd).addr, channelCredentials(cmd)), md };
}

/** Calls one unary method with a 10 s deadline. */
export function call<Req, Res>(
  fn: (req: Req, md: Metadata, opts: { deadline: Date }, cb: (err: ServiceError | null, res: Res) => void) => unknown,
  req: Req,
  md: Metadata,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, md, { deadline: new Date(Date.now() + 10_000) }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

/** The ErrorInfo reason a Baton refusal carries, if it carries one. */
export function errorReason(err: unknown): string | null {
  const bin = (err as Partial<ServiceError>).metadata?.get?.("grpc-status-details-bin")[0];
  if (!(bin instanceof Buffer)) return null;
  try {
    const any = Status.decode(bin).details.find((d) => d.typeUrl === "type.googleapis.com/google.rpc.ErrorInfo");
    return any ? ErrorInfo.decode(any.value).reason || null : null;
  } catch {
    return null;
  }
}

/** A flag parser for whole numbers from `min` up (at most `max`); commander names the flag in the error. */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^\d{1,16}$/.test(value)) throw new InvalidArgumentError(`must be a whole number from ${min}`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`must be from ${min} to ${max}`);
    return n;
  };
}

/** Collects a repeated flag into a list. */
export const repeated = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export type Row = Record<string, unknown>;

const cell = (v: unknown): string => (v === undefined || v === null ? "" : Array.isArray(v) ? v.join(",") : String(v));

/** Aligned columns, a header of the keys of the first row. */
export function table(rows: Row[]): string {
  if (rows.length === 0) return "";
  const keys = Object.keys(rows[0]!);
  const cells = [keys.map((k) => k.toUpperCase()), ...rows.map((r) => keys.map((k) => cell(r[k])))];
  const widths = keys.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells.map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i]!))).join("  ").trimEnd()).join("\n") + "\n";
}

/** One result: pretty JSON, or two aligned columns of field and value. */
export function printOne(cmd: Command, v: Row): void {
  if (globals(cmd).output === "table") {
    process.stdout.write(table(Object.entries(v).map(([field, value]) => ({ field, value }))));
  } else {
    process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  }
}

/** A list: one pretty JSON object after another (as before), or a table. */
export function printList(cmd: Command, rows: Row[]): void {
  if (globals(cmd).output === "table") process.stdout.write(table(rows));
  else for (const r of rows) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
}
