// Configuration from BATON_* environment variables (and DATABASE_URL),
// validated at start: one error lists every problem. Secrets may come from
// files instead (NAME_FILE, as container secrets are mounted); a BATON_*
// variable nobody reads is reported with the closest known name, since a
// typo otherwise silently means "use the default".

import { readFileSync } from "node:fs";

export interface Config {
  /** host:port for gRPC. */
  readonly grpcListen: string;
  /** host:port for HTTP (health, metrics, JWKS). Empty: no HTTP server. */
  readonly httpListen: string;
  /** null: start the embedded PostgreSQL in `dataDir`. */
  readonly databaseUrl: string | null;
  readonly databasePoolSize: number;
  /** How long the broker waits on PostgreSQL before it answers UNAVAILABLE (see db.ts). */
  readonly databaseTimeouts: { readonly connectMs: number; readonly statementMs: number; readonly acquireMs: number };
  /** Embedded PostgreSQL data, generated master key and operator credential. */
  readonly dataDir: string;
  /** base64 of 32 bytes; null only in embedded mode (then created in dataDir). */
  readonly masterKey: string | null;
  /** null only in embedded mode (then created in dataDir). */
  readonly operatorToken: string | null;
  readonly issuer: string;
  readonly trustDomain: string;
  readonly signingAlgorithm: "ES256" | "EdDSA";
  readonly defaultTtlSeconds: number;
  /** How long a task may keep renewing its tokens, for apps that set no maximum of their own. */
  readonly maxTaskSeconds: number;
  /**
   * How far past `exp` (and before `nbf`) the broker's own checks accept a
   * token: Validate, and agent tokens used as credentials. The broker signs
   * with its own clock, so this only covers skew between replicas.
   */
  readonly validateSkewSeconds: number;
  /**
   * How many tokens whose signature verified the broker remembers (by their
   * exact string), so a token presented again is not verified again; 0: none.
   */
  readonly verifiedTokenCache: number;
  /** Issue and Delegate sign on a worker thread (true) or on the event loop. */
  readonly signingThread: boolean;
  /**
   * The clock-skew leeway offline verifiers (the SDKs) allow on `exp`/`nbf`.
   * Revocations stay live and retired keys stay published at least this long
   * past the last expiry they cover; proofs are accepted within it of their iat.
   */
  readonly verifierLeewaySeconds: number;
  readonly logLevel: "debug" | "info" | "warn" | "error";
  /** How often an idle revocation stream gets a Checkpoint. */
  readonly streamCheckpointSeconds: number;
  /** Live events a revocation stream may hold for a slow subscriber. */
  readonly streamBufferEvents: number;
  /** Rate limits, per broker replica (see service/rate-limits.ts). */
  readonly rateLimits: {
    /** Issue, Delegate and Revoke per second by one app and its agents, unless the app sets its own. */
    readonly appPerSecond: number;
    readonly appBurst: number;
    /** Failed authentications one source address may make in `authFailureWindowSeconds` before it is throttled. */
    readonly authFailures: number;
    readonly authFailureWindowSeconds: number;
  };
  /** Retention (service/retention.ts): how long expired grants are kept, audit retention (0: forever), export dir, pass interval, batch size. */
  readonly retention: {
    readonly grantSeconds: number;
    readonly auditSeconds: number;
    readonly auditExportDir: string | null;
    readonly intervalSeconds: number;
    readonly batchSize: number;
  };
  /** How long an approval waits for its decision and then its use (BATON_APPROVAL_WINDOW_SECONDS). */
  readonly approvalWindowSeconds: number;
  readonly tls: { readonly certFile: string; readonly keyFile: string; readonly clientCaFile: string | null } | null;
  /**
   * OpenTelemetry tracing (telemetry/tracing.ts): the OTLP/HTTP traces URL and
   * the share of new traces sampled. null (the default): off.
   */
  readonly tracing: { readonly url: string; readonly sampleRatio: number } | null;
  /** Unknown BATON_* variables, each naming the closest known one: not errors, the caller logs them. */
  readonly warnings: readonly string[];
}

/** Secrets that may be given as NAME or as NAME_FILE (a file holding the value). */
const SECRETS = ["DATABASE_URL", "BATON_MASTER_KEY", "BATON_OPERATOR_TOKEN", "BATON_APPROVER_SECRET"] as const;

