// Delegate: an agent, with its own token, asks for a token for a sub-agent
// with the same or less authority (scopes, audiences, remaining life, depth).

import {
  AppDisabledError,
  AudienceNotAllowedError,
  BatonError,
  DelegationDepthExceededError,
  NotPermittedError,
  ParentExpiredError,
  ScopeNotCoveredError,
} from "../domain/errors.js";
import { decideTtl } from "../domain/lifetimes.js";
import { excessAudiences, requireAudiences, requireScopes } from "../domain/limits.js";
import { uncoveredScopes } from "../domain/scopes.js";
import { agentIdFor, type TokenClaims } from "../domain/tokens.js";
import { parseAgentKey } from "../crypto/agent-keys.js";
import { randomId } from "../crypto/secrets.js";
import type { AppRecord } from "../storage/apps.js";
import type { Approvals } from "./approvals.js";
import { type IssuedToken, lineageData, type Minter, type RequestContext } from "./minter.js";
import type { Principal } from "./principals.js";

export interface DelegateInput {
  readonly scopes: readonly string[];
  /** Empty: the parent's audiences. */
  readonly audiences: readonly string[];
  readonly ttlSeconds: number | null;
  readonly allowTtlClamp: boolean;
  readonly agentPublicKeyJwk: string;
  /** Empty: none named. */
  readonly approvalId: string;
}

export class Delegator {
  constructor(
    private readonly minter: Minter,
    private readonly findApp: (appId: string) => Promise<AppRecord | null>,
    private readonly approvals: Approvals,
  ) {}

  async delegate(caller: Principal, input: DelegateInput, ctx: RequestContext): Promise<IssuedToken> {
    if (caller.kind !== "agent") throw new NotPermittedError("only an agent may delegate, with its own token");
    const parent = caller.claims;
    // What was asked, as far as it passed validation: the refusal's event says it.
    const asked: Record<string, unknown> = {};
    try {
      return await this.delegateFrom(caller, parent, input, ctx, asked);
    } catch (err) {
      // UNAVAILABLE is no decision to record, and its audit row would wait on
      // the failing database; APPROVAL_REQUIRED has its approval.requested.
      if (err instanceof BatonError && err.reason !== "UNAVAILABLE" && err.reason !== "APPROVAL_REQUIRED") {
        const lineage = [...parent.lineage, { tokenId: parent.tokenId, agentId: parent.agentId }];
        await this.minter.refused("delegation.refused", parent.appId, caller, err, ctx, {
          // The requesting agent; no child was made.
          agent_id: parent.agentId,
          task_id: parent.taskId,
          orchestration_id: parent.orchestrationId,
          human: parent.humanPrincipal,
          lineage: lineageData(lineage),
          ...asked,
        });
      }
      throw err;
    }
  }

  private async delegateFrom(caller: Principal, parent: TokenClaims, input: DelegateInput, ctx: RequestContext, asked: Record<string, unknown>): Promise<IssuedToken> {
    const settings = this.minter.settings;
    const scopes = (asked.scopes = requireScopes("scopes", input.scopes));
    const audiences = (asked.audiences = input.audiences.length === 0 ? [...parent.audiences] : requireAudiences("audiences", input.audiences));
    const agentKey = input.agentPublicKeyJwk === "" ? null : await parseAgentKey(input.agentPublicKeyJwk);
    const app = await this.findApp(parent.appId);
    if (!app) throw new NotPermittedError("the token's app no longer exists");
    if (app.disabled) throw new AppDisabledError();
    const depth = parent.lineage.length + 1;
    if (depth > app.maxDelegationDepth) throw new DelegationDepthExceededError(depth, app.maxDelegationDepth);
    // Wildcards included: `read:*:x` is not covered by `read:data:x`.
    const excess = uncoveredScopes(parent.scopes, scopes);
    if (excess.length > 0) throw new ScopeNotCoveredError(excess, "parent");
    const badAudiences = excessAudiences(parent.audiences, audiences);
    if (badAudiences.length > 0) throw new AudienceNotAllowedError(badAudiences, "parent");
    const nowMs = settings.now();
    const start = Math.floor(nowMs / 1000) * 1000;
    // Whole seconds left: the child's exp can never pass the parent's.
    const remaining = Math.floor((parent.expiresAtMs - start) / 1000);
    if (remaining < 1) throw new ParentExpiredError();
    const ttl = decideTtl({
      requestedSeconds: input.ttlSeconds,
      allowClamp: input.allowTtlClamp,
      defaultSeconds: settings.defaultTtlSeconds,
      maximumSeconds: remaining,
      rule: "parent_remaining",
    });
    const lineage = [...parent.lineage, { tokenId: parent.tokenId, agentId: parent.agentId }];
    // The root app's policy, whatever the parent was approved for: a
    // delegated token never inherits an approval.
    const approval = await this.approvals.gate(
      app.approvalPolicy,
      {
        requestKind: "delegate",
        appId: parent.appId,
        requester: `agent:${parent.agentId}`,
        parentTokenId: parent.tokenId,
        taskId: parent.taskId,
        orchestrationId: parent.orchestrationId,
        humanPrincipal: parent.humanPrincipal,
        scopes,
        audiences: [...audiences].sort(),
        ttlSeconds: input.ttlSeconds === null ? null : Math.floor(input.ttlSeconds),
        keyThumbprint: agentKey?.thumbprint ?? null,
      },
      input.approvalId,
      lineage,
      caller,
      ctx,
    );
    const tokenId = randomId();
    const agentId = agentIdFor(settings.trustDomain, parent.appId, parent.taskId, randomId());
    return this.minter.mint(
      {
        tokenId,
        agentId,
        appId: parent.appId,
        taskId: parent.taskId,
        orchestrationId: parent.orchestrationId,
        humanPrincipal: parent.humanPrincipal,
        scopes,
        audiences,
        issuer: settings.issuer,
        issuedAtMs: nowMs,
        notBeforeMs: start,
        expiresAtMs: start + ttl.seconds * 1000,
        lineage,
        rootIssuedAtMs: parent.rootIssuedAtMs,
        keyThumbprint: agentKey?.thumbprint ?? null,
        approval,
      },
      {
        kind: "token.delegated",
        actor: `agent:${parent.agentId}`,
        ttlClamped: ttl.clamped,
        appVersion: null,
        useApproval: approval ? (tx) => this.approvals.use(tx, approval.approvalId, tokenId, agentId, caller, ctx) : undefined,
      },
      ctx,
    );
  }
}
