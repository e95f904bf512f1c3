// Issue: an app asks for a token for one agent of one task, within its
// ceiling (scopes, audiences, TTL).

import { AudienceNotAllowedError, BatonError, NotPermittedError, ScopeNotCoveredError } from "../domain/errors.js";
import { decideTtl } from "../domain/lifetimes.js";
import {
  excessAudiences,
  MAX_HUMAN_LENGTH,
  optionalTaskId,
  optionalText,
  requireAudiences,
  requireScopes,
  requireTaskId,
} from "../domain/limits.js";
import { uncoveredScopes } from "../domain/scopes.js";
import { agentIdFor } from "../domain/tokens.js";
import { parseAgentKey } from "../crypto/agent-keys.js";
import { randomId } from "../crypto/secrets.js";
import type { AppRecord } from "../storage/apps.js";
import type { Approvals } from "./approvals.js";
import type { IssuedToken, Minter, RequestContext } from "./minter.js";
import type { Principal } from "./principals.js";

export interface IssueInput {
  readonly taskId: string;
  readonly orchestrationId: string;
  readonly humanPrincipal: string;
  readonly scopes: readonly string[];
  readonly audiences: readonly string[];
  /** null when unset. */
  readonly ttlSeconds: number | null;
  readonly allowTtlClamp: boolean;
  readonly agentPublicKeyJwk: string;
  /** Empty: none named. */
  readonly approvalId: string;
}

export class Issuer {
  constructor(
    private readonly minter: Minter,
    private readonly approvals: Approvals,
  ) {}

  async issue(caller: Principal, input: IssueInput, ctx: RequestContext): Promise<IssuedToken> {
    if (caller.kind !== "app") throw new NotPermittedError("only an app may issue tokens");
    const app = caller.app;
    // What was asked, as far as it passed validation: the refusal's event says it.
    const asked: Record<string, unknown> = {};
    try {
      return await this.issueFor(caller, app, input, ctx, asked);
    } catch (err) {
      // UNAVAILABLE is no decision to record, and its audit row would wait on
      // the failing database; APPROVAL_REQUIRED has its approval.requested.
      if (err instanceof BatonError && err.reason !== "UNAVAILABLE" && err.reason !== "APPROVAL_REQUIRED") await this.minter.refused("issue.refused", app.appId, caller, err, ctx, asked);
      throw err;
    }
  }

  private async issueFor(caller: Principal, app: AppRecord, input: IssueInput, ctx: RequestContext, asked: Record<string, unknown>): Promise<IssuedToken> {
    const settings = this.minter.settings;
    const taskId = (asked.task_id = requireTaskId("task_id", input.taskId));
    const orchestrationId = (asked.orchestration_id = optionalTaskId("orchestration_id", input.orchestrationId));
    const humanPrincipal = (asked.human = optionalText("human_principal", input.humanPrincipal, MAX_HUMAN_LENGTH));
    const scopes = (asked.scopes = requireScopes("scopes", input.scopes));
    const audiences = (asked.audiences = requireAudiences("audiences", input.audiences));
    const agentKey = input.agentPublicKeyJwk === "" ? null : await parseAgentKey(input.agentPublicKeyJwk);

    const excess = uncoveredScopes(app.scopeCeiling, scopes);
    if (excess.length > 0) throw new ScopeNotCoveredError(excess, "ceiling");
    const badAudiences = excessAudiences(app.audiences, audiences);
    if (badAudiences.length > 0) throw new AudienceNotAllowedError(badAudiences, "ceiling");
    const ttl = decideTtl({
      requestedSeconds: input.ttlSeconds,
      allowClamp: input.allowTtlClamp,
      defaultSeconds: settings.defaultTtlSeconds,
      maximumSeconds: app.maxTtlSeconds,
      rule: "app_maximum",
    });

    const approval = await this.approvals.gate(
      app.approvalPolicy,
      {
        requestKind: "issue",
        appId: app.appId,
        requester: `app:${app.appId}`,
        parentTokenId: null,
        taskId,
        orchestrationId,
        humanPrincipal,
        scopes,
        audiences,
        ttlSeconds: input.ttlSeconds === null ? null : Math.floor(input.ttlSeconds),
        keyThumbprint: agentKey?.thumbprint ?? null,
      },
      input.approvalId,
      [],
      caller,
      ctx,
    );

    const nowMs = settings.now();
    const tokenId = randomId();
    const agentId = agentIdFor(settings.trustDomain, app.appId, taskId, randomId());
    return this.minter.mint(
      {
        tokenId,
        agentId,
        appId: app.appId,
        taskId,
        orchestrationId,
        humanPrincipal,
        scopes,
        audiences,
        issuer: settings.issuer,
        issuedAtMs: nowMs,
        notBeforeMs: Math.floor(nowMs / 1000) * 1000,
        expiresAtMs: Math.floor(nowMs / 1000) * 1000 + ttl.seconds * 1000,
        lineage: [],
        rootIssuedAtMs: nowMs,
        keyThumbprint: agentKey?.thumbprint ?? null,
        approval,
      },
      {
        kind: "token.issued",
        actor: `app:${app.appId}`,
        ttlClamped: ttl.clamped,
        appVersion: app.updateTime,
        useApproval: approval ? (tx) => this.approvals.use(tx, approval.approvalId, tokenId, agentId, caller, ctx) : undefined,
      },
      ctx,
    );
  }
}
