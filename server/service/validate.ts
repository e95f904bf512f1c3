// Validate: the online check a resource server may ask for instead of
// verifying offline.

import { AudienceNotServedError, InvalidRequestError, NotPermittedError } from "../domain/errors.js";
import { requireAudiences, requireScopes } from "../domain/limits.js";
import { uncoveredScopes } from "../domain/scopes.js";
import type { TokenClaims } from "../domain/tokens.js";
import type { Principal } from "./principals.js";
import type { TokenChecker, Verdict } from "./token-check.js";

export interface ValidateInput {
  readonly token: string;
  readonly audience: string;
  readonly requiredScopes: readonly string[];
}

export class Validator {
  constructor(private readonly checker: TokenChecker) {}

  async validate(caller: Principal, input: ValidateInput): Promise<Verdict> {
    if (caller.kind === "agent") throw new NotPermittedError("validate needs app or operator credentials");
    if (input.audience === "") throw new InvalidRequestError("audience", "the audience you validate for is required");
    requireAudiences("audience", [input.audience]);
    const required = input.requiredScopes.length > 0 ? requireScopes("required_scopes", input.requiredScopes) : [];
    if (caller.kind === "resourceServer" && !caller.resourceServer.audiences.includes(input.audience)) {
      throw new AudienceNotServedError(input.audience);
    }
    const v = await this.checker.check(input.token);
    // Tenant isolation: a resource server learns nothing (claims, revocation)
    // about a token for none of its audiences, an app about a token of
    // another app. Decided once the signature verified: claims are known.
    if (v.claims && !answersFor(caller, v.claims)) return { status: "AUDIENCE_NOT_SERVED", claims: null };
    if (v.status !== "VALID" || !v.claims) return v;
    if (!v.claims.audiences.includes(input.audience)) return { status: "WRONG_AUDIENCE", claims: v.claims };
    if (required.length > 0 && uncoveredScopes(v.claims.scopes, required).length > 0) {
      return { status: "INSUFFICIENT_SCOPE", claims: v.claims };
    }
    return v;
  }
}

function answersFor(caller: Principal, claims: TokenClaims): boolean {
  switch (caller.kind) {
    case "resourceServer":
      return claims.audiences.some((a) => caller.resourceServer.audiences.includes(a));
    case "app":
      return claims.appId === caller.app.appId;
    default:
      return true;
  }
}
