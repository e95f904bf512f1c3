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
