// Validate: the online check a resource server may ask for instead of
// verifying offline.

import { InvalidRequestError, NotPermittedError } from "../domain/errors.js";
import { requireAudiences, requireScopes } from "../domain/limits.js";
import { uncoveredScopes } from "../domain/scopes.js";
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
    const v = await this.checker.check(input.token);
    if (v.status !== "VALID" || !v.claims) return v;
    if (!v.claims.audiences.includes(input.audience)) return { status: "WRONG_AUDIENCE", claims: v.claims };
    if (required.length > 0 && uncoveredScopes(v.claims.scopes, required).length > 0) {
      return { status: "INSUFFICIENT_SCOPE", claims: v.claims };
    }
    return v;
  }
}
