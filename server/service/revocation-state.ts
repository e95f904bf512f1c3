// This broker's view of the live revocations: loaded from the database at
// start, updated by every revocation this broker commits, and pruned as
// entries expire so the set stays proportional to recent revocations.

import { type Revocation, RevocationSet } from "../domain/revocations.js";
import type { TokenClaims } from "../domain/tokens.js";
import type { Db } from "../storage/db.js";
import { deleteExpiredRevocations, liveRevocations, revocationsAfter } from "../storage/revocations.js";

export class RevocationState {
  private set = new RevocationSet();
  private lastCursor_ = 0n;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {}

  get lastCursor(): bigint {
    return this.lastCursor_;
  }

  get size(): number {
    return this.set.size;
  }

  async load(): Promise<void> {
    const fresh = new RevocationSet();
    let last = 0n;
    for (const r of await liveRevocations(this.db, this.now())) {
      fresh.add(r);
      if (r.cursor > last) last = r.cursor;
    }
    this.set = fresh;
    if (last > this.lastCursor_) this.lastCursor_ = last;
  }

  /**
   * Reads revocations committed (by any replica) after the last one seen.
   * Cursor order is commit order, so nothing committed before the newest
   * cursor seen can appear later: reading "after lastCursor" loses nothing.
   * Returns how many were new.
   */
  async catchUp(batch = 1000): Promise<number> {
    let n = 0;
    for (;;) {
      const rows = await revocationsAfter(this.db, this.lastCursor_, batch);
      for (const r of rows) {
        this.set.add(r);
        this.lastCursor_ = r.cursor;
      }
      n += rows.length;
      if (rows.length < batch) return n;
    }
  }

  /**
   * A revocation this broker just committed: effective here at once. The
   * cursor is not advanced, since another replica's smaller cursor may not
   * have been read yet; catchUp reads this one again, which is harmless.
   */
  add(r: Revocation): void {
    this.set.add(r);
  }

  isRevoked(c: TokenClaims): boolean {
    return this.set.isRevoked(c);
  }

  /**
   * Forgets expired entries in memory, and deletes database rows expired for
   * longer than `retentionMs` (the stream's replay window).
   */
  async prune(retentionMs: number): Promise<{ memory: number; stored: number }> {
    const now = this.now();
    const memory = this.set.prune(now);
    const stored = await deleteExpiredRevocations(this.db, now - retentionMs);
    return { memory, stored };
  }
}
