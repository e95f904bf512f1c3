// Revoke: a token, an agent, a task, a chain or an app (DESIGN §6). Stored
// with its cursor and audit event in one transaction, then added to this
// replica's revocation set; other replicas learn of it from the table.
//
// Every revocation takes the one cursor row's lock until commit, so one
// transaction per revocation would serialise them on commit latency.
// Concurrent calls are group-committed instead (see batcher.ts): each call
// is checked and resolved on its own first, so one caller's refusal never
// touches the others; then one transaction takes the cursor once for the
// whole batch, assigns consecutive cursors in queue order, and appends each
// revocation's own audit event. Nobody is answered before that commit, and
// a failed batch fails every call in it.
//
// A batch is normally one statement (insertRevocationsChained): PostgreSQL
// takes the cursor, numbers the revocations, chains their events wherever
// the audit head is, and notifies replicas at commit, so nothing is guessed
// and other writers and replicas cost nothing. Only if every app a task or
// app revocation was worked out from is unchanged; else the batch takes
// the locked path, which works such a revocation out again from the app's
// locked row. Target lookups of concurrent calls share a statement too
// (getGrants), and tasks and apps are read from the in-memory app view.

import { BatonError, InvalidRequestError, NotFoundError, NotPermittedError } from "../domain/errors.js";
import { MAX_REASON_LENGTH, optionalText, requireTaskId } from "../domain/limits.js";
import type { RevocationTarget, StoredRevocation } from "../domain/revocations.js";
import { APP_ID } from "../crypto/secrets.js";
import { type AppRecord, getApp } from "../storage/apps.js";
import { type AuditEvent, appendAudit } from "../storage/audit.js";
import { type Db, withTransaction } from "../storage/db.js";
import { agentGrantSpan, type GrantRecord, getGrants } from "../storage/grants.js";
import { type AppVersion, insertRevocations, insertRevocationsChained, type NewRevocation, numberedAfter } from "../storage/revocations.js";
import { Batcher } from "./batcher.js";
import { lineageData, type RequestContext } from "./minter.js";
import { actorOf, type Principal } from "./principals.js";
import type { RevocationState } from "./revocation-state.js";

export interface RevokeInput {
  readonly target: RevocationTarget | null;
  readonly id: string;
  readonly appId: string;
  readonly reason: string;
}

export interface RevokeSettings {
  /** A revocation stays live this long past the last expiry it covers (see domain/revocations.ts). */
  readonly revocationMarginMs: number;
  readonly now: () => number;
}

/** The most targets one revokeMany call may name (documented in broker.proto). */
export const MAX_BULK_REVOCATIONS = 1000;

/** A revocation to store, and what its audit event says of the token it names (task, agent, human). */
interface ResolvedRevocation extends NewRevocation {
  readonly about: Readonly<Record<string, unknown>>;
  /** A task or app revocation: the app version its audiences and expiry were worked out from. */
  readonly app: AppVersion | null;
}

/** One call's revocations: stored together, in order, in one transaction. */
interface RevocationWrite {
  readonly revocations: readonly ResolvedRevocation[];
  readonly actor: string;
  readonly requestId: string;
  readonly nowMs: number;
}

export class Revoker {
  private readonly writer: Batcher<RevocationWrite, StoredRevocation[]>;
  private readonly grants: Batcher<string, GrantRecord | null>;

  constructor(
    private readonly db: Db,
    private readonly revocations: RevocationState,
    /** The in-memory app view (complete, but a change on another replica reaches it a moment later). */
    private readonly apps: { app(appId: string): AppRecord | null },
    private readonly settings: RevokeSettings,
  ) {
    // One batch in flight: a second would only wait on the cursor row's lock.
    this.writer = new Batcher((batch) => this.writeBatch(batch), 256, 1);
    // Concurrent lookups of tokens and chains share one statement.
    this.grants = new Batcher(async (ids) => {
      const found = new Map((await getGrants(this.db, ids)).map((g) => [g.tokenId, g]));
      return ids.map((id) => found.get(id) ?? null);
    }, 1000, 2);
  }

  async revoke(caller: Principal, input: RevokeInput, ctx: RequestContext): Promise<StoredRevocation> {
    const nowMs = this.settings.now();
    const r = await this.resolve(caller, input, nowMs);
    const [stored] = await this.store(caller, [r], ctx, nowMs);
    return stored!;
  }

