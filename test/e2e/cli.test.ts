// The `baton` command line (issue 9): a real broker and PostgreSQL, and the
// real command run as a child process (node bin/baton.mjs), the way an
// operator runs it.

import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_TOKEN, startTestBroker, type TestBroker } from "../helpers/broker.js";

const ROOT = join(import.meta.dirname, "../..");
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `baton ARGS` with only the variables given (plus PATH): no credentials leak in from the test's environment. */
function baton(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, "bin/baton.mjs"), ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? "", ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

let b: TestBroker;
let operator: Record<string, string>;
/** `baton ARGS` as the operator against the test broker; fails the test unless it exits 0. */
async function ok(args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await baton(args, { ...operator, ...env });
  expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

beforeAll(async () => {
  b = await startTestBroker();
  operator = { BATON_ADDR: b.address, BATON_OPERATOR_TOKEN: OPERATOR_TOKEN };
});
afterAll(async () => b?.stop());

describe("parsing", () => {
  it("--version prints package.json's version", async () => {
    const r = await baton(["--version"]);
    expect(r).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
  }, 60_000);

  it("every command has --help listing its own flags and the global ones", async () => {
    const create = await baton(["app", "create", "--help"]);
    expect(create.code).toBe(0);
    for (const flag of ["--name <name>", "--scope <scope>", "--audience <audience>", "--max-ttl <seconds>", "--max-depth <n>", "--rate-limit", "--burst", "--addr", "--tls", "--ca <file>", "--cert <file>", "--key <file>", "--output <format>"]) {
      expect(create.stdout).toContain(flag);
    }
    const revoke = await baton(["token", "revoke", "--help"]);
    expect(revoke.code).toBe(0);
    expect(revoke.stdout).toContain("--target <kind>");
    expect(revoke.stdout.replace(/\s+/g, " ")).toContain('choices: "token", "agent", "task", "chain", "app"');
    expect(revoke.stdout).toContain("--app <app-id>");
    const update = await baton(["app", "update", "--help"]);
    expect(update.stdout).toContain("Usage: baton app update [options] <app-id>");
  }, 60_000);

  it("a bad integer exits 2 naming the flag, and nothing is sent", async () => {
    const r = await baton(["app", "create", "--name", "bad-int", "--scope", "read:x:*", "--audience", "x-api", "--max-ttl", "10m"], operator);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("option '--max-ttl <seconds>' argument '10m' is invalid");
    const neg = await baton(["app", "update", "app_0000000000000000000000", "--max-depth", "-1"], operator);
    expect(neg.code).toBe(2);
    expect(neg.stderr).toContain("--max-depth");
    expect(await ok(["app", "list"])).not.toContain("bad-int");
  }, 60_000);

  it("usage errors exit 2: unknown flag, unknown command, bad --output, --cert without --key, --target task as operator without --app", async () => {
    const cases: [string[], string][] = [
      [["app", "list", "--frobnicate"], "unknown option '--frobnicate'"],
      [["app", "frobnicate"], "unknown command 'frobnicate'"],
      [["app", "list", "--output", "xml"], "option '--output <format>' argument 'xml' is invalid"],
      [["app", "list", "--cert", "client.pem"], "option '--cert <file>' needs '--key <file>'"],
      [["app", "list", "--key", "client.key"], "option '--key <file>' needs '--cert <file>'"],
      [["token", "revoke", "task-1", "--target", "task"], "option '--app <app-id>' is required"],
    ];
    for (const [args, message] of cases) {
      const r = await baton(args, operator);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(message);
    }
  }, 120_000);

  it("no command prints the usage and exits 2", async () => {
    const r = await baton([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("usage:\n  baton serve");
  }, 60_000);
});

describe("the admin surface against a real broker", () => {
  it("app get, update and rotate-secret; a refusal exits 1 with its reason", async () => {
    const created = JSON.parse(await ok(["app", "create", "--name", "cli-app", "--scope", "read:records:*", "--scope", "write:notes:*", "--audience", "ehr-api", "--max-ttl", "900"]));
    expect(created.app_id).toMatch(/^app_[0-9A-Za-z]{22}$/);
    const asApp = { BATON_ADDR: b.address, BATON_CLIENT_ID: created.app_id, BATON_CLIENT_SECRET: created.client_secret };

    const got = JSON.parse(await ok(["app", "get", created.app_id]));
    expect(got).toMatchObject({ app_id: created.app_id, name: "cli-app", disabled: false, scope_ceiling: ["read:records:*", "write:notes:*"], audiences: ["ehr-api"], max_ttl_seconds: 900 });
    expect(JSON.stringify(got)).not.toContain(created.client_secret);

    const updated = JSON.parse(await ok(["app", "update", created.app_id, "--name", "cli-app-2", "--scope", "read:records:*", "--max-ttl", "600", "--rate-limit", "50", "--burst", "100"]));
    expect(updated).toMatchObject({ name: "cli-app-2", scope_ceiling: ["read:records:*"], audiences: ["ehr-api"], max_ttl_seconds: 600, rate_limit_per_second: 50, rate_limit_burst: 100 });
    expect(JSON.parse(await ok(["app", "get", created.app_id]))).toMatchObject({ name: "cli-app-2", scope_ceiling: ["read:records:*"] });

    const rotated = JSON.parse(await ok(["app", "rotate-secret", created.app_id]));
    expect(rotated.app_id).toBe(created.app_id);
    expect(rotated.client_secret).not.toBe(created.client_secret);
    const issueArgs = ["token", "issue", "--task", "t-1", "--scope", "read:records:P-1", "--audience", "ehr-api"];
    const old = await baton(issueArgs, asApp);
    expect(old.code).toBe(1);
    expect(old.stderr).toMatch(/^baton: .* \(reason: [A-Z_]+\)\n$/);
    expect(old.stderr).not.toContain(created.client_secret);
    await ok(issueArgs, { ...asApp, BATON_CLIENT_SECRET: rotated.client_secret });

    const missing = await baton(["app", "get", "app_0000000000000000000000"], operator);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^baton: .*\(reason: NOT_FOUND\)\n$/);
  }, 120_000);

  it("key list and key rotate", async () => {
    const before = (await ok(["key", "list"])).trim().split(/\n(?=\{)/).map((s) => JSON.parse(s) as { key_id: string; state: string });
    const active = before.find((k) => k.state === "ACTIVE")!;
    const next = before.find((k) => k.state === "NEXT")!;
    expect(active && next).toBeTruthy();
    const rotated = JSON.parse(await ok(["key", "rotate"]));
    expect(rotated.active_key_id).toBe(next.key_id);
    const after = (await ok(["key", "list"])).trim().split(/\n(?=\{)/).map((s) => JSON.parse(s) as { key_id: string; state: string });
    expect(after.find((k) => k.key_id === next.key_id)?.state).toBe("ACTIVE");
    expect(after.find((k) => k.key_id === rotated.next_key_id)?.state).toBe("NEXT");
    expect(after.find((k) => k.key_id === active.key_id)?.state).toBe("RETIRED");
    expect(JSON.stringify(after)).not.toMatch(/"d"/); // public keys only
  }, 120_000);

  it("the operator revokes by agent and by task (with --app); the app's own revoke TOKEN_ID still works", async () => {
    const created = JSON.parse(await ok(["app", "create", "--name", "cli-revoker", "--scope", "read:records:*", "--audience", "ehr-api"]));
    const asApp = { BATON_ADDR: b.address, BATON_CLIENT_ID: created.app_id, BATON_CLIENT_SECRET: created.client_secret };
    const issue = async (task: string) => JSON.parse(await ok(["token", "issue", "--task", task, "--scope", "read:records:P-1", "--audience", "ehr-api"], asApp));
    const validate = (token: string) => baton(["token", "validate", token, "--audience", "ehr-api"], operator);
    const a = await issue("task-a");
    const t1 = await issue("task-b");
    const t2 = await issue("task-b");
    const c = await issue("task-c");
    for (const t of [a, t1, t2, c]) expect((await validate(t.access_token)).code).toBe(0);

    const byAgent = JSON.parse(await ok(["token", "revoke", a.agent_id, "--target", "agent", "--reason", "cli test"]));
    expect(byAgent.revoked).toBe(a.agent_id);
    const va = await validate(a.access_token);
    expect(va.code).toBe(1);
    expect(JSON.parse(va.stdout)).toMatchObject({ valid: false, status: "TOKEN_STATUS_REVOKED" });

    await ok(["token", "revoke", "task-b", "--target", "task", "--app", created.app_id]);
    for (const t of [t1, t2]) expect(JSON.parse((await validate(t.access_token)).stdout).status).toBe("TOKEN_STATUS_REVOKED");
    expect((await validate(c.access_token)).code).toBe(0);

    // As the app (its credentials in the environment), by token id as before.
    await ok(["token", "revoke", c.token_id], asApp);
    expect((await validate(c.access_token)).code).toBe(1);
  }, 180_000);

  it("--output table prints aligned columns for lists", async () => {
    await ok(["app", "create", "--name", "table-a", "--scope", "read:x:*", "--audience", "x-api"]);
    await ok(["app", "create", "--name", "a-much-longer-table-name", "--scope", "read:x:*", "--scope", "read:y:*", "--audience", "x-api"]);
    const out = await ok(["app", "list", "--output", "table"]);
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^APP_ID\s+NAME\s+DISABLED\s+SCOPE_CEILING\s+AUDIENCES$/);
    const columns = ["NAME", "DISABLED", "SCOPE_CEILING", "AUDIENCES"].map((h) => lines[0]!.indexOf(h));
    const rows = lines.slice(1);
    expect(rows.length).toBeGreaterThanOrEqual(2);
    for (const row of rows) {
      expect(row).toMatch(/^app_[0-9A-Za-z]{22} /);
      // Each value starts exactly under its header, after at least two spaces.
      for (const at of columns) expect(row.slice(at - 2, at + 1)).toMatch(/^ {2}\S$/);
    }
    expect(rows.some((r) => r.includes("a-much-longer-table-name") && r.includes("read:x:*,read:y:*"))).toBe(true);
    expect(out).not.toContain("{");
  }, 120_000);
});

/** A self-signed P-256 certificate from openssl (node:crypto cannot make X.509 certificates). */
function selfSigned(dir: string, name: string, subject: string, san?: string): void {
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", subject,
    ...(san ? ["-addext", `subjectAltName=${san}`] : []),
    "-keyout", join(dir, `${name}-key.pem`), "-out", join(dir, `${name}.pem`),
  ], { stdio: "pipe" });
}

describe("TLS", () => {
  let dir: string;
  let tls: TestBroker;
  let mtls: TestBroker;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "baton-cli-tls-"));
    selfSigned(dir, "server", "/CN=localhost", "IP:127.0.0.1,DNS:localhost");
    selfSigned(dir, "client", "/CN=baton-cli");
    const server = { BATON_TLS_CERT_FILE: join(dir, "server.pem"), BATON_TLS_KEY_FILE: join(dir, "server-key.pem") };
    tls = await startTestBroker(server);
    // Mutual TLS: the broker trusts the client's self-signed certificate as its CA.
    mtls = await startTestBroker({ ...server, BATON_TLS_CLIENT_CA_FILE: join(dir, "client.pem") });
  });
  afterAll(async () => {
    await tls?.stop();
    await mtls?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("mutual TLS: --cert/--key are presented; without them the broker refuses the handshake", async () => {
    const env = { BATON_OPERATOR_TOKEN: OPERATOR_TOKEN, BATON_ADDR: mtls.address };
    const ca = ["--ca", join(dir, "server.pem")];
    const withCert = await baton(["key", "list", ...ca, "--cert", join(dir, "client.pem"), "--key", join(dir, "client-key.pem")], env);
    expect(withCert.code, withCert.stderr).toBe(0);
    expect(withCert.stdout).toContain('"state": "ACTIVE"');
    const without = await baton(["key", "list", ...ca], env);
    expect(without.code).toBe(1);
    expect(without.stderr).toMatch(/^baton: /);
  }, 120_000);

  it("app list --tls --ca cert.pem talks to a TLS broker; plaintext does not", async () => {
    const env = { BATON_OPERATOR_TOKEN: OPERATOR_TOKEN };
    const create = await baton(["--addr", tls.address, "app", "create", "--name", "over-tls", "--scope", "read:x:*", "--audience", "x-api", "--ca", join(dir, "server.pem")], env);
    expect(create.code, create.stderr).toBe(0);
    const created = JSON.parse(create.stdout);
    const r = await baton(["app", "list", "--tls", "--ca", join(dir, "server.pem"), "--addr", tls.address], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`"app_id": "${created.app_id}"`);
    const plain = await baton(["app", "list", "--addr", tls.address], env);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(/^baton: /);
    const missingCa = await baton(["app", "list", "--ca", join(dir, "nope.pem"), "--addr", tls.address], env);
    expect(missingCa.code).toBe(2);
    expect(missingCa.stderr).toContain("option '--ca'");
  }, 120_000);
});
