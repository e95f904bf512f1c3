#!/usr/bin/env node
// The container's health check (slim images have no curl): GET /readyz on the
// port of BATON_HTTP_LISTEN, exit 0 when ready, 1 otherwise. A wildcard
// listen address (0.0.0.0, [::]) is checked on the loopback.
const listen = process.env.BATON_HTTP_LISTEN ?? "127.0.0.1:8080";
const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(listen);
if (!m) {
  console.error(`healthcheck: BATON_HTTP_LISTEN is "${listen}": no HTTP server to check`);
  process.exit(1);
}
const host = m[1] === "0.0.0.0" ? "127.0.0.1" : m[1] === "[::]" ? "[::1]" : m[1];
try {
  const res = await fetch(`http://${host}:${m[2]}/readyz`, { signal: AbortSignal.timeout(2_000) });
  process.exit(res.ok ? 0 : 1);
} catch (err) {
  console.error(`healthcheck: ${err.message}`);
  process.exit(1);
}
