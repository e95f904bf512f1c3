// Writes grants and their audit events. Issuance is the hot path, and every
// audit event takes the chain's head lock, so concurrent issuances are
// written in batches (see batcher.ts). Each grant is still stored with its
// audit event in one transaction before its token is returned.
//
// A batch is one statement (insertGrantsChained), its own transaction: the
// grants, and their events chained by PostgreSQL where the head is when the
// statement gets its lock. One round trip per batch instead of six (BEGIN,
// grants, head lock, events, head, COMMIT), the head row locked only from
// the chaining to the commit, and nothing to guess: other writers and
// replicas appending in between cost nothing (with two replicas on one VM,
// Issue at c64 went from 1,387 to 1,845/s against writers that guessed the
// head). One batch in flight: two made smaller batches and no more
// throughput (BENCHMARKS.md). When an app no
// longer holds, the statement stores nothing and the batch takes the locked
// path, which stores the grants that still hold.

import type { AuditEvent } from "../storage/audit.js";
import { appendAudit } from "../storage/audit.js";
import type { Db } from "../storage/db.js";
import { withTransaction } from "../storage/db.js";
import type { GrantRecord } from "../storage/grants.js";
import { insertGrants, insertGrantsChained } from "../storage/grants.js";
import { Batcher } from "./batcher.js";

interface GrantWrite {
  readonly grant: GrantRecord;
  readonly event: AuditEvent;
  readonly appVersion: Date | null;
}

export class GrantWriter {
  private readonly batcher: Batcher<GrantWrite, boolean>;

  constructor(private readonly db: Db) {
    this.batcher = new Batcher((batch) => this.writeBatch(batch), 256, 1);
  }

  /**
   * Stores the grant and its event. Resolves false, storing neither, when the
   * app was disabled or changed since `appVersion` (its update_time when the
   * caller authenticated; null: only check it is enabled).
   */
  write(grant: GrantRecord, event: AuditEvent, appVersion: Date | null): Promise<boolean> {
    return this.batcher.submit({ grant, event, appVersion });
  }

  private async writeBatch(batch: readonly GrantWrite[]): Promise<boolean[]> {
    const grants = batch.map((p) => p.grant);
    const versions = batch.map((p) => p.appVersion);
    if (await insertGrantsChained(this.db, grants, versions, batch.map((p) => p.event))) return batch.map(() => true);
    return withTransaction(this.db, async (tx) => {
      const ids = await insertGrants(tx, grants, versions);
      await appendAudit(tx, batch.filter((p) => ids.has(p.grant.tokenId)).map((p) => p.event));
      return batch.map((p) => ids.has(p.grant.tokenId));
    });
  }
}
