// BATON_MAX_TASK_SECONDS (issue 8): the task lifetime maximum of apps that
// set none; 8 hours by default, 1 second to 30 days, and a known variable.

import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../server/config.js";

describe("BATON_MAX_TASK_SECONDS", () => {
  it("defaults to 8 hours and takes whole seconds up to 30 days", () => {
    expect(loadConfig({}).maxTaskSeconds).toBe(28_800);
    expect(loadConfig({ BATON_MAX_TASK_SECONDS: "60" }).maxTaskSeconds).toBe(60);
    expect(loadConfig({ BATON_MAX_TASK_SECONDS: "2592000" }).maxTaskSeconds).toBe(2_592_000);
    expect(loadConfig({ BATON_MAX_TASK_SECONDS: "60" }).warnings).toEqual([]);
  });

  it("refuses values outside 1 s .. 30 days, naming the variable", () => {
    for (const bad of ["0", "2592001", "1.5", "-3", "8h"]) {
      expect(() => loadConfig({ BATON_MAX_TASK_SECONDS: bad }), bad).toThrow(ConfigError);
      try {
        loadConfig({ BATON_MAX_TASK_SECONDS: bad });
      } catch (err) {
        expect((err as ConfigError).problems.join()).toContain("BATON_MAX_TASK_SECONDS");
      }
    }
  });
});
