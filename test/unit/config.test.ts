// loadConfig (DESIGN §12): configuration from environment variables,
// validated at start, with ONE error listing every problem. Defaults are a
// working embedded-mode configuration; each bad variable is named; several
// bad variables at once produce a single ConfigError naming all of them.

import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, KNOWN_VARIABLES, loadConfig } from "../../server/config.js";

const MASTER_KEY = Buffer.alloc(32, 7).toString("base64");
const OPERATOR_TOKEN = "o".repeat(40);

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** One bad value for each variable, with the name the error must mention. */
const BAD: Record<string, string> = {
  BATON_GRPC_LISTEN: "not-a-host-port",
  BATON_HTTP_LISTEN: "localhost",
  DATABASE_URL: "mysql://db/baton",
  BATON_MASTER_KEY: Buffer.alloc(16, 1).toString("base64"),
  BATON_OPERATOR_TOKEN: "too-short",
  BATON_ISSUER: "ftp://baton",
  BATON_TRUST_DOMAIN: "Baton Local",
  BATON_SIGNING_ALGORITHM: "HS256",
  BATON_DEFAULT_TTL_SECONDS: "0",
  BATON_LEEWAY_SECONDS: "301",
  BATON_VALIDATE_SKEW_SECONDS: "31",
  BATON_LOG_LEVEL: "verbose",
  BATON_DATABASE_POOL_SIZE: "1.5",
  BATON_OTLP_ENDPOINT: "localhost:4318",
  BATON_TRACE_SAMPLE_RATIO: "1.5",
};

describe("loadConfig", () => {
  it("defaults are valid: embedded mode, ES256, 5-minute TTL, 2 s Validate skew, 30 s verifier leeway, no TLS", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      grpcListen: "127.0.0.1:50051",
      httpListen: "127.0.0.1:8080",
      databaseUrl: null,
      masterKey: null,
      operatorToken: null,
      signingAlgorithm: "ES256",
      defaultTtlSeconds: 300,
      validateSkewSeconds: 2,
      verifierLeewaySeconds: 30,
      logLevel: "info",
      tls: null,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("empty variables mean the default", () => {
    expect(loadConfig({ BATON_GRPC_LISTEN: "", BATON_DEFAULT_TTL_SECONDS: "", BATON_LOG_LEVEL: "" })).toMatchObject({
      grpcListen: "127.0.0.1:50051",
      defaultTtlSeconds: 300,
      logLevel: "info",
    });
  });

  it("accepts a full production configuration", () => {
    const c = loadConfig({
      BATON_GRPC_LISTEN: "0.0.0.0:443",
      BATON_HTTP_LISTEN: "",
      DATABASE_URL: "postgresql://u:p@db:5432/baton",
      BATON_MASTER_KEY: MASTER_KEY,
      BATON_OPERATOR_TOKEN: OPERATOR_TOKEN,
      BATON_ISSUER: "https://baton.example.com",
      BATON_TRUST_DOMAIN: "example.com",
      BATON_SIGNING_ALGORITHM: "EdDSA",
      BATON_DEFAULT_TTL_SECONDS: "120",
      BATON_LEEWAY_SECONDS: "5",
      BATON_VALIDATE_SKEW_SECONDS: "1",
      BATON_LOG_LEVEL: "warn",
      BATON_TLS_CERT_FILE: "/tls/cert.pem",
      BATON_TLS_KEY_FILE: "/tls/key.pem",
      BATON_TLS_CLIENT_CA_FILE: "/tls/ca.pem",
    });
    expect(c).toMatchObject({
      grpcListen: "0.0.0.0:443",
      httpListen: "",
      databaseUrl: "postgresql://u:p@db:5432/baton",
      signingAlgorithm: "EdDSA",
      defaultTtlSeconds: 120,
      validateSkewSeconds: 1,
      verifierLeewaySeconds: 5,
      tls: { certFile: "/tls/cert.pem", keyFile: "/tls/key.pem", clientCaFile: "/tls/ca.pem" },
    });
  });

  for (const [name, value] of Object.entries(BAD)) {
    it(`names ${name} when it is bad (${JSON.stringify(value)})`, () => {
      const e = configError({ [name]: value });
      expect(e.problems.some((p) => p.includes(name))).toBe(true);
      expect(e.message).toContain(name);
    });
  }

  it("several bad variables at once: one ConfigError whose message names every one of them", () => {
    fc.assert(
      fc.property(fc.subarray(Object.keys(BAD), { minLength: 2 }), (names) => {
        const env = Object.fromEntries(names.map((n) => [n, BAD[n]]));
        const e = configError(env);
        for (const n of names) expect(e.message, `${n} missing from the message`).toContain(n);
        // One line per problem, none repeated.
        expect(new Set(e.problems).size).toBe(e.problems.length);
      }),
      { numRuns: 300 },
    );
  });

  it("DATABASE_URL needs the master key and operator credential, and says so for both at once", () => {
    const e = configError({ DATABASE_URL: "postgres://db/baton" });
    expect(e.message).toContain("BATON_MASTER_KEY");
    expect(e.message).toContain("BATON_OPERATOR_TOKEN");
    expect(e.problems).toHaveLength(2);
  });

  it("TLS files go together, and mutual TLS needs a server certificate", () => {
    expect(configError({ BATON_TLS_CERT_FILE: "/c.pem" }).message).toContain("BATON_TLS_KEY_FILE");
    expect(configError({ BATON_TLS_KEY_FILE: "/k.pem" }).message).toContain("BATON_TLS_CERT_FILE");
    expect(configError({ BATON_TLS_CLIENT_CA_FILE: "/ca.pem" }).message).toContain("BATON_TLS_CLIENT_CA_FILE");
  });

  it("the operator token is never echoed into the error (it is a secret)", () => {
    const secret = "sekrit.with.dots.but.long.enough.to.pass.length";
    const e = configError({ BATON_OPERATOR_TOKEN: secret });
    expect(e.message).not.toContain(secret);
    const key = "c2hvcnQta2V5LXNlY3JldA==";
    expect(configError({ BATON_MASTER_KEY: key }).message).not.toContain(key);
  });

  it("integer variables accept exactly the integers in range", () => {
    fc.assert(
      fc.property(fc.integer({ min: -100, max: 400 }), (n) => {
        const env = { BATON_LEEWAY_SECONDS: String(n) };
        if (n >= 0 && n <= 300) expect(loadConfig(env).verifierLeewaySeconds).toBe(n);
        else expect(configError(env).message).toContain("BATON_LEEWAY_SECONDS");
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: -10, max: 60 }), (n) => {
        const env = { BATON_VALIDATE_SKEW_SECONDS: String(n) };
        if (n >= 0 && n <= 30) expect(loadConfig(env).validateSkewSeconds).toBe(n);
        else expect(configError(env).message).toContain("BATON_VALIDATE_SKEW_SECONDS");
      }),
      { numRuns: 100 },
    );
  });

  it("a listen port must fit a TCP port (at most 65535)", () => {
    expect(loadConfig({ BATON_GRPC_LISTEN: "127.0.0.1:65535" }).grpcListen).toBe("127.0.0.1:65535");
    expect(loadConfig({ BATON_GRPC_LISTEN: "[::1]:50051" }).grpcListen).toBe("[::1]:50051");
    expect(configError({ BATON_GRPC_LISTEN: "127.0.0.1:99999" }).message).toContain("BATON_GRPC_LISTEN");
    expect(configError({ BATON_HTTP_LISTEN: "127.0.0.1:70000" }).message).toContain("BATON_HTTP_LISTEN");
  });
});

