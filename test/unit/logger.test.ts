// The JSON logger's redaction: credential-named fields, and credentials
// inside free text (library messages, errors), whatever they contain.

import { describe, expect, it } from "vitest";
import { createLogger, redactCredentials } from "../../server/telemetry/logger.js";

const JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";

describe("redactCredentials", () => {
  it.each([
    [`Failed to add metadata entry authorization: Bearer ${JWT}\tmore. Illegal value`, JWT],
    ["Failed to add metadata entry authorization: Bearer sec ret\ttail", "sec ret"],
    ["authorization: Basic YXBwX3g6YnNlY19zZWNyZXQ=\u00e9", "YXBwX3g6YnNlY19zZWNyZXQ="],
    [`received headers {"content-type":"application/grpc","authorization":"Bearer ${JWT}","te":"trailers"}`, JWT],
    [`{"baton-proof":"${JWT}"}`, JWT],
    ["operator bop_Zx81kQ2mNp4r7s9tUvWxYz0123456789abcdef used", "bop_Zx81kQ2mNp4r7s9tUvWxYz0123456789abcdef"],
    ["secret bsec_AbC-123_xyz was shown", "bsec_AbC-123_xyz"],
    [`token ${JWT} in an error`, JWT],
  ])("%s", (text, secret) => {
    const out = redactCredentials(text);
    expect(out).not.toContain(secret);
    expect(out).toContain("redacted");
  });

  it("leaves text without credentials alone", () => {
    const text = 'request refused {"method":"Issue","reason":"SCOPE_NOT_COVERED","token_id":"Gsha1"}';
    expect(redactCredentials(text)).toBe(text);
  });
});

describe("createLogger", () => {
  it("redacts credentials in the message, string fields and error messages", () => {
    const lines: string[] = [];
    const log = createLogger("debug", (l) => lines.push(l));
    log.error(`grpc-js says Bearer ${JWT}`, { detail: `authorization: Basic abc`, error: new Error(`bad token ${JWT}`), client_secret: "bsec_x" });
    expect(lines).toHaveLength(1);
    for (const secret of [JWT, "abc", "bsec_x"]) expect(lines[0]).not.toContain(secret);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "error", client_secret: "[redacted]" });
  });
});

describe("errors, children and structure", () => {
  function throwsInternally(): never {
    const cause = Object.assign(new Error(`pg said no: password bsec_CauseSecret1 refused`), { code: "28P01" });
    throw new Error("could not mint", { cause });
  }

  it("logs a thrown error's stack and its cause chain, redacted", () => {
    const lines: string[] = [];
    const log = createLogger("info", (l) => lines.push(l));
    try {
      throwsInternally();
    } catch (err) {
      log.error("request failed", { error: err });
    }
    const line = JSON.parse(lines[0]!) as { error: { type: string; message: string; stack: string; cause: { message: string; code: string; stack: string } } };
    expect(line.error).toMatchObject({ type: "Error", message: "could not mint" });
    expect(line.error.stack).toContain("throwsInternally");
    expect(line.error.cause.code).toBe("28P01");
    expect(line.error.cause.message).toContain("pg said no");
    expect(line.error.cause.stack).toContain("throwsInternally");
    expect(lines[0]).not.toContain("CauseSecret1");
  });

  it("stops following a cycle of causes", () => {
    const lines: string[] = [];
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    (a as { cause?: unknown }).cause = b;
    createLogger("info", (l) => lines.push(l)).error("loop", { error: a });
    expect(lines).toHaveLength(1);
  });

  it("puts a child's bindings on every line, and honours the level", () => {
    const lines: string[] = [];
    const log = createLogger("info", (l) => lines.push(l)).child({ request_id: "r-1", authorization: "Bearer x" });
    log.debug("hidden");
    log.info("shown", { token_id: "Gsha1", nested: { client_secret: "bsec_nested", token: "raw" } });
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!);
    expect(line).toMatchObject({ level: "info", msg: "shown", request_id: "r-1", authorization: "[redacted]", token_id: "Gsha1" });
    expect(line.nested).toEqual({ client_secret: "[redacted]", token: "[redacted]" });
    expect(typeof line.time).toBe("string");
    // The message comes before the fields (scripts find "broker ready" lines by it).
    expect(lines[0]).toMatch(/"msg":"shown".*"token_id"/);
  });
});
