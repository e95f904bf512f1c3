// RetryInfo on BatonError: the delay a RATE_LIMITED or AUTHENTICATION_THROTTLED
// refusal carries, decoded from the status trailer. A fake BrokerService on
// loopback sends hand-built trailers through real gRPC, so every shape
// (present, absent, malformed, with or without ErrorInfo) is exercised as
// the SDK will meet it; the live broker's own RATE_LIMITED is in admin.test.ts.

import { Metadata, Server, ServerCredentials, status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BatonError, BrokerClient, ErrorReason, reasonOf } from "../src/index.js";
import { BrokerServiceService } from "../src/gen/baton/v1/broker.js";
import { ErrorInfo, RetryInfo } from "../src/gen/google/rpc/error_details.js";
import type { Any } from "../src/gen/google/protobuf/any.js";
import { Status } from "../src/gen/google/rpc/status.js";

const ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo";
const RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo";

/** The trailer the next call is refused with; set by each test. */
let next: { code: status; details: Buffer | null } = { code: status.INTERNAL, details: null };
let server: Server;
let client: BrokerClient;

beforeAll(async () => {
  server = new Server();
  const refuse = (_call: unknown, cb: (err: Partial<ServiceError>) => void): void => {
    const metadata = new Metadata();
    if (next.details) metadata.set("grpc-status-details-bin", next.details);
    cb({ code: next.code, details: "refused", metadata });
  };
  server.addService(BrokerServiceService, { issue: refuse, validate: refuse, revokeMany: refuse });
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
  client = new BrokerClient(`127.0.0.1:${port}`);
});
afterAll(async () => {
  client?.close();
  await new Promise<void>((res) => server?.tryShutdown(() => res()));
});

const info = (reason: string): Any => ({ typeUrl: ERROR_INFO, value: Buffer.from(ErrorInfo.encode({ reason, domain: "baton.dev", metadata: { app_id: "app_x" } }).finish()) });
const retry = (seconds: number, nanos: number): Any => ({ typeUrl: RETRY_INFO, value: Buffer.from(RetryInfo.encode({ retryDelay: { seconds, nanos } }).finish()) });
const trailer = (code: status, details: Any[]): Buffer => Buffer.from(Status.encode({ code, message: "refused", details }).finish());

async function refused(): Promise<BatonError> {
  try {
    await client.issue({ clientId: "app_x", clientSecret: "s" }, { taskId: "t", scopes: ["read:records:P-1"], audiences: ["ehr-api"] });
  } catch (err) {
    expect(err).toBeInstanceOf(BatonError);
    return err as BatonError;
  }
  throw new Error("expected a refusal");
}

describe("BatonError.retryAfterMs", () => {
  it.each([
    ["RATE_LIMITED", 1, 250_000_000, 1250],
    ["AUTHENTICATION_THROTTLED", 30, 0, 30_000],
    // A fraction of a millisecond rounds up: retrying at the advised moment must not be early.
    ["RATE_LIMITED", 0, 1, 1],
  ])("exposes the RetryInfo delay of %s (%ds + %dns = %dms)", async (reason, seconds, nanos, ms) => {
    next = { code: status.RESOURCE_EXHAUSTED, details: trailer(status.RESOURCE_EXHAUSTED, [info(reason), retry(seconds, nanos)]) };
    const e = await refused();
    expect(e.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(e.reason).toBe(reason);
    expect(e.retryAfterMs).toBe(ms);
    expect(e.metadata).toEqual({ app_id: "app_x" });
  });

  it("reads RetryInfo whichever order the details come in", async () => {
    next = { code: status.RESOURCE_EXHAUSTED, details: trailer(status.RESOURCE_EXHAUSTED, [retry(2, 0), info("RATE_LIMITED")]) };
    const e = await refused();
    expect([e.reason, e.retryAfterMs]).toEqual(["RATE_LIMITED", 2000]);
  });

  it("is undefined when the error carries no RetryInfo", async () => {
    next = { code: status.PERMISSION_DENIED, details: trailer(status.PERMISSION_DENIED, [info("SCOPE_NOT_COVERED")]) };
    const e = await refused();
    expect(e.reason).toBe("SCOPE_NOT_COVERED");
    expect(e.retryAfterMs).toBeUndefined();
  });

  it("is undefined for a negative delay, and a malformed trailer leaves both details out", async () => {
    next = { code: status.RESOURCE_EXHAUSTED, details: trailer(status.RESOURCE_EXHAUSTED, [info("RATE_LIMITED"), retry(-5, 0)]) };
    expect((await refused()).retryAfterMs).toBeUndefined();
    const broken = { typeUrl: RETRY_INFO, value: Buffer.from([0x0a, 0xff]) };
    next = { code: status.RESOURCE_EXHAUSTED, details: trailer(status.RESOURCE_EXHAUSTED, [info("RATE_LIMITED"), broken]) };
    const e = await refused();
    expect(e.code).toBe(status.RESOURCE_EXHAUSTED);
    expect([e.reason, e.retryAfterMs]).toEqual(["", undefined]);
  });

  it("is kept without a Baton ErrorInfo (a RetryInfo alone still advises the wait)", async () => {
    next = { code: status.RESOURCE_EXHAUSTED, details: trailer(status.RESOURCE_EXHAUSTED, [retry(3, 0)]) };
    const e = await refused();
    expect([e.reason, e.retryAfterMs]).toEqual(["", 3000]);
  });

  it("is undefined for errors raised by gRPC itself", async () => {
    next = { code: status.UNAVAILABLE, details: null };
    const e = await refused();
    expect(e.code).toBe(status.UNAVAILABLE);
    expect(e.retryAfterMs).toBeUndefined();
  });
});

describe("new error reasons", () => {
  it.each([
    ["RATE_LIMITED", ErrorReason.ERROR_REASON_RATE_LIMITED, 26],
    ["AUTHENTICATION_THROTTLED", ErrorReason.ERROR_REASON_AUTHENTICATION_THROTTLED, 27],
    ["AUDIENCE_NOT_SERVED", ErrorReason.ERROR_REASON_AUDIENCE_NOT_SERVED, 28],
    ["RESOURCE_SERVER_DISABLED", ErrorReason.ERROR_REASON_RESOURCE_SERVER_DISABLED, 29],
  ])("maps %s to ErrorReason %s (%d) and back", async (reason, value, number) => {
    expect(value).toBe(number);
    expect(reasonOf(value)).toBe(reason);
    next = { code: status.PERMISSION_DENIED, details: trailer(status.PERMISSION_DENIED, [info(reason)]) };
    const e = await refused();
    expect(e.reason).toBe(reason);
    expect(e.errorReason).toBe(value);
  });
});
