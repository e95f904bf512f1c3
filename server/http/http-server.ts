// HTTP for operations: liveness, readiness, Prometheus metrics and the JWKS
// (so any standard JWT library can verify Baton tokens).

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface HttpDeps {
  readonly jwksJson: () => string;
  readonly ready: () => Promise<boolean>;
  /** /readyz answers 503 when `ready` has not answered within this. */
  readonly readyTimeoutMs: number;
  readonly metrics: () => Promise<string>;
  readonly metricsContentType: string;
}

export function createHttpServer(deps: HttpDeps): Server {
  return createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const send = (code: number, type: string, body: string, extra: Record<string, string> = {}): void => {
      res.writeHead(code, { "content-type": type, "cache-control": "no-store", ...extra });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") return send(405, "text/plain", "method not allowed\n", { allow: "GET, HEAD" });
    switch (path) {
      case "/healthz":
        return send(200, "text/plain", "ok\n");
      case "/readyz": {
        // A hung database must not hang the probe: a load balancer needs a fast "no".
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), deps.readyTimeoutMs);
        });
        Promise.race([deps.ready(), late])
          .then(
            (ok) => send(ok ? 200 : 503, "text/plain", ok ? "ready\n" : "not ready\n"),
            () => send(503, "text/plain", "not ready\n"),
          )
          .finally(() => clearTimeout(timer));
        return;
      }
      case "/metrics":
        deps.metrics().then(
          (body) => send(200, deps.metricsContentType, body),
          () => send(500, "text/plain", "metrics unavailable\n"),
        );
        return;
      case "/.well-known/jwks.json":
        // Short cache: verifiers refetch on an unknown kid anyway.
        return send(200, "application/jwk-set+json", deps.jwksJson(), { "cache-control": "public, max-age=60" });
      default:
        return send(404, "text/plain", "not found\n");
    }
  });
}

export function listenHttp(server: Server, address: string): Promise<number> {
  const i = address.lastIndexOf(":");
  const host = address.slice(0, i).replace(/^\[|\]$/g, "");
  const port = Number(address.slice(i + 1));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}
