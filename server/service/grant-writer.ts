// Writes grants and their audit events. Issuance is the hot path, and every
// audit event takes the chain's head lock, so concurrent issuances are
// written in batches (see batcher.ts), two at a time. Each grant is still stored with its
// audit event in one transaction before its token is returned.

import type { AuditEvent } from "../storage/audit.js";
import { appendAudit } from "../storage/audit.js";
import type { Db } from "../storage/db.js";
import { withTransaction } from "../storage/db.js";
import type { GrantRecord } from "../storage/grants.js";
import { insertGrants } from "../storage/grants.js";
import { Batcher } from "./batcher.js";

interface GrantWrite {
  readonly grant: GrantRecord;
  readonly event: AuditEvent;
  readonly appVersion: Date | null;
}

export class GrantWriter {
  private readonly batcher: Batcher<GrantWrite, boolean>;

  constructor(db: Db) {
    this.batcher = new Batcher((batch) =>
      withTransaction(db, async (tx) => {
        const ids = await insertGrants(tx, batch.map((p) => p.grant), batch.map((p) => p.appVersion));
        await appendAudit(tx, batch.filter((p) => ids.has(p.grant.tokenId)).map((p) => p.event));
        return batch.map((p) => ids.has(p.grant.tokenId));
      }),
      256,
      // Two batches in flight: the next one inserts its grants while the
      // previous waits on its commit; the audit chain's head lock still
      // orders their events.
      2,
    );
  }

  /**
   * Stores the grant and its event. Resolves false, storing neither, when the
   * app was disabled or changed since `appVersion` (its update_time when the
   * caller authenticated; null: only check it is enabled).
   */
  write(grant: GrantRecord, event: AuditEvent, appVersion: Date | null): Promise<boolean> {
    return this.batcher.submit({ grant, event, appVersion });
  }
}