describe("tracing (BATON_OTLP_ENDPOINT and the standard OTLP variables)", () => {
  it("off by default", () => {
    expect(loadConfig({}).tracing).toBeNull();
    expect(loadConfig({ BATON_OTLP_ENDPOINT: "" }).tracing).toBeNull();
    // A ratio alone does not switch it on.
    expect(loadConfig({ BATON_TRACE_SAMPLE_RATIO: "0.5" }).tracing).toBeNull();
  });

  it("BATON_OTLP_ENDPOINT is the collector's base URL: traces go to /v1/traces; every new trace is sampled unless a ratio is set", () => {
    expect(loadConfig({ BATON_OTLP_ENDPOINT: "http://collector:4318" }).tracing).toEqual({ url: "http://collector:4318/v1/traces", sampleRatio: 1 });
    expect(loadConfig({ BATON_OTLP_ENDPOINT: "https://otel.example/base/", BATON_TRACE_SAMPLE_RATIO: "0.25" }).tracing).toEqual({
      url: "https://otel.example/base/v1/traces",
      sampleRatio: 0.25,
    });
    expect(loadConfig({ BATON_OTLP_ENDPOINT: "http://c:4318", BATON_TRACE_SAMPLE_RATIO: "0" }).tracing?.sampleRatio).toBe(0);
  });

  it("the standard variables switch it on too: the traces URL as given, a base URL with /v1/traces; BATON_OTLP_ENDPOINT wins", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/my/traces" }).tracing?.url).toBe("http://c:4318/my/traces");
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).tracing?.url).toBe("http://c:4318/v1/traces");
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://base:1", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:2/t" }).tracing?.url).toBe("http://traces:2/t");
    expect(loadConfig({ BATON_OTLP_ENDPOINT: "http://baton:3", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://traces:2/t" }).tracing?.url).toBe("http://baton:3/v1/traces");
  });

  it("OTEL_SDK_DISABLED=true turns the standard variables off, not an explicit BATON_OTLP_ENDPOINT", () => {
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }).tracing).toBeNull();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/t", OTEL_SDK_DISABLED: " TRUE " }).tracing).toBeNull();
    expect(loadConfig({ BATON_OTLP_ENDPOINT: "http://c:4318", OTEL_SDK_DISABLED: "true" }).tracing).not.toBeNull();
  });

  it("a bad endpoint or ratio is a ConfigError naming the variable, never echoing the URL (it may hold credentials)", () => {
    const e = configError({ BATON_OTLP_ENDPOINT: "ftp://user:hunter2@collector" });
    expect(e.message).toContain("BATON_OTLP_ENDPOINT must be an http(s) URL");
    expect(e.message).not.toContain("hunter2");
    expect(configError({ OTEL_EXPORTER_OTLP_ENDPOINT: "not a url" }).message).toContain("OTEL_EXPORTER_OTLP_ENDPOINT");
    for (const bad of ["1.5", "-0.1", "abc", "0.5x", "2"]) {
      expect(configError({ BATON_OTLP_ENDPOINT: "http://c:4318", BATON_TRACE_SAMPLE_RATIO: bad }).message).toContain("BATON_TRACE_SAMPLE_RATIO");
    }
    for (const ok of ["1", "1.0", "0.5", ".5", "0"]) {
      expect(loadConfig({ BATON_OTLP_ENDPOINT: "http://c:4318", BATON_TRACE_SAMPLE_RATIO: ok }).tracing?.sampleRatio).toBe(Number(ok));
    }
  });

  it("a misspelled BATON_OTLP_ENDPOINT is reported by the unknown-variable warning", () => {
    expect(loadConfig({ BATON_OTLP_ENDPIONT: "http://c:4318" }).warnings).toEqual([
      "unknown variable BATON_OTLP_ENDPIONT is ignored; did you mean BATON_OTLP_ENDPOINT?",
    ]);
  });
});

