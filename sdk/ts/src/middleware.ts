// Resource-server middleware on top of TokenVerifier: a grpc-js server
// interceptor and a Node http / Express-style `(req, res, next)` middleware.
// Both read `authorization: Bearer <token>` and, for key-bound tokens, a
// proof of possession, verify them, refuse the call or hand the verified
// claims to the handler (grpcClaims(call), httpClaims(req)).
//
// The proof's `htm`, which binds it to one call:
//   gRPC: the full method path, `/pkg.Service/Method`, as for the broker's
//         own methods; the proof travels in `baton-proof` metadata.
//   HTTP: `"<METHOD> <path>"`, for example `"GET /records/P-1"`: the method
//         in upper case, one space, and the request path as sent, without
//         query or fragment (as DPoP's htu leaves them out, so a proxy
//         re-encoding or reordering the query breaks nothing). Under Express
//         the full `originalUrl` is used, not the router-relative `url`.
//         The proof travels in the `Baton-Proof` header. `httpHtm` builds the
//         value on both sides.
//
// Refusals:
//   | verifier reason                 | gRPC status       | HTTP |
//   | no or non-Bearer authorization  | UNAUTHENTICATED   | 401 (WWW-Authenticate: Bearer) |
//   | INSUFFICIENT_SCOPE              | PERMISSION_DENIED | 403 insufficient_scope |
//   | STALE (revocation view too old) | UNAVAILABLE       | 503, Retry-After: 1 |
//   | any other                       | UNAUTHENTICATED   | 401 invalid_token |
// STALE is the resource server's own trouble, not the caller's, and retrying
// (perhaps on another instance) can succeed: hence UNAVAILABLE / 503.
// gRPC refusals carry a google.rpc.ErrorInfo (domain baton.dev) like the
// broker's: CREDENTIALS_MISSING, PROOF_REQUIRED, PROOF_INVALID,
// PROOF_REPLAYED, UNAVAILABLE, or TOKEN_INVALID with metadata `token_status`.
//
// Given an AccessReporter (option `reporter`), both report every decision
// about a token whose signature verified: allowed, with the status the call
// ended with as outcome (gRPC code name, HTTP status), or denied, with the
// reason (`TOKEN_STATUS_<status>` for a TokenStatus, else the verifier's
// reason: STALE, PROOF_REQUIRED, ...) and the refusal's status. The resource
// is the method path (gRPC) or the htm (`GET /records/P-1`); the scope, the
// first the call needed. report() only buffers, so reporting adds no I/O to
// the call. A request with no token, or one whose signature did not verify,
// names no trustworthy token and agent and is not reported.

import { Metadata, ServerInterceptingCall, status, type ServerInterceptor } from "@grpc/grpc-js";
import type { IncomingMessage, ServerResponse } from "node:http";
import { optionalStringList, stringList } from "./args.js";
import { ERROR_DOMAIN } from "./errors.js";
import { ErrorInfo } from "./gen/google/rpc/error_details.js";
import { Status } from "./gen/google/rpc/status.js";
import { PROOF_METADATA_KEY } from "./proof.js";
import type { AccessReporter } from "./reporter.js";
import type { TokenVerifier, VerifiedClaims, VerifyFailureReason } from "./verifier.js";

/** The HTTP header that carries a proof of possession. */
export const PROOF_HEADER = "baton-proof";

const grpcVerified = new WeakMap<Metadata, VerifiedClaims>();
const httpVerified = new WeakMap<IncomingMessage, VerifiedClaims>();

/** The claims the interceptor verified for this call (pass the handler's `call`); undefined for a public method. */
export function grpcClaims(call: { readonly metadata: Metadata }): VerifiedClaims | undefined {
  return grpcVerified.get(call.metadata);
}

/** The claims the HTTP middleware verified for this request; undefined when it did not run. */
export function httpClaims(req: IncomingMessage): VerifiedClaims | undefined {
  return httpVerified.get(req);
}

/**
 * The `htm` of an HTTP call: `"<METHOD> <path>"`, without query or fragment.
 * `url` is a path (`/records/P-1?x=1`) or an absolute URL; an absolute URL is
 * normalised as `fetch` sends it.
 */
