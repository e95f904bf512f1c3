// loadConfig (DESIGN §12): configuration from environment variables,
// validated at start, with ONE error listing every problem. Defaults are a
// working embedded-mode configuration; each bad variable is named; several
// bad variables at once produce a single ConfigError naming all of them.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/config.js";

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