describe("unknown BATON_* variables", () => {
  it("a misspelled variable is a warning naming the closest known one, and the setting keeps its default", () => {
    const c = loadConfig({ BATON_GRPC_LISTN: "0.0.0.0:1", BATON_MASTERKEY: MASTER_KEY, BATON_LOGLEVEL: "debug" });
    expect(c.warnings).toEqual([
      "unknown variable BATON_GRPC_LISTN is ignored; did you mean BATON_GRPC_LISTEN?",
      "unknown variable BATON_LOGLEVEL is ignored; did you mean BATON_LOG_LEVEL?",
      "unknown variable BATON_MASTERKEY is ignored; did you mean BATON_MASTER_KEY?",
    ]);
    expect(c.grpcListen).toBe("127.0.0.1:50051");
    expect(c.masterKey).toBeNull();
  });

  it("suggests only within 3 edits; further off, the warning names the variable alone", () => {
    expect(loadConfig({ BATON_DEFAULT_TTL_SECOND: "1" }).warnings).toEqual([
      "unknown variable BATON_DEFAULT_TTL_SECOND is ignored; did you mean BATON_DEFAULT_TTL_SECONDS?",
    ]);
    // 3 edits away: still suggested; 4: not.
    expect(loadConfig({ BATON_ISSUERXYZ: "x" }).warnings).toEqual(["unknown variable BATON_ISSUERXYZ is ignored; did you mean BATON_ISSUER?"]);
    expect(loadConfig({ BATON_ISSUERWXYZ: "x" }).warnings).toEqual(["unknown variable BATON_ISSUERWXYZ is ignored"]);
    expect(loadConfig({ BATON_SOMETHING_ELSE_ENTIRELY: "x" }).warnings).toEqual(["unknown variable BATON_SOMETHING_ELSE_ENTIRELY is ignored"]);
  });

  it("known variables, other prefixes and the operator command's variables produce no warning", () => {
    const env: Record<string, string> = { PATH: "/bin", BATONX: "1", DATABASE_URLS: "x", BATON_ADDR: "h:1", BATON_CLIENT_ID: "a", BATON_CLIENT_SECRET: "s" };
    expect(loadConfig(env).warnings).toEqual([]);
    expect(loadConfig({ BATON_LOG_LEVEL: "warn", BATON_APP_BURST: "10" }).warnings).toEqual([]);
  });

  it("the warning never carries the value (it may be a secret)", () => {
    const value = "a-secret-value-that-must-not-be-logged";
    const [w] = loadConfig({ BATON_OPERATOR_TOKN: value }).warnings;
    expect(w).toContain("BATON_OPERATOR_TOKEN");
    expect(w).not.toContain(value);
  });

  it("every BATON_* name the server source mentions is known (a new variable must be listed)", () => {
    const names = new Set<string>();
    const walk = (dir: string): void => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (f === "gen") continue;
        if (statSync(p).isDirectory()) walk(p);
        else if (f.endsWith(".ts")) for (const m of readFileSync(p, "utf8").matchAll(/\bBATON_[A-Z0-9_]*[A-Z0-9]\b/g)) names.add(m[0]);
      }
    };
    walk("server");
    expect(names.size).toBeGreaterThan(20);
    expect([...names].filter((n) => !KNOWN_VARIABLES.includes(n))).toEqual([]);
  });
});

