// Writes grants and their audit events. Issuance is the hot path, and every
// audit event takes the chain's head lock, so concurrent issuances are
// written in batches: while one transaction commits, the next requests queue
// and go together in the following one. At concurrency 1 a batch is one
// grant (no added latency); at concurrency 64 one commit serves dozens. Each
// grant is still stored with its audit event in one transaction before its
// token is returned.

import type { AuditEvent } from "../storage/audit.js";
import { appendAudit } from "../storage/audit.js";
import type { Db } from "../storage/db.js";
import { withTransaction } from "../storage/db.js";
import type { GrantRecord } from "../storage/grants.js";
import { insertGrants } from "../storage/grants.js";

interface Pending {
  readonly grant: GrantRecord;
  readonly event: AuditEvent;
  readonly appVersion: Date | null;
  readonly resolve: (stored: boolean) => void;
  readonly reject: (err: unknown) => void;
}

const MAX_BATCH = 256;

export class GrantWriter {
  private queue: Pending[] = [];
  private running = false;

  constructor(private readonly db: Db) {}

  /**
   * Stores the grant and its event. Resolves false, storing neither, when the
   * app was disabled or changed since `appVersion` (its update_time when the
   * caller authenticated; null: only check it is enabled).
   */
  write(grant: GrantRecord, event: AuditEvent, appVersion: Date | null): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ grant, event, appVersion, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        try {
          const stored = await withTransaction(this.db, async (tx) => {
            const ids = await insertGrants(tx, batch.map((p) => p.grant), batch.map((p) => p.appVersion));
            await appendAudit(tx, batch.filter((p) => ids.has(p.grant.tokenId)).map((p) => p.event));
            return ids;
          });
          for (const p of batch) p.resolve(stored.has(p.grant.tokenId));
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.running = false;
    }
  }
}