  /**
   * Revokes every target or none (incident response): each is checked as
   * Revoke would, and the first refused one refuses the call, its index in
   * the error's details. All are stored in one transaction, with
   * consecutive cursors in request order.
   */
  async revokeMany(caller: Principal, inputs: readonly RevokeInput[], ctx: RequestContext): Promise<StoredRevocation[]> {
    if (inputs.length === 0) throw new InvalidRequestError("targets", "at least one target is required");
    if (inputs.length > MAX_BULK_REVOCATIONS) throw new InvalidRequestError("targets", `at most ${MAX_BULK_REVOCATIONS} targets per call`);
    const nowMs = this.settings.now();
    // Resolved together (their lookups share statements); the first refusal in request order is the answer.
    const settled = await Promise.allSettled(inputs.map((input) => this.resolve(caller, input, nowMs)));
    const resolved: ResolvedRevocation[] = [];
    for (const [i, s] of settled.entries()) {
      if (s.status === "fulfilled") {
        resolved.push(s.value);
        continue;
      }
      const err: unknown = s.reason;
      if (!(err instanceof BatonError)) throw err;
      throw new BatonError(err.reason, `targets[${i}]: ${err.message}`, { ...err.details, index: String(i) });
    }
    return this.store(caller, resolved, ctx, nowMs);
  }

  private async resolve(caller: Principal, input: RevokeInput, nowMs: number): Promise<ResolvedRevocation> {
    if (input.target === null) throw new InvalidRequestError("target", "a revocation target is required");
    const reason = optionalText("reason", input.reason, MAX_REASON_LENGTH);
    const { revocation, about, app } = await this.resolveTarget(caller, input, nowMs);
    return { revocation, reason, about, app: app ? { appId: app.appId, updateTime: app.updateTime } : null };
  }

  private async store(caller: Principal, revocations: readonly ResolvedRevocation[], ctx: RequestContext, nowMs: number): Promise<StoredRevocation[]> {
    const stored = await this.writer.submit({ revocations, actor: actorOf(caller), requestId: ctx.requestId, nowMs });
    for (const r of stored) this.revocations.add(r);
    return stored;
  }

  private async writeBatch(batch: readonly RevocationWrite[]): Promise<StoredRevocation[][]> {
    const all = batch.flatMap((w) => w.revocations);
    const apps = [...new Map(all.flatMap((r) => (r.app ? [[`${r.app.appId}@${r.app.updateTime.getTime()}`, r.app] as const] : []))).values()];
    // The events' cursors are left out of what is sent; PostgreSQL fills them in.
    const stored = await insertRevocationsChained(this.db, all, apps, auditEvents(batch, numberedAfter(0n, all)));
    if (stored) return perCall(batch, stored);
    // Lock order as in every writer: the apps, the cursor row, then the audit head.
    return withTransaction(this.db, async (tx) => {
      const fresh = new Map<string, AppRecord | null>();
      for (const a of apps) if (!fresh.has(a.appId)) fresh.set(a.appId, await getApp(tx, a.appId, "FOR SHARE"));
      // A task or app revocation whose app changed since it was worked out: again, from the locked row.
      const current = batch.map((w) => ({
        ...w,
        revocations: w.revocations.map((r) => {
          const app = r.app && fresh.get(r.app.appId);
          return app && app.updateTime.getTime() !== r.app!.updateTime.getTime()
            ? { ...r, revocation: this.ofApp(r.revocation.target, r.revocation.id, app, w.nowMs) }
            : r;
        }),
      }));
      const stored = await insertRevocations(tx, current.flatMap((w) => w.revocations));
      await appendAudit(tx, auditEvents(current, stored));
      return perCall(current, stored);
    });
  }

