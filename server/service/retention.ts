// The periodic pruner: deletes grants and approvals that can no longer
// matter and, when an
// audit retention is set, audit events older than it (exported first, with
// the chain anchored at the last pruned event). Work is done in bounded
// batches with a pause between them, and only by the replica holding the
// retention lock, so several replicas never prune at once.

import { mkdir, open, type FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";
import { auditAnchor, auditEventsAfter, chainHash, type ChainPoint, exportLine, type StoredAuditEvent } from "../storage/audit.js";
import type { Db, Tx } from "../storage/db.js";
import { deleteClosedApprovals, deleteExpiredGrants, pruneAuditThrough, releaseRetentionLock, tryRetentionLock } from "../storage/retention.js";
import type { Logger } from "../telemetry/logger.js";

export interface RetentionSettings {
  /**
   * How long after its expiry a grant is kept. At least the leeway: until
   * then its token still validates, may be revoked by id, and may parent a
   * delegation (a deleted parent would fail the child's insert). Approvals
   * are kept as long after their window closes.
   */
  readonly grantRetentionMs: number;
  /** Audit events older than this are pruned; 0 keeps them forever. */
  readonly auditRetentionMs: number;
  /** Pruned audit events are written here first (JSON lines); null: not exported. */
  readonly auditExportDir: string | null;
  readonly intervalMs: number;
  /** Rows per statement or transaction. */
  readonly batchSize: number;
  /** Pause between batches, so a large backlog never monopolizes the database. */
  readonly pauseMs: number;
  readonly now: () => number;
}

export interface RetentionRun {
  readonly grants: { readonly deleted: number; readonly batches: number };
  readonly approvals: { readonly deleted: number; readonly batches: number };
  readonly audit: { readonly deleted: number; readonly batches: number; readonly exportFile: string | null };
}

export class AuditChainBrokenError extends Error {
  constructor(readonly seq: bigint) {
    super(`audit chain does not verify at seq ${seq}; refusing to prune it`);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class RetentionPruner {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<RetentionRun | null> | null = null;
  private stopping = false;

  constructor(
    private readonly db: Db,
    private readonly settings: RetentionSettings,
    private readonly logger: Logger,
  ) {}

  /** Prunes every interval until stop(). */
  start(): void {
    const tick = (): void => {
      this.runOnce()
        .then((r) => {
          if (r && (r.grants.deleted > 0 || r.approvals.deleted > 0 || r.audit.deleted > 0)) {
            this.logger.info("retention pruned", {
              grants_deleted: r.grants.deleted,
              approvals_deleted: r.approvals.deleted,
              audit_events_deleted: r.audit.deleted,
              audit_export_file: r.audit.exportFile,
            });
          }
        })
        .catch((err: unknown) => this.logger.error("retention prune failed", { error: err }))
        .finally(() => {
          if (!this.stopping) this.schedule(tick);
        });
    };
    this.schedule(tick);
  }

  private schedule(tick: () => void): void {
    this.timer = setTimeout(tick, this.settings.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a run in progress to end its current batch. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }

  /** One pass; null when another replica holds the retention lock. */
  runOnce(): Promise<RetentionRun | null> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async run(): Promise<RetentionRun | null> {
    // A session lock on one connection, held for the whole pass; it goes
    // with the connection if this process dies.
    const client = await this.db.connect();
    let locked = false;
    try {
      locked = await tryRetentionLock(client);
      if (!locked) return null;
      const grants = await this.pruneBatches(client, deleteExpiredGrants);
      const approvals = await this.pruneBatches(client, deleteClosedApprovals);
      const audit = await this.pruneAudit(client);
      return { grants, approvals, audit };
    } finally {
      const unlocked = !locked || (await releaseRetentionLock(client).then(() => true, () => false));
      // A connection that could not unlock is destroyed, which frees the lock.
      client.release(!unlocked);
    }
  }

  /** Grants or approvals closed for longer than the grant retention, a bounded batch per statement (autocommit). */
  private async pruneBatches(client: Tx, deleteBatch: (db: Tx, before: Date, limit: number) => Promise<number>): Promise<RetentionRun["grants"]> {
    const before = new Date(this.settings.now() - this.settings.grantRetentionMs);
    let deleted = 0;
    let batches = 0;
    // Parents freed by one grant batch become leaves for the next.
    while (!this.stopping) {
      const n = await deleteBatch(client, before, this.settings.batchSize);
      if (n === 0) break;
      deleted += n;
      batches += 1;
      await sleep(this.settings.pauseMs);
    }
    return { deleted, batches };
  }

  private async pruneAudit(client: Tx): Promise<RetentionRun["audit"]> {
    const { auditRetentionMs, auditExportDir, batchSize, now } = this.settings;
    let deleted = 0;
    let batches = 0;
    if (auditRetentionMs === 0) return { deleted, batches, exportFile: null };
    const cutoffMs = now() - auditRetentionMs;
    let anchor = await auditAnchor(client);
    let file: { path: string; handle: FileHandle; size: number } | null = null;
    try {
      while (!this.stopping) {
        const page = await auditEventsAfter(client, anchor.seq, batchSize);
        // The oldest events in chain order, up to the first one still inside
        // the retention window: the remaining chain is always a suffix.
        const old: StoredAuditEvent[] = [];
        for (const e of page) {
          if (e.eventTime.getTime() >= cutoffMs) break;
          old.push(e);
        }
        if (old.length === 0) break;
        // Deleting a damaged stretch would destroy the evidence.
        const through = verifyFrom(anchor, old);
        if (auditExportDir !== null) {
          if (!file) {
            await mkdir(auditExportDir, { recursive: true, mode: 0o700 });
            const path = join(auditExportDir, `audit-${old[0]!.seq.toString().padStart(20, "0")}.jsonl`);
            file = { path, handle: await open(path, "w", 0o600), size: 0 };
          }
          // On disk before the rows go: an export that fails stops the pruning.
          const text = old.map(exportLine).join("");
          await file.handle.write(text);
          await file.handle.sync();
          const written = file.size + Buffer.byteLength(text);
          const pruned = await this.pruneBatch(client, anchor, through, old.length, file.path).catch(async (err: unknown) => {
            // Keep the file to exactly the pruned events.
            await file!.handle.truncate(file!.size).catch(() => {});
            throw err;
          });
          if (!pruned) break;
          file.size = written;
        } else if (!(await this.pruneBatch(client, anchor, through, old.length, null))) {
          break;
        }
        anchor = through;
        deleted += old.length;
        batches += 1;
        if (old.length < page.length || page.length < batchSize) break;
        await sleep(this.settings.pauseMs);
      }
    } finally {
      await file?.handle.close();
    }
    return { deleted, batches, exportFile: file?.path ?? null };
  }

  private async pruneBatch(client: Tx, anchor: ChainPoint, through: ChainPoint, count: number, exportFile: string | null): Promise<boolean> {
    await client.query("BEGIN");
    try {
      const ok = await pruneAuditThrough(client, anchor, through, {
        kind: "audit.pruned",
        time: new Date(this.settings.now()),
        appId: null,
        requestId: null,
        actor: "broker",
        data: {
          through_seq: through.seq.toString(),
          through_hash: through.hash.toString("hex"),
          events: count,
          export_file: exportFile === null ? null : basename(exportFile),
        },
      });
      await client.query(ok ? "COMMIT" : "ROLLBACK");
      return ok;
    } catch (err) {
      await client.query("ROLLBACK").catch(() => {});
      throw err;
    }
  }
}

/** Checks `events` continue the chain from `anchor`; returns the last one. */
function verifyFrom(anchor: ChainPoint, events: readonly StoredAuditEvent[]): ChainPoint {
  let at = anchor;
  for (const e of events) {
    if (e.seq !== at.seq + 1n || !e.prevHash.equals(at.hash) || !chainHash(at.hash, e.payload).equals(e.hash)) {
      throw new AuditChainBrokenError(at.seq + 1n);
    }
    at = { seq: e.seq, hash: e.hash };
  }
  return at;
}
