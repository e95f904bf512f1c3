// Runs the Python and Go SDK tests against a live broker: starts an embedded
// PostgreSQL and a broker on loopback, registers an app and a resource
// server for its audience, and hands the address and credentials to
// scripts/sdk-test.sh through the environment. The app (BATON_CLIENT_ID)
// streams only its own revocations; the resource server (BATON_RS_ID) every
// revocation that can affect a token for BATON_AUDIENCE.
//
//   npx tsx test/sdk/run-live.ts                 # scripts/sdk-test.sh: Python and Go
//   npx tsx test/sdk/run-live.ts CMD [ARGS...]   # any command, with the same environment

import { credentials, Metadata } from "@grpc/grpc-js";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../server/config.js";
import { MasterKey } from "../../server/crypto/master-key.js";
import { AdminServiceClient } from "../../server/gen/baton/v1/admin.js";
import { startBroker } from "../../server/main.js";
import { startEmbedded } from "../../server/storage/embedded.js";
import { silentLogger } from "../../server/telemetry/logger.js";

const OPERATOR = `bop_${MasterKey.generate().replace(/[^A-Za-z0-9]/g, "")}`;

const dir = mkdtempSync(join(tmpdir(), "baton-sdk-"));
const pg = await startEmbedded({ dataDir: dir, persistent: false, unsafeFast: true });
let code = 1;
try {
  const broker = await startBroker(
    loadConfig({
      DATABASE_URL: pg.url("postgres"),
      BATON_MASTER_KEY: MasterKey.generate(),
      BATON_OPERATOR_TOKEN: OPERATOR,
      BATON_GRPC_LISTEN: "127.0.0.1:0",
      BATON_HTTP_LISTEN: "127.0.0.1:0",
    }),
    silentLogger,
  );
  try {
    const addr = `127.0.0.1:${broker.grpcPort}`;
    const admin = new AdminServiceClient(addr, credentials.createInsecure());
    const md = new Metadata();
    md.set("authorization", `Bearer ${OPERATOR}`);
    const created = await new Promise<{ appId: string; secret: string }>((resolve, reject) =>
      admin.createApp(
        { name: "sdk-live", scopeCeiling: ["read:records:*"], audiences: ["ehr-api"], maxTtl: undefined, maxDelegationDepth: 0, approvalPolicy: [], maxTaskLifetime: undefined },
        md,
        (err, res) => (err ? reject(err) : resolve({ appId: res.app!.appId, secret: res.clientSecret })),
      ),
    );
    const rs = await new Promise<{ id: string; secret: string }>((resolve, reject) =>
      admin.createResourceServer({ name: "sdk-live-rs", audiences: ["ehr-api"] }, md, (err, res) =>
        err ? reject(err) : resolve({ id: res.resourceServer!.resourceServerId, secret: res.clientSecret }),
      ),
    );
    admin.close();
    // Asynchronous: the broker runs in this process and must keep serving.
    const [cmd, ...args] = process.argv.length > 2 ? process.argv.slice(2) : ["bash", "scripts/sdk-test.sh"];
    const child = spawn(cmd!, args, {
      stdio: "inherit",
      env: {
        ...process.env,
        BATON_ADDR: addr,
        BATON_CLIENT_ID: created.appId,
        BATON_CLIENT_SECRET: created.secret,
        BATON_RS_ID: rs.id,
        BATON_RS_SECRET: rs.secret,
        // For the SDKs' admin clients (operator calls) in the live tests.
        BATON_OPERATOR_TOKEN: OPERATOR,
        BATON_AUDIENCE: "ehr-api",
        BATON_SCOPE: "read:records:P-1042",
        BATON_JWKS_URL: `http://127.0.0.1:${broker.httpPort}/.well-known/jwks.json`,
      },
    });
    code = await new Promise<number>((resolve) => child.on("close", (c) => resolve(c ?? 1)));
  } finally {
    await broker.stop();
  }
} finally {
  await pg.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
