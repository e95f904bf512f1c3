// This broker's view of the live revocations: loaded from the database at
// start, updated by every revocation this broker commits, kept current with
// other replicas' revocations by catching up on the table (woken by
// LISTEN/NOTIFY, and on a timer in case a notification is lost), and pruned
// as entries expire so the set stays proportional to recent revocations.
// Streams subscribe here: they see every revocation once, in cursor order.

import { type Revocation, RevocationSet, type StoredRevocation } from "../domain/revocations.js";
import type { TokenClaims } from "../domain/tokens.js";
import type { Db } from "../storage/db.js";
import { deleteExpiredRevocations, liveRevocations, revocationsAfter } from "../storage/revocations.js";

export type RevocationListener = (r: StoredRevocation) => void;

export class RevocationState {
  private set = new RevocationSet();
  private lastCursor_ = 0n;
  private lastSyncMs_ = 0;
  private readonly listeners = new Set<RevocationListener>();
  private running: Promise<number> | null = null;
  private again = false;

  constructor(
    private readonly db: Db,
    private readonly now: () => number,
  ) {}

  get lastCursor(): bigint {
    return this.lastCursor_;
  }

  /** When the state last matched the database (the start of the last successful read). */
  get lastSyncMs(): number {
    return this.lastSyncMs_;
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
    this.lastSyncMs_ = this.now();
  }

  /** Calls `fn` with every revocation read from the table from now on, in cursor order. */
  subscribe(fn: RevocationListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /**
   * Reads revocations committed (by any replica) after the last one seen.
   * Cursor order is commit order, so nothing committed before the newest
   * cursor seen can appear later: reading "after lastCursor" loses nothing.
   * Returns how many were new.
   */
  catchUp(): Promise<number> {
    // One reader at a time, so listeners see cursor order; a call while a
    // read runs asks for one more read after it.
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = async (): Promise<number> => {
      let n = 0;
      do {
        this.again = false;
        n += await this.readNew();
      } while (this.again);
      return n;
    };
    this.running = run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async readNew(batch = 1000): Promise<number> {
    const started = this.now();
    let n = 0;
    for (;;) {
      const rows = await revocationsAfter(this.db, this.lastCursor_, batch);
      for (const r of rows) {
        this.set.add(r);
        this.lastCursor_ = r.cursor;
        for (const fn of this.listeners) fn(r);
      }
      n += rows.length;
      if (rows.length < batch) break;
    }
    this.lastSyncMs_ = started;
    return n;
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