  /**
   * Checks the caller may revoke the target and works out what it kills,
   * until when, and for which audiences (what the stream filters on).
   */
  private async resolveTarget(
    caller: Principal,
    input: RevokeInput,
    nowMs: number,
  ): Promise<{ revocation: Omit<StoredRevocation, "cursor">; about: Record<string, unknown>; app?: AppRecord }> {
    const margin = this.settings.revocationMarginMs;
    const target = input.target!;
    if (caller.kind === "agent") {
      // An agent may only release its own token.
      if (target !== "token" || (input.id !== "" && input.id !== caller.claims.tokenId)) {
        throw new NotPermittedError("an agent may only release its own token");
      }
      const c = caller.claims;
      return {
        revocation: { target: "token", id: c.tokenId, appId: c.appId, revokedAtMs: nowMs, expiresAtMs: c.expiresAtMs + margin, audiences: c.audiences },
        about: {
          task_id: c.taskId,
          agent_id: c.agentId,
          human: c.humanPrincipal,
          lineage: lineageData(c.lineage),
        },
      };
    }
    const ownApp = caller.kind === "app" ? caller.app.appId : null;
    // One refusal, NotFoundError(target), whether the id does not exist or
    // belongs to another app: an app learns nothing about other apps' ids.
    const mayTouch = (appId: string): void => {
      if (ownApp !== null && appId !== ownApp) throw new NotFoundError(target);
    };
    if (input.id === "") throw new InvalidRequestError("id", "the id of what to revoke is required");
    if (input.id.length > 512) throw new InvalidRequestError("id", "must be at most 512 characters");
    switch (target) {
      case "token":
      case "chain": {
        const g = await this.grants.submit(input.id);
        if (!g) throw new NotFoundError(target);
        mayTouch(g.appId);
        // The task and human are the whole chain's; the agent is the named token's.
        const about = { task_id: g.taskId, human: g.humanPrincipal, agent_id: target === "token" ? g.agentId : undefined };
        if (target === "token") {
          // Descendants' audiences are within the token's own.
          return {
            revocation: { target, id: g.tokenId, appId: g.appId, revokedAtMs: nowMs, expiresAtMs: g.expireTime.getTime() + margin, audiences: g.audiences },
            about,
          };
        }
        // A chain is stored as its root; nothing below the root outlives it.
        const root = g.rootTokenId === g.tokenId ? g : await this.grants.submit(g.rootTokenId);
        if (!root) throw new NotFoundError(target);
        return {
          revocation: { target, id: root.tokenId, appId: g.appId, revokedAtMs: nowMs, expiresAtMs: root.expireTime.getTime() + margin, audiences: root.audiences },
          about,
        };
      }
      case "agent": {
        const span = await agentGrantSpan(this.db, input.id);
        if (!span) throw new NotFoundError("agent");
        mayTouch(span.appId);
        return {
          revocation: { target, id: input.id, appId: span.appId, revokedAtMs: nowMs, expiresAtMs: span.expireTime.getTime() + margin, audiences: span.audiences },
          about: {},
        };
      }
      case "task": {
        const appId = input.appId || ownApp;
        if (!appId) throw new InvalidRequestError("app_id", "the app the task belongs to is required");
        requireTaskId("id", input.id);
        const app = await this.appOf(appId, target);
        mayTouch(app.appId);
        return { revocation: this.ofApp(target, input.id, app, nowMs), about: {}, app };
      }
      case "app": {
        const app = await this.appOf(input.id, target);
        mayTouch(app.appId);
        return { revocation: this.ofApp(target, app.appId, app, nowMs), about: {}, app };
      }
    }
  }

  /**
   * A task or app revocation covers every live token of the app, so it lives
   * as long as the longest token the app may hold, for all its audiences
   * (every live token fits the app's audience list: narrowing it revokes
   * what does not).
   */
  private ofApp(target: RevocationTarget, id: string, app: AppRecord, nowMs: number): Omit<StoredRevocation, "cursor"> {
    return { target, id, appId: app.appId, revokedAtMs: nowMs, expiresAtMs: nowMs + app.maxTtlSeconds * 1000 + this.settings.revocationMarginMs, audiences: app.audiences };
  }

  /** From the view; an app it does not hold yet (created on another replica a moment ago) from the database. */
  private async appOf(appId: string, target: RevocationTarget): Promise<AppRecord> {
    const app = APP_ID.test(appId) ? (this.apps.app(appId) ?? (await getApp(this.db, appId))) : null;
    if (!app) throw new NotFoundError(target);
    return app;
  }
}

/** Each call's share of the stored revocations, in order. */
function perCall(batch: readonly RevocationWrite[], stored: readonly StoredRevocation[]): StoredRevocation[][] {
  const out: StoredRevocation[][] = [];
  let next = 0;
  for (const w of batch) {
    out.push(stored.slice(next, next + w.revocations.length));
    next += w.revocations.length;
  }
  return out;
}

/** One revocation.created event per stored revocation, in order. */
function auditEvents(batch: readonly RevocationWrite[], stored: readonly StoredRevocation[]): AuditEvent[] {
  const calls = perCall(batch, stored);
  return batch.flatMap((w, i) =>
    calls[i]!.map((r, j) => ({
      kind: "revocation.created",
      time: new Date(w.nowMs),
      appId: r.appId,
      requestId: w.requestId,
      actor: w.actor,
      data: {
        target: r.target,
        id: r.id,
        // The target again under the keys every event uses, so a query by token, agent or task finds it.
        token_id: r.target === "token" || r.target === "chain" ? r.id : undefined,
        agent_id: r.target === "agent" ? r.id : undefined,
        task_id: r.target === "task" ? r.id : undefined,
        ...w.revocations[j]!.about,
        audiences: r.audiences,
        reason: w.revocations[j]!.reason,
        cursor: r.cursor.toString(),
      },
    })),
  );
}
