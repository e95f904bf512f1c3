#!/usr/bin/env node
// The `baton` command. In a checkout (server/ sources present) it runs the
// TypeScript through tsx's loader: no build step between editing and running,
// and never a stale build. Without the sources (an installed or packaged
// copy) it runs the compiled JavaScript from `npm run build`, with no
// transpiler at all; the container runs dist/server/cli.js directly.
import { existsSync } from "node:fs";

const source = new URL("../server/cli.ts", import.meta.url);
if (existsSync(source)) {
  const { register } = await import("tsx/esm/api");
  register();
  await import(source.href);
} else {
  await import(new URL("../dist/server/cli.js", import.meta.url).href);
}