/** Every BATON_* variable Baton reads: the broker's (below) and the `baton` command's (cli.ts). */
export const KNOWN_VARIABLES: readonly string[] = [
  "BATON_GRPC_LISTEN",
  "BATON_HTTP_LISTEN",
  "BATON_DATABASE_POOL_SIZE",
  "BATON_DATABASE_CONNECT_TIMEOUT_MS",
  "BATON_DATABASE_STATEMENT_TIMEOUT_MS",
  "BATON_DATABASE_ACQUIRE_TIMEOUT_MS",
  "BATON_DATA_DIR",
  "BATON_MASTER_KEY",
  "BATON_MASTER_KEY_FILE",
  "BATON_OPERATOR_TOKEN",
  "BATON_OPERATOR_TOKEN_FILE",
  "BATON_ISSUER",
  "BATON_TRUST_DOMAIN",
  "BATON_SIGNING_ALGORITHM",
  "BATON_DEFAULT_TTL_SECONDS",
  "BATON_MAX_TASK_SECONDS",
  "BATON_VALIDATE_SKEW_SECONDS",
  "BATON_VERIFIED_TOKEN_CACHE",
  "BATON_SIGNING_THREAD",
  "BATON_LEEWAY_SECONDS",
  "BATON_LOG_LEVEL",
  "BATON_STREAM_CHECKPOINT_SECONDS",
  "BATON_STREAM_BUFFER_EVENTS",
  "BATON_APP_RATE_PER_SECOND",
  "BATON_APP_BURST",
  "BATON_AUTH_FAILURES",
  "BATON_AUTH_FAILURE_WINDOW_SECONDS",
  "BATON_GRANT_RETENTION_SECONDS",
  "BATON_AUDIT_RETENTION_SECONDS",
  "BATON_AUDIT_EXPORT_DIR",
  "BATON_RETENTION_INTERVAL_SECONDS",
  "BATON_RETENTION_BATCH_SIZE",
  "BATON_TLS_CERT_FILE",
  "BATON_TLS_KEY_FILE",
  "BATON_TLS_CLIENT_CA_FILE",
  "BATON_APPROVAL_WINDOW_SECONDS",
  "BATON_OTLP_ENDPOINT",
  "BATON_TRACE_SAMPLE_RATIO",
  // The `baton` operator and token commands.
  "BATON_ADDR",
  "BATON_CLIENT_ID",
  "BATON_CLIENT_SECRET",
  "BATON_APPROVER_ID",
  "BATON_APPROVER_SECRET",
  "BATON_APPROVER_SECRET_FILE",
];

/**
 * A secret from NAME, or from the file NAME_FILE names (one trailing newline
 * dropped); null when neither is set. Throws when both are set or the file
 * cannot be read; the message names the variable and file, never the value.
 */
export function envSecret(env: Record<string, string | undefined>, name: (typeof SECRETS)[number]): string | null {
  const direct = env[name] ?? "";
  const file = env[`${name}_FILE`] ?? "";
  if (file === "") return direct || null;
  if (direct !== "") throw new Error(`set ${name} or ${name}_FILE, not both`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`${name}_FILE: cannot read ${file} (${(err as { code?: string }).code ?? "error"})`);
  }
  const value = text.replace(/\r?\n$/, "");
  if (value === "") throw new Error(`${name}_FILE: ${file} is empty`);
  return value;
}

/** Edit distance (insertions, deletions, substitutions). */
function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** One warning per unknown BATON_* variable (its name only: the value may be a secret). */
function unknownVariables(env: Record<string, string | undefined>): string[] {
  const warnings: string[] = [];
  for (const name of Object.keys(env).sort()) {
    if (!name.startsWith("BATON_") || KNOWN_VARIABLES.includes(name)) continue;
    let best: string | null = null;
    let bestDistance = 4; // suggest only within 3 edits
    for (const known of KNOWN_VARIABLES) {
      const d = levenshtein(name, known);
      if (d < bestDistance) [best, bestDistance] = [known, d];
    }
    warnings.push(best ? `unknown variable ${name} is ignored; did you mean ${best}?` : `unknown variable ${name} is ignored`);
  }
  return warnings;
}

/**
 * Where traces go, or null (tracing off). BATON_OTLP_ENDPOINT switches
 * tracing on; so do the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full
 * traces URL) and OTEL_EXPORTER_OTLP_ENDPOINT (a base URL), so a broker
 * deployed where those are set exports like its neighbours, unless
 * OTEL_SDK_DISABLED=true. BATON_OTLP_ENDPOINT wins, then the traces-specific
 * one. A base URL gets the OTLP path /v1/traces appended.
 */
