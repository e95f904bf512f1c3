// Token claims for tests of the token format and its checks.

import type { TokenClaims } from "../../server/domain/tokens.js";

export const TEST_ISSUER = "https://baton.test";

/**
 * A root token of app_x's task t1, issued at `issuedAtMs`, valid from the
 * second it was issued in, for 5 minutes; `over` replaces any claim.
 */
export function rootClaims(issuedAtMs: number, over: Partial<TokenClaims> = {}): TokenClaims {
  const notBeforeMs = Math.floor(issuedAtMs / 1000) * 1000;
  return {
    tokenId: "tok_1",
    agentId: "spiffe://baton.test/app/app_x/task/t1/agent/a1",
    appId: "app_x",
    taskId: "t1",
    orchestrationId: null,
    humanPrincipal: null,
    scopes: ["read:data:x"],
    audiences: ["billing-api"],
    issuer: TEST_ISSUER,
    issuedAtMs,
    notBeforeMs,
    expiresAtMs: notBeforeMs + 300_000,
    lineage: [],
    rootIssuedAtMs: issuedAtMs,
    keyThumbprint: null,
    ...over,
  };
}