export function httpHtm(method: string, url: string): string {
  const path = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? new URL(url).pathname : (url.split(/[?#]/)[0] ?? "");
  return `${method.toUpperCase()} ${path || "/"}`;
}

/** The token of `authorization: Bearer <token>`; null when absent, repeated or another scheme. */
function bearerToken(values: readonly unknown[]): string | null {
  if (values.length !== 1 || typeof values[0] !== "string") return null;
  const m = /^Bearer +([^\s]+)\s*$/i.exec(values[0]);
  return m?.[1] ?? null;
}

/** The one proof sent: undefined when none, "" (refused as invalid) when several. */
function proofOf(values: readonly unknown[]): string | undefined {
  if (values.length === 0) return undefined;
  return values.length === 1 && typeof values[0] === "string" ? values[0] : "";
}

type Refusal = {
  readonly reason: VerifyFailureReason | "CREDENTIALS_MISSING";
  readonly detail: string;
  /** Set when the signature verified (an expired or revoked token, say). */
  readonly claims: VerifiedClaims | null;
};

/** The verified claims, or why not. */
async function check(verifier: TokenVerifier, token: string | null, proof: string | undefined, htm: string, requiredScopes: readonly string[]): Promise<VerifiedClaims | Refusal> {
  if (token === null) return { reason: "CREDENTIALS_MISSING", detail: "send authorization: Bearer <token>", claims: null };
  const r = await verifier.verify(token, { requiredScopes, proof, htm });
  return r.ok ? r.claims : r;
}

// Verifier reasons that are TokenStatus values, reported as `TOKEN_STATUS_<name>`.
const TOKEN_STATUSES = new Set<string>([
  "MALFORMED", "ALGORITHM_NOT_ALLOWED", "UNKNOWN_KEY", "BAD_SIGNATURE", "EXPIRED", "NOT_YET_VALID",
  "WRONG_ISSUER", "WRONG_AUDIENCE", "REVOKED", "INSUFFICIENT_SCOPE", "WRONG_TYPE",
]);

/** Reports one decision when there is a reporter and a verified token to report about. */
function reportDecision(
  reporter: AccessReporter | undefined,
  claims: VerifiedClaims | null,
  resource: string,
  scopes: readonly string[],
  outcome: string,
  refusal: Refusal["reason"] | null,
): void {
  if (!reporter || !claims) return;
  reporter.report({
    tokenId: claims.tokenId,
    agentId: claims.agentId,
    allowed: refusal === null,
    scope: scopes[0] ?? "",
    resource,
    reason: refusal === null ? "" : TOKEN_STATUSES.has(refusal) ? `TOKEN_STATUS_${refusal}` : refusal,
    outcome,
  });
}

const isRefusal = (r: VerifiedClaims | Refusal): r is Refusal => "reason" in r;

function grpcCodeOf(reason: Refusal["reason"]): status {
  if (reason === "INSUFFICIENT_SCOPE") return status.PERMISSION_DENIED;
  if (reason === "STALE") return status.UNAVAILABLE;
  return status.UNAUTHENTICATED;
}

/** Trailers with a google.rpc.Status holding a Baton ErrorInfo, as the broker sends. */
function errorTrailers(code: status, message: string, reason: Refusal["reason"]): Metadata {
  const direct = ["CREDENTIALS_MISSING", "PROOF_REQUIRED", "PROOF_INVALID", "PROOF_REPLAYED"].includes(reason);
  const info = ErrorInfo.encode({
    reason: direct ? reason : reason === "STALE" ? "UNAVAILABLE" : "TOKEN_INVALID",
    domain: ERROR_DOMAIN,
    metadata: direct || reason === "STALE" ? {} : { token_status: reason },
  }).finish();
  const st = Status.encode({ code, message, details: [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(info) }] }).finish();
  const md = new Metadata();
  md.set("grpc-status-details-bin", Buffer.from(st));
  return md;
}

function messageOf(r: Refusal): string {
  if (r.reason === "CREDENTIALS_MISSING") return "credentials missing: send authorization: Bearer <token>";
  if (r.reason === "STALE") return "the service cannot check revocations right now; retry";
  return `token refused: ${r.reason}`;
}

/** Options of {@link batonServerInterceptor}. */
export interface GrpcAuthOptions {
  /** The scopes each method needs, by full path (`/pkg.Service/Method`), or a function of the path. A method not listed needs a valid token and no particular scope. */
  readonly requiredScopes?: Readonly<Record<string, readonly string[]>> | ((method: string) => readonly string[]);
  /** Full paths of methods that need no token at all (health checks, reflection). */
  readonly publicMethods?: readonly string[];
  /** Reports each decision (see the top of this file). */
  readonly reporter?: AccessReporter;
}

/**
 * A grpc-js server interceptor (`new Server({ interceptors: [batonServerInterceptor(verifier)] })`)
 * that verifies every call's token and proof before the handler runs, and
 * refuses the call otherwise. In the handler, `grpcClaims(call)` gives the claims.
 */
export function batonServerInterceptor(verifier: TokenVerifier, options: GrpcAuthOptions = {}): ServerInterceptor {
  const { requiredScopes } = options;
  // Checked here, at startup, not on the first call: a string would be a set of characters.
  if (typeof requiredScopes === "object" && requiredScopes !== null) {
    for (const [path, scopes] of Object.entries(requiredScopes)) stringList(scopes, `options.requiredScopes["${path}"]`);
  } else if (requiredScopes !== undefined && typeof requiredScopes !== "function") {
    throw new TypeError("options.requiredScopes must be an object of scope lists by method, or a function");
  }
  const scopesFor = (path: string): readonly string[] =>
    typeof requiredScopes === "function" ? requiredScopes(path) : (requiredScopes?.[path] ?? []);
  const publicMethods = new Set(optionalStringList(options.publicMethods, "options.publicMethods"));
  const reporter = checkedReporter(options.reporter);
  return (method, call) => {
    // The claims of an allowed call, reported when it ends, with its status.
    let allowed: { claims: VerifiedClaims; scopes: readonly string[] } | null = null;
    return new ServerInterceptingCall(call, {
      sendStatus: (st, next) => {
        if (allowed) reportDecision(reporter, allowed.claims, method.path, allowed.scopes, status[st.code] ?? String(st.code), null);
        allowed = null;
        next(st);
      },
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, pass) => {
            if (publicMethods.has(method.path)) {
              pass(metadata);
              return;
            }
            // The handler waits: grpc-js holds the messages until the metadata is passed on.
            (async () => {
              const token = bearerToken(metadata.get("authorization"));
              const scopes = scopesFor(method.path);
              const r = await check(verifier, token, proofOf(metadata.get(PROOF_METADATA_KEY)), method.path, scopes);
              if (!isRefusal(r)) {
                grpcVerified.set(metadata, r);
                allowed = { claims: r, scopes };
                pass(metadata);
                return;
              }
              const code = grpcCodeOf(r.reason);
              const details = messageOf(r);
              reportDecision(reporter, r.claims, method.path, scopes, status[code] ?? String(code), r.reason);
              call.sendStatus({ code, details, metadata: errorTrailers(code, details, r.reason) });
            })().catch((err: unknown) => {
              process.emitWarning(`baton interceptor failed: ${err instanceof Error ? err.message : String(err)}`);
              call.sendStatus({ code: status.INTERNAL, details: "authentication failed", metadata: new Metadata() });
            });
          },
        }),
    });
  };
}