function tracingUrl(env: Record<string, string | undefined>, problems: string[]): string | null {
  const pick = (
    [
      ["BATON_OTLP_ENDPOINT", true],
      ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", false],
      ["OTEL_EXPORTER_OTLP_ENDPOINT", true],
    ] as const
  ).find(([name]) => (env[name] ?? "") !== "");
  if (!pick) return null;
  const [name, isBase] = pick;
  if (name !== "BATON_OTLP_ENDPOINT" && env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return null;
  let url: URL;
  try {
    url = new URL(env[name]!);
  } catch {
    url = new URL("invalid:");
  }
  // Not echoed: a collector URL may carry credentials.
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    problems.push(`${name} must be an http(s) URL, such as http://localhost:4318`);
    return null;
  }
  return isBase ? `${url.href.replace(/\/+$/, "")}/v1/traces` : url.href;
}

/** A number from 0 to 1, such as 0.25. */
const RATIO = /^(0(\.[0-9]{1,9})?|1(\.0{1,9})?|\.[0-9]{1,9})$/;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** host:port with a port from 0 (any free port) to 65535. */
const isHostPort = (v: string): boolean => {
  const m = HOST_PORT.exec(v);
  return m !== null && Number(m[2]) <= 65_535;
};

export function loadConfig(env: Record<string, string | undefined>): Config {
  const problems: string[] = [];
  const str = (name: string, fallback: string): string => {
    const v = env[name];
    return v === undefined || v === "" ? fallback : v;
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = /^[0-9]{1,9}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got "${raw.slice(0, 32)}")`);
      return fallback;
    }
    return n;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const v = str(name, fallback);
    if (!allowed.includes(v as T)) {
      problems.push(`${name} must be one of ${allowed.join(", ")} (got "${v.slice(0, 32)}")`);
      return fallback;
    }
    return v as T;
  };

  const grpcListen = str("BATON_GRPC_LISTEN", "127.0.0.1:50051");
  if (!isHostPort(grpcListen)) problems.push(`BATON_GRPC_LISTEN must be host:port (got "${grpcListen.slice(0, 64)}")`);
  const httpListen = env.BATON_HTTP_LISTEN ?? "127.0.0.1:8080";
  if (httpListen !== "" && !isHostPort(httpListen)) {
    problems.push(`BATON_HTTP_LISTEN must be host:port or empty (got "${httpListen.slice(0, 64)}")`);
  }
  // A secret whose variables are wrong is reported once, not again as missing.
  const unreadable = new Set<string>();
  const secret = (name: (typeof SECRETS)[number]): string | null => {
    try {
      return envSecret(env, name);
    } catch (err) {
      problems.push((err as Error).message);
      unreadable.add(name);
      return null;
    }
  };

  const databaseUrl = secret("DATABASE_URL");
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) problems.push("DATABASE_URL must be a postgres:// URL");

  const masterKey = secret("BATON_MASTER_KEY");
  if (masterKey && Buffer.from(masterKey, "base64").length !== 32) {
    problems.push("BATON_MASTER_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)");
  }
  if (databaseUrl && !masterKey && !unreadable.has("BATON_MASTER_KEY")) problems.push("BATON_MASTER_KEY is required with DATABASE_URL (openssl rand -base64 32)");
  const operatorToken = secret("BATON_OPERATOR_TOKEN");
  if (operatorToken && (operatorToken.length < 32 || operatorToken.includes("."))) {
    problems.push("BATON_OPERATOR_TOKEN must be at least 32 characters and contain no '.'");
  }
  if (databaseUrl && !operatorToken && !unreadable.has("BATON_OPERATOR_TOKEN")) problems.push("BATON_OPERATOR_TOKEN is required with DATABASE_URL");

  const issuer = str("BATON_ISSUER", "https://baton.local");
  if (!/^https?:\/\/[^\s]+$/.test(issuer)) problems.push("BATON_ISSUER must be an http(s) URL");
  const trustDomain = str("BATON_TRUST_DOMAIN", "baton.local");
  if (!/^[a-z0-9.-]{1,255}$/.test(trustDomain)) problems.push("BATON_TRUST_DOMAIN must be lower-case letters, digits, '.' and '-'");

  const certFile = str("BATON_TLS_CERT_FILE", "");
  const keyFile = str("BATON_TLS_KEY_FILE", "");
  const clientCaFile = str("BATON_TLS_CLIENT_CA_FILE", "") || null;
  if ((certFile === "") !== (keyFile === "")) problems.push("BATON_TLS_CERT_FILE and BATON_TLS_KEY_FILE go together");
  if (clientCaFile && certFile === "") problems.push("BATON_TLS_CLIENT_CA_FILE (mutual TLS) needs BATON_TLS_CERT_FILE and BATON_TLS_KEY_FILE");

  const leewaySeconds = int("BATON_LEEWAY_SECONDS", 30, 0, 300);
  // A grant must outlive its token's leeway: until then the token validates,
  // can be revoked by id and can parent a delegation.
  const grantSeconds = int("BATON_GRANT_RETENTION_SECONDS", 3600, 30, 31_536_000);
  if (grantSeconds < leewaySeconds) problems.push(`BATON_GRANT_RETENTION_SECONDS must be at least BATON_LEEWAY_SECONDS (${leewaySeconds})`);
  const auditSeconds = int("BATON_AUDIT_RETENTION_SECONDS", 0, 0, 999_999_999);
  if (auditSeconds > 0 && auditSeconds < 60) problems.push("BATON_AUDIT_RETENTION_SECONDS must be 0 (keep forever) or at least 60");
  const retention = Object.freeze({
    grantSeconds,
    auditSeconds,
    auditExportDir: str("BATON_AUDIT_EXPORT_DIR", "") || null,
    intervalSeconds: int("BATON_RETENTION_INTERVAL_SECONDS", 60, 1, 86_400),
    batchSize: int("BATON_RETENTION_BATCH_SIZE", 1000, 1, 100_000),
  });

  const traceUrl = tracingUrl(env, problems);
  const ratioText = str("BATON_TRACE_SAMPLE_RATIO", "1");
  if (!RATIO.test(ratioText)) problems.push(`BATON_TRACE_SAMPLE_RATIO must be a number from 0 to 1 (got "${ratioText.slice(0, 32)}")`);

  const config: Config = Object.freeze({
    grpcListen,
    httpListen,
    databaseUrl,
    databasePoolSize: int("BATON_DATABASE_POOL_SIZE", 10, 1, 100),
    databaseTimeouts: Object.freeze({
      connectMs: int("BATON_DATABASE_CONNECT_TIMEOUT_MS", 5_000, 100, 600_000),
      statementMs: int("BATON_DATABASE_STATEMENT_TIMEOUT_MS", 5_000, 100, 600_000),
      acquireMs: int("BATON_DATABASE_ACQUIRE_TIMEOUT_MS", 2_000, 100, 600_000),
    }),
    dataDir: str("BATON_DATA_DIR", ".baton"),
    masterKey,
    operatorToken,
    issuer,
    trustDomain,
    signingAlgorithm: oneOf("BATON_SIGNING_ALGORITHM", "ES256", ["ES256", "EdDSA"] as const),
    defaultTtlSeconds: int("BATON_DEFAULT_TTL_SECONDS", 300, 1, 86_400),
    maxTaskSeconds: int("BATON_MAX_TASK_SECONDS", 28_800, 1, 2_592_000),
    validateSkewSeconds: int("BATON_VALIDATE_SKEW_SECONDS", 2, 0, 30),
    verifiedTokenCache: int("BATON_VERIFIED_TOKEN_CACHE", 10_000, 0, 1_000_000),
    signingThread: oneOf("BATON_SIGNING_THREAD", "on", ["on", "off"] as const) === "on",
    verifierLeewaySeconds: leewaySeconds,
    logLevel: oneOf("BATON_LOG_LEVEL", "info", ["debug", "info", "warn", "error"] as const),
    streamCheckpointSeconds: int("BATON_STREAM_CHECKPOINT_SECONDS", 5, 1, 300),
    streamBufferEvents: int("BATON_STREAM_BUFFER_EVENTS", 10_000, 10, 1_000_000),
    rateLimits: Object.freeze({
      appPerSecond: int("BATON_APP_RATE_PER_SECOND", 200, 1, 1_000_000),
      appBurst: int("BATON_APP_BURST", 400, 1, 1_000_000),
      authFailures: int("BATON_AUTH_FAILURES", 20, 1, 1_000_000),
      authFailureWindowSeconds: int("BATON_AUTH_FAILURE_WINDOW_SECONDS", 10, 1, 3600),
    }),
    retention,
    approvalWindowSeconds: int("BATON_APPROVAL_WINDOW_SECONDS", 900, 1, 86_400),
    tls: certFile ? Object.freeze({ certFile, keyFile, clientCaFile }) : null,
    tracing: traceUrl ? Object.freeze({ url: traceUrl, sampleRatio: RATIO.test(ratioText) ? Number(ratioText) : 1 }) : null,
    warnings: Object.freeze(unknownVariables(env)),
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