describe("secrets from files (*_FILE)", () => {
  const dir = mkdtempSync(join(tmpdir(), "baton-config-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, content: string): string => {
    const p = join(dir, name);
    writeFileSync(p, content, { mode: 0o600 });
    return p;
  };
  const DB = "postgres://baton:pw@db:5432/baton";

  it("BATON_MASTER_KEY_FILE, BATON_OPERATOR_TOKEN_FILE and DATABASE_URL_FILE are read, one trailing newline dropped", () => {
    const c = loadConfig({
      DATABASE_URL_FILE: file("db-url", `${DB}\n`),
      BATON_MASTER_KEY_FILE: file("master-key", `${MASTER_KEY}\r\n`),
      BATON_OPERATOR_TOKEN_FILE: file("operator-token", OPERATOR_TOKEN),
    });
    expect(c).toMatchObject({ databaseUrl: DB, masterKey: MASTER_KEY, operatorToken: OPERATOR_TOKEN, warnings: [] });
  });

  it("only one trailing newline is dropped: the rest of the file is the value, and is validated as such", () => {
    expect(loadConfig({ BATON_OPERATOR_TOKEN_FILE: file("token-nl", `${OPERATOR_TOKEN}\n\n`) }).operatorToken).toBe(`${OPERATOR_TOKEN}\n`);
    expect(loadConfig({ BATON_OPERATOR_TOKEN_FILE: file("token-sp", ` ${OPERATOR_TOKEN}\n`) }).operatorToken).toBe(` ${OPERATOR_TOKEN}`);
  });

  it("a file value is validated like the variable", () => {
    const e = configError({ BATON_MASTER_KEY_FILE: file("short-key", Buffer.alloc(16, 1).toString("base64")) });
    expect(e.problems).toEqual(["BATON_MASTER_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)"]);
    expect(configError({ DATABASE_URL_FILE: file("mysql", "mysql://db/x"), BATON_MASTER_KEY: MASTER_KEY, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN }).problems).toEqual([
      "DATABASE_URL must be a postgres:// URL",
    ]);
  });

  it("both the variable and its _FILE set: an error naming both", () => {
    for (const [name, value] of [["BATON_MASTER_KEY", MASTER_KEY], ["BATON_OPERATOR_TOKEN", OPERATOR_TOKEN], ["DATABASE_URL", DB]] as const) {
      const e = configError({ [name]: value, [`${name}_FILE`]: file(`both-${name}`, value) });
      expect(e.problems).toContain(`set ${name} or ${name}_FILE, not both`);
      expect(e.message).not.toContain(value);
    }
  });

  it("a missing, unreadable (a directory) or empty file: a clear error naming the variable and file, never the content, and no second 'required' error", () => {
    const missing = join(dir, "missing");
    const base = { DATABASE_URL: DB, BATON_MASTER_KEY: MASTER_KEY };
    const e1 = configError({ ...base, BATON_OPERATOR_TOKEN_FILE: missing });
    expect(e1.problems).toEqual([`BATON_OPERATOR_TOKEN_FILE: cannot read ${missing} (ENOENT)`]);
    const e2 = configError({ ...base, BATON_OPERATOR_TOKEN_FILE: dir });
    expect(e2.problems).toEqual([`BATON_OPERATOR_TOKEN_FILE: cannot read ${dir} (EISDIR)`]);
    const e3 = configError({ ...base, BATON_OPERATOR_TOKEN_FILE: file("empty", "\n") });
    expect(e3.problems).toEqual([`BATON_OPERATOR_TOKEN_FILE: ${join(dir, "empty")} is empty`]);
    for (const e of [e1, e2, e3]) expect(e.message).not.toContain(MASTER_KEY);
    const e5 = configError({ DATABASE_URL_FILE: missing });
    expect(e5.problems).toEqual([`DATABASE_URL_FILE: cannot read ${missing} (ENOENT)`]);
  });
});
