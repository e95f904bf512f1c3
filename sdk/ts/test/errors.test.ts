// Unit tests of BatonError and fromServiceError: decoding the
// google.rpc.Status + ErrorInfo trailer every Baton error carries.

import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { BatonError, ErrorReason, fromServiceError, reasonOf } from "../src/index.js";
import { ErrorInfo } from "../src/gen/google/rpc/error_details.js";
import { Status } from "../src/gen/google/rpc/status.js";

const INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo";

function serviceError(code: status, details: string, trailer?: Buffer): ServiceError {
  const metadata = new Metadata();
  if (trailer) metadata.set("grpc-status-details-bin", trailer);
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details, metadata });
}

function trailer(code: status, message: string, infos: ErrorInfo[]): Buffer {
  const details = infos.map((i) => ({ typeUrl: INFO_TYPE, value: Buffer.from(ErrorInfo.encode(i).finish()) }));
  return Buffer.from(Status.encode({ code, message, details }).finish());
}

describe("fromServiceError", () => {
  it("decodes the reason and metadata of a Baton error", () => {
    const msg = "requested scopes are not covered by the app's ceiling: write:crm:*";
    const meta = { excess_scopes: "write:crm:*", rule: "ceiling" };
    const e = fromServiceError(
      serviceError(status.PERMISSION_DENIED, msg, trailer(status.PERMISSION_DENIED, msg, [{ reason: "SCOPE_NOT_COVERED", domain: "baton.dev", metadata: meta }])),
    );
    expect(e).toBeInstanceOf(BatonError);
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe(status.PERMISSION_DENIED);
    expect(e.codeName).toBe("PERMISSION_DENIED");
    expect(e.reason).toBe("SCOPE_NOT_COVERED");
    expect(e.errorReason).toBe(ErrorReason.ERROR_REASON_SCOPE_NOT_COVERED);
    expect(e.metadata).toEqual(meta);
    expect(e.message).toBe(msg);
    expect(String(e)).toBe(`BatonError: PERMISSION_DENIED SCOPE_NOT_COVERED: ${msg}`);
  });

  it("ignores an ErrorInfo of another domain", () => {
    const t = trailer(status.UNAVAILABLE, "x", [{ reason: "RATE_LIMITED", domain: "proxy.example", metadata: {} }]);
    const e = fromServiceError(serviceError(status.UNAVAILABLE, "x", t));
    expect(e.reason).toBe("");
    expect(e.errorReason).toBe(ErrorReason.ERROR_REASON_UNSPECIFIED);
  });

  it.each([
    ["no trailer", undefined],
    ["an undecodable trailer", Buffer.from([0xff, 0xff, 0xff, 0x01])],
  ])("keeps code and message with %s", (_name, t) => {
    const e = fromServiceError(serviceError(status.DEADLINE_EXCEEDED, "Deadline exceeded", t));
    expect(e.code).toBe(status.DEADLINE_EXCEEDED);
    expect(e.reason).toBe("");
    expect(e.metadata).toEqual({});
    expect(e.message).toBe("Deadline exceeded");
  });

  it("returns a BatonError as is, and wraps anything else as UNKNOWN", () => {
    const b = new BatonError(status.NOT_FOUND, "no such token", "NOT_FOUND", { kind: "token" });
    expect(fromServiceError(b)).toBe(b);
    const u = fromServiceError(new RangeError("boom"));
    expect(u.code).toBe(status.UNKNOWN);
    expect(u.message).toBe("boom");
    expect(fromServiceError("weird").code).toBe(status.UNKNOWN);
  });

  it("maps an unknown reason to ERROR_REASON_UNSPECIFIED", () => {
    expect(new BatonError(status.INTERNAL, "x", "SOMETHING_NEW").errorReason).toBe(ErrorReason.ERROR_REASON_UNSPECIFIED);
  });
});

describe("reasonOf", () => {
  it("drops the ERROR_REASON_ prefix", () => {
    expect(reasonOf(ErrorReason.ERROR_REASON_PROOF_REQUIRED)).toBe("PROOF_REQUIRED");
    expect(reasonOf(ErrorReason.ERROR_REASON_PROOF_INVALID)).toBe("PROOF_INVALID");
  });
});
