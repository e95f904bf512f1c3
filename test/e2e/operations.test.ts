// Operating the broker: app listing with page tokens, EdDSA signing,
// server reflection (what grpcurl uses), and logs that never hold a secret.

import { credentials, loadPackageDefinition, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RevocationTarget, TokenStatus } from "../../server/gen/baton/v1/broker.js";
import { createLogger } from "../../server/telemetry/logger.js";
import { call, createApp, issueRequest, operatorMd, refusal, startTestBroker, type TestBroker } from "../helpers/broker.js";

const logLines: string[] = [];
let b: TestBroker;

beforeAll(async () => {
  b = await startTestBroker({ BATON_SIGNING_ALGORITHM: "EdDSA" }, undefined, createLogger("debug", (l) => logLines.push(l)));
});
afterAll(async () => b?.stop());

describe("apps", () => {
  it("lists every app exactly once across pages, and gets one by id", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) ids.add((await createApp(b, { name: `page-app-${i}` })).appId);
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const res = await call(b.admin.listApps, b.admin, { pageSize: 3, pageToken }, operatorMd());
      expect(res.apps.length).toBeLessThanOrEqual(3);
      seen.push(...res.apps.map((a) => a.appId));
      pageToken = res.nextPageToken;
      pages += 1;
    } while (pageToken);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(new Set(seen).size).toBe(seen.length);
    for (const id of ids) expect(seen).toContain(id);
    const one = await call(b.admin.getApp, b.admin, { appId: [...ids][0]! }, operatorMd());
    expect(one.app!.name).toBe("page-app-0");
    expect((await refusal(call(b.admin.getApp, b.admin, { appId: "app_nope" }, operatorMd()))).reason).toBe("NOT_FOUND");
    expect((await refusal(call(b.admin.listApps, b.admin, { pageSize: 3, pageToken: "garbage!" }, operatorMd()))).reason).toBe("INVALID_REQUEST");
  });

  it("refuses a second app with the same name", async () => {
    await createApp(b, { name: "unique-name" });
    const e = await refusal(createApp(b, { name: "unique-name" }));
    expect(e.reason).toBe("ALREADY_EXISTS");
  });
});

describe("EdDSA", () => {
  it("signs with Ed25519 when configured, and validates", async () => {
    const app = await createApp(b, { ceiling: ["read:records:*"], audiences: ["ehr-api"] });
    const t = await call(b.client.issue, b.client, issueRequest({ taskId: "t", scopes: ["read:records:1"] }), app.md);
    expect(JSON.parse(Buffer.from(t.accessToken.split(".")[0]!, "base64url").toString())).toMatchObject({ alg: "EdDSA" });
    const v = await call(b.client.validate, b.client, { token: t.accessToken, audience: "ehr-api", requiredScopes: [] }, app.md);
    expect(v.status).toBe(TokenStatus.TOKEN_STATUS_VALID);
    await call(b.client.revoke, b.client, { target: RevocationTarget.REVOCATION_TARGET_TOKEN, id: t.claims!.tokenId, appId: "", reason: "" }, app.md);
    // A refusal, so the logs below also hold a refused request.
    await refusal(call(b.client.issue, b.client, issueRequest({ taskId: "t", scopes: ["write:x:1"] }), app.md));
    const logs = logLines.join("");
    expect(logs).toContain("broker ready");
    expect(logs).toContain("request refused");
    expect(logs).not.toContain(t.accessToken.split(".")[2]!);
    expect(logs).not.toContain(app.secret);
    expect(logs).not.toContain("bop_test_operator");
    for (const line of logLines) expect(() => JSON.parse(line)).not.toThrow();
  });
});

describe("server reflection", () => {
  it("lists the Baton services, as grpcurl would see them", async () => {
    const require = createRequire(import.meta.url);
    const protoDir = join(dirname(require.resolve("@grpc/reflection/package.json")), "build", "proto");
    const def = loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [protoDir], keepCase: true });
    const pkg = loadPackageDefinition(def) as unknown as {
      grpc: { reflection: { v1: { ServerReflection: new (addr: string, c: ReturnType<typeof credentials.createInsecure>) => {
        ServerReflectionInfo(): NodeJS.ReadWriteStream & { write(m: unknown): void; end(): void; on(e: string, f: (x: never) => void): void };
        close(): void;
      } } } };
    };
    const client = new pkg.grpc.reflection.v1.ServerReflection(b.address, credentials.createInsecure());
    const names = await new Promise<string[]>((resolve, reject) => {
      const stream = client.ServerReflectionInfo();
      stream.on("data", (res: { list_services_response?: { service: { name: string }[] } }) => {
        resolve((res.list_services_response?.service ?? []).map((s) => s.name));
        stream.end();
      });
      stream.on("error", (e: ServiceError) => reject(e));
      stream.write({ list_services: "" });
    });
    client.close();
    expect(names).toEqual(expect.arrayContaining(["baton.v1.BrokerService", "baton.v1.AdminService"]));
  });
});
