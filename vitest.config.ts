import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "sdk/ts/test/**/*.test.ts"],
    // One real PostgreSQL for the run; each test file gets a fresh database
    // cloned from a migrated template (test/helpers/database.ts).
    globalSetup: ["test/helpers/global-setup.ts"],
    pool: "forks",
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
