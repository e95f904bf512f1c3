// Who is calling. The transport extracts raw credentials from metadata; this
// file turns them into a principal, or refuses.

import { timingSafeEqual, createHash } from "node:crypto";
import {
  AppDisabledError,
  ApproverDisabledError,
  CredentialsInvalidError,
  CredentialsMissingError,
  NotPermittedError,
  ResourceServerDisabledError,
} from "../domain/errors.js";
import type { TokenClaims } from "../domain/tokens.js";
import { APP_ID, APPROVER_ID, RESOURCE_SERVER_ID, secretMatches } from "../crypto/secrets.js";
import type { AppRecord } from "../storage/apps.js";
import type { ApproverRecord } from "../storage/approvers.js";
import type { ResourceServerRecord } from "../storage/resource-servers.js";

/** Credentials as they arrived, not yet checked. */
export type Credentials =
  | { readonly kind: "none" }
  | { readonly kind: "basic"; readonly clientId: string; readonly clientSecret: string }
  | { readonly kind: "bearer"; readonly token: string; readonly proof: string | null }
  | { readonly kind: "malformed" };

export type Principal =
  | { readonly kind: "operator" }
  | { readonly kind: "app"; readonly app: AppRecord }
  | { readonly kind: "resourceServer"; readonly resourceServer: ResourceServerRecord }
  | { readonly kind: "agent"; readonly claims: TokenClaims; readonly token: string }
  | { readonly kind: "approver"; readonly approver: ApproverRecord };

export function actorOf(p: Principal): string {
  switch (p.kind) {
    case "operator":
      return "operator";
    case "app":
      return `app:${p.app.appId}`;
    case "resourceServer":
      return `resource_server:${p.resourceServer.resourceServerId}`;
    case "agent":
      return `agent:${p.claims.agentId}`;
    case "approver":
      return `approver:${p.approver.approverId}`;
  }
}

export interface Authenticator {
  /** Looks up an app by client id. */
  findApp(appId: string): Promise<AppRecord | null>;
  /** Looks up a resource server by client id. */
  findResourceServer(id: string): Promise<ResourceServerRecord | null>;
  /** Looks up an approver by client id. */
  findApprover(id: string): Promise<ApproverRecord | null>;
  /**
   * Verifies an agent token (signature, lifetime, revocation) and, when it is
   * key-bound, the proof of possession for `method`; returns its claims or
   * throws.
   */
  verifyAgentToken(token: string, proof: string | null, method: string): Promise<TokenClaims>;
  readonly operatorTokenHash: Buffer;
}

const sha256 = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

export function isOperatorToken(token: string, operatorTokenHash: Buffer): boolean {
  return timingSafeEqual(sha256(token), operatorTokenHash);
}

export type Allowed = "operator" | "app" | "resourceServer" | "agent" | "approver";

const EXPECTED: Record<Allowed, string> = {
  operator: "the operator Bearer credential",
  app: "Basic client credentials of an app",
  resourceServer: "Basic client credentials of a resource server",
  agent: "an agent Bearer token",
  approver: "Basic client credentials of an approver",
};

/** Authenticates `creds` as one of the allowed kinds of principal. */
export async function authenticate(
  auth: Authenticator,
  creds: Credentials,
  allowed: readonly Allowed[],
  method: string,
): Promise<Principal> {
  const expected = allowed.map((a) => EXPECTED[a]).join(" or ");
  switch (creds.kind) {
    case "none":
      throw new CredentialsMissingError(expected);
    case "malformed":
      throw new CredentialsInvalidError();
    case "basic": {
      // The client id's prefix says which kind of principal it claims to be.
      if (creds.clientId.startsWith("rs_")) {
        if (!allowed.includes("resourceServer")) throw new NotPermittedError(`this method needs ${expected}`);
        const rs = RESOURCE_SERVER_ID.test(creds.clientId) ? await auth.findResourceServer(creds.clientId) : null;
        // Hash the secret even for an unknown id, so timing does not tell which ids exist.
        const ok = secretMatches(creds.clientSecret, rs?.secretHash ?? Buffer.alloc(32));
        if (!rs || !ok) throw new CredentialsInvalidError();
        if (rs.disabled) throw new ResourceServerDisabledError();
        return { kind: "resourceServer", resourceServer: rs };
      }
      if (creds.clientId.startsWith("apv_")) {
        if (!allowed.includes("approver")) throw new NotPermittedError(`this method needs ${expected}`);
        const a = APPROVER_ID.test(creds.clientId) ? await auth.findApprover(creds.clientId) : null;
        // Hash the secret even for an unknown id, so timing does not tell which ids exist.
        const ok = secretMatches(creds.clientSecret, a?.secretHash ?? Buffer.alloc(32));
        if (!a || !ok) throw new CredentialsInvalidError();
        if (a.disabled) throw new ApproverDisabledError();
        return { kind: "approver", approver: a };
      }
      if (!allowed.includes("app")) throw new NotPermittedError(`this method needs ${expected}`);
      const app = APP_ID.test(creds.clientId) ? await auth.findApp(creds.clientId) : null;
      // Hash the secret even for an unknown app, so timing does not tell which ids exist.
      const ok = secretMatches(creds.clientSecret, app?.secretHash ?? Buffer.alloc(32));
      if (!app || !ok) throw new CredentialsInvalidError();
      if (app.disabled) throw new AppDisabledError();
      return { kind: "app", app };
    }
    case "bearer": {
      if (isOperatorToken(creds.token, auth.operatorTokenHash)) {
        if (!allowed.includes("operator")) throw new NotPermittedError(`this method needs ${expected}`);
        return { kind: "operator" };
      }
      if (!allowed.includes("agent")) {
        // Not the operator credential; an agent token is not accepted here.
        if (creds.token.split(".").length === 3) throw new NotPermittedError(`this method needs ${expected}`);
        throw new CredentialsInvalidError();
      }
      const claims = await auth.verifyAgentToken(creds.token, creds.proof, method);
      return { kind: "agent", claims, token: creds.token };
    }
  }
}

export { sha256 as hashOperatorToken };