function checkedReporter(reporter: unknown): AccessReporter | undefined {
  if (reporter !== undefined && (typeof reporter !== "object" || reporter === null || typeof (reporter as AccessReporter).report !== "function")) {
    throw new TypeError("options.reporter must be an AccessReporter");
  }
  return reporter as AccessReporter | undefined;
}

/** Options of {@link batonHttpMiddleware}. */
export interface HttpAuthOptions {
  /** The scopes every request needs, or a function of the request. */
  readonly requiredScopes?: readonly string[] | ((req: IncomingMessage) => readonly string[]);
  /** The `htm` a proof must carry for this request; default `httpHtm(req.method, originalUrl ?? url)`. */
  readonly htm?: (req: IncomingMessage) => string;
  /** Reports each decision (see the top of this file). */
  readonly reporter?: AccessReporter;
}

/**
 * An HTTP middleware for Node's http server or Express:
 * `(req, res, next)`. It reads `Authorization: Bearer <token>` and
 * `Baton-Proof`, calls `next()` with the claims available through
 * `httpClaims(req)`, or answers 401 / 403 / 503 itself with a JSON body
 * `{ "error", "reason" }` and an RFC 6750 `WWW-Authenticate` header.
 */
export function batonHttpMiddleware(
  verifier: TokenVerifier,
  options: HttpAuthOptions = {},
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void {
  const { requiredScopes } = options;
  if (typeof requiredScopes !== "function") optionalStringList(requiredScopes, "options.requiredScopes");
  const htmOf = options.htm ?? ((req: IncomingMessage) => httpHtm(req.method ?? "GET", (req as { originalUrl?: string }).originalUrl ?? req.url ?? "/"));
  const reporter = checkedReporter(options.reporter);
  return (req, res, next) => {
    (async () => {
      const scopes = typeof requiredScopes === "function" ? requiredScopes(req) : (requiredScopes ?? []);
      const auth = req.headers.authorization;
      const proof = req.headers[PROOF_HEADER];
      const htm = htmOf(req);
      const r = await check(verifier, bearerToken(auth === undefined ? [] : [auth]), proofOf(proof === undefined ? [] : [proof].flat()), htm, scopes);
      if (!isRefusal(r)) {
        httpVerified.set(req, r);
        // Reported once the handler has answered, with its status.
        if (reporter) res.once("close", () => reportDecision(reporter, r, htm, scopes, String(res.statusCode), null));
        next();
        return;
      }
      let code = 401;
      let challenge = `Bearer error="invalid_token", error_description="${r.reason}"`;
      if (r.reason === "CREDENTIALS_MISSING") challenge = "Bearer";
      else if (r.reason === "INSUFFICIENT_SCOPE") [code, challenge] = [403, `Bearer error="insufficient_scope", scope="${scopes.join(" ")}"`];
      else if (r.reason === "STALE") [code, challenge] = [503, ""];
      const error = code === 403 ? "insufficient_scope" : code === 503 ? "temporarily_unavailable" : "invalid_token";
      res.statusCode = code;
      reportDecision(reporter, r.claims, htm, scopes, String(code), r.reason);
      if (challenge) res.setHeader("WWW-Authenticate", challenge);
      if (code === 503) res.setHeader("Retry-After", "1");
      res.setHeader("Content-Type", "application/json");
      res.setHeader("Cache-Control", "no-store");
      res.end(JSON.stringify({ error, reason: r.reason }));
    })().catch(next);
  };
}
