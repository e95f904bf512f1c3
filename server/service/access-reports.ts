// ReportAccess: resource servers tell the broker what they decided when
// agents used their tokens. Each report becomes one audit event
// (`access.allowed` / `access.denied`) carrying the token's lineage from the
// grants table, so one audit query answers "human H, through agents A, B, C,
// did X at resource Y".
//
// A batch is all or nothing: every report is checked first (fields, an
// audience the caller serves, a token the broker issued to that agent), and
// the first refused one refuses the call, its index in the error's details;
// nothing is stored then, not even a refusal event (a resource server could
// otherwise fill the audit trail with its mistakes). An accepted batch is
// appended in one transaction.

import { AudienceNotServedError, BatonError, InvalidRequestError, NotFoundError, NotPermittedError } from "../domain/errors.js";
import { optionalText, requireAudiences } from "../domain/limits.js";
import { parseScope } from "../domain/scopes.js";
import { appendAudit, type AuditEvent } from "../storage/audit.js";
import { type Db, withTransaction } from "../storage/db.js";
import { grantsWithLineage } from "../storage/grants.js";
import { lineageData, type RequestContext } from "./minter.js";
import { actorOf, type Principal } from "./principals.js";

/** The most reports one call may carry (documented in broker.proto). */
export const MAX_ACCESS_REPORTS = 500;
/** Lengths from the AccessReport comments in broker.proto; ids as the broker makes them. */
const MAX_TOKEN_ID_LENGTH = 128;
const MAX_AGENT_ID_LENGTH = 512;
const MAX_RESOURCE_LENGTH = 512;
const MAX_REPORT_REASON_LENGTH = 128;
const MAX_OUTCOME_LENGTH = 128;
/** A decision may be stamped this far ahead of the broker's clock (skew), no further. */
export const MAX_DECIDE_TIME_SKEW_MS = 5 * 60_000;
// Ids the broker makes: printable ASCII without spaces.
const ID = /^[\x21-\x7e]+$/;

export interface AccessReportInput {
  readonly tokenId: string;
  readonly agentId: string;
  readonly audience: string;
  readonly scope: string;
  readonly resource: string;
  readonly allowed: boolean;
  readonly reason: string;
  readonly outcome: string;
  readonly decideTime: Date | undefined;
}

interface CheckedReport {
  readonly tokenId: string;
  readonly agentId: string;
  readonly audience: string;
  readonly scope: string | null;
  readonly resource: string | null;
  readonly allowed: boolean;
  readonly reason: string | null;
  readonly outcome: string | null;
  readonly decideTime: Date;
}

export class AccessReporter {
  /** Reports stored (for baton_access_reports_total). */
  stored = 0;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {}

  /** Stores every report or none; returns how many were stored. */
  async report(caller: Principal, inputs: readonly AccessReportInput[], ctx: RequestContext): Promise<number> {
    if (caller.kind !== "resourceServer") throw new NotPermittedError("access reports come from resource servers");
    if (inputs.length === 0) throw new InvalidRequestError("reports", "at least one report is required");
    if (inputs.length > MAX_ACCESS_REPORTS) throw new InvalidRequestError("reports", `at most ${MAX_ACCESS_REPORTS} reports per call`);
    const nowMs = this.now();
    const served = caller.resourceServer.audiences;
    const reports = inputs.map((r, i) => atIndex(i, () => checkReport(r, served, nowMs)));
    const grants = await grantsWithLineage(this.db, reports.map((r) => r.tokenId));
    const actor = actorOf(caller);
    const events: AuditEvent[] = reports.map((r, i) =>
      atIndex(i, () => {
        const g = grants.get(r.tokenId);
        if (!g) throw new NotFoundError("token");
        if (g.agentId !== r.agentId) throw new InvalidRequestError("agent_id", "is not the agent the token was issued to");
        return {
          kind: r.allowed ? "access.allowed" : "access.denied",
          time: new Date(nowMs),
          appId: g.appId,
          requestId: ctx.requestId,
          actor,
          data: {
            token_id: g.tokenId,
            agent_id: g.agentId,
            task_id: g.taskId,
            orchestration_id: g.orchestrationId,
            human: g.humanPrincipal,
            lineage: lineageData(g.lineage),
            scopes: r.scope === null ? [] : [r.scope],
            audiences: [r.audience],
            resource_server_id: caller.resourceServer.resourceServerId,
            resource: r.resource,
            allowed: r.allowed,
            reason: r.reason,
            outcome: r.outcome,
            decide_time: r.decideTime.toISOString(),
          },
        };
      }),
    );
    await withTransaction(this.db, (tx) => appendAudit(tx, events));
    this.stored += events.length;
    return events.length;
  }
}

/** Runs one report's check; a refusal names the report (`reports[i].field`) and carries its index. */
function atIndex<T>(i: number, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof BatonError)) throw err;
    const field = err.details.field;
    const details = field === undefined ? err.details : { ...err.details, field: `reports[${i}].${field}` };
    throw new BatonError(err.reason, `reports[${i}]: ${err.message}`, { ...details, index: String(i) });
  }
}

function requireId(field: string, value: string, max: number): string {
  if (value === "") throw new InvalidRequestError(field, "is required");
  if (value.length > max || !ID.test(value)) throw new InvalidRequestError(field, `must be 1 to ${max} printable characters without spaces`);
  return value;
}

function checkReport(r: AccessReportInput, served: readonly string[], nowMs: number): CheckedReport {
  const tokenId = requireId("token_id", r.tokenId, MAX_TOKEN_ID_LENGTH);
  const agentId = requireId("agent_id", r.agentId, MAX_AGENT_ID_LENGTH);
  if (r.audience === "") throw new InvalidRequestError("audience", "is required");
  const [audience] = requireAudiences("audience", [r.audience]);
  if (!served.includes(audience!)) throw new AudienceNotServedError(audience!);
  if (r.scope !== "") parseScope(r.scope);
  if (r.decideTime === undefined) throw new InvalidRequestError("decide_time", "is required");
  const t = r.decideTime.getTime();
  if (!Number.isFinite(t) || t <= 0) throw new InvalidRequestError("decide_time", "must be a time after 1970");
  if (t > nowMs + MAX_DECIDE_TIME_SKEW_MS) {
    throw new InvalidRequestError("decide_time", `must not be more than ${MAX_DECIDE_TIME_SKEW_MS / 1000}s ahead of the broker's clock`);
  }
  return {
    tokenId,
    agentId,
    audience: audience!,
    scope: r.scope === "" ? null : r.scope,
    resource: optionalText("resource", r.resource, MAX_RESOURCE_LENGTH),
    allowed: r.allowed,
    reason: optionalText("reason", r.reason, MAX_REPORT_REASON_LENGTH),
    outcome: optionalText("outcome", r.outcome, MAX_OUTCOME_LENGTH),
    decideTime: r.decideTime,
  };
}
