#!/usr/bin/env node
// The `baton` command. Runs the TypeScript sources through tsx's loader, so
// there is no build step between editing and running.
import { register } from "tsx/esm/api";

register();
await import("../server/cli.ts");
