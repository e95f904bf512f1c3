// The retention settings (BATON_GRANT_RETENTION_SECONDS and friends): their
// defaults, and the values refused because they would break revocation or
// prune audit events almost as soon as they are written.

import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/config.js";

const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
};

describe("retention configuration", () => {
  it("defaults: grants kept an hour past expiry, audit kept forever, a pass a minute in batches of 1000", () => {
    expect(loadConfig({}).retention).toEqual({ grantSeconds: 3600, auditSeconds: 0, auditExportDir: null, intervalSeconds: 60, batchSize: 1000 });
  });

  it("reads every variable", () => {
    expect(loadConfig({
      BATON_GRANT_RETENTION_SECONDS: "30",
      BATON_AUDIT_RETENTION_SECONDS: "7776000",
      BATON_AUDIT_EXPORT_DIR: "/var/lib/baton/audit",
      BATON_RETENTION_INTERVAL_SECONDS: "5",
      BATON_RETENTION_BATCH_SIZE: "10",
    }).retention).toEqual({ grantSeconds: 30, auditSeconds: 7_776_000, auditExportDir: "/var/lib/baton/audit", intervalSeconds: 5, batchSize: 10 });
  });

  it("refuses a grant retention shorter than the leeway, a too-short audit retention and empty batches", () => {
    expect(problems({ BATON_GRANT_RETENTION_SECONDS: "60", BATON_LEEWAY_SECONDS: "120" })).toEqual([
      "BATON_GRANT_RETENTION_SECONDS must be at least BATON_LEEWAY_SECONDS (120)",
    ]);
    expect(problems({ BATON_GRANT_RETENTION_SECONDS: "10" })[0]).toMatch(/^BATON_GRANT_RETENTION_SECONDS must be an integer from 30/);
    expect(problems({ BATON_AUDIT_RETENTION_SECONDS: "59" })).toEqual(["BATON_AUDIT_RETENTION_SECONDS must be 0 (keep forever) or at least 60"]);
    expect(problems({ BATON_RETENTION_BATCH_SIZE: "0" })[0]).toMatch(/^BATON_RETENTION_BATCH_SIZE must be an integer from 1/);
    expect(problems({ BATON_RETENTION_INTERVAL_SECONDS: "0" })[0]).toMatch(/^BATON_RETENTION_INTERVAL_SECONDS must be an integer from 1/);
  });
});
