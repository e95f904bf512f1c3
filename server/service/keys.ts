// Signing-key life: created on first start, rotated on request. Rotation
// publishes the next key before it signs (it is in the key set from its
// creation) and keeps a retired key published until the last token it
// signed has expired.

import { generateSigningKey, KeyRing, loadKey, type SigningAlgorithm, type StoredKey } from "../crypto/keyring.js";
import type { MasterKey } from "../crypto/master-key.js";
import { appendAudit } from "../storage/audit.js";
import type { Db } from "../storage/db.js";
import { withTransaction } from "../storage/db.js";
import { activateKey, insertKey, keysInState, lockKeys, notifyKeysChanged, publishedKeys, retireKey } from "../storage/keys.js";

export interface KeyManagerOptions {
  readonly algorithm: SigningAlgorithm;
  /** The longest any token can live (plus leeway): how long a retired key stays published. */
  readonly retiredKeyLifetimeMs: number;
  readonly now: () => Date;
  readonly onChange?: (ring: KeyRing) => void;
}

export class KeyManager {
  private ring_: KeyRing | null = null;
  private lastReloadMs = 0;

  constructor(
    private readonly db: Db,
    private readonly master: MasterKey,
    private readonly opts: KeyManagerOptions,
  ) {}

  get ring(): KeyRing {
    if (!this.ring_) throw new Error("keys not loaded");
    return this.ring_;
  }

  /** Creates the first active and next keys if the database has none, then loads the ring. */
  async start(): Promise<void> {
    await withTransaction(this.db, async (tx) => {
      await lockKeys(tx);
      const now = this.opts.now();
      const created: StoredKey[] = [];
      if ((await keysInState(tx, "active")).length === 0) {
        const active = await generateSigningKey(this.opts.algorithm, this.master, "active", now);
        await insertKey(tx, active);
        created.push(active);
      }
      if ((await keysInState(tx, "next")).length === 0) {
        const next = await generateSigningKey(this.opts.algorithm, this.master, "next", now);
        await insertKey(tx, next);
        created.push(next);
      }
      if (created.length > 0) {
        await appendAudit(tx, [
          {
            kind: "key.created",
            time: now,
            appId: null,
            requestId: null,
            actor: "broker",
            data: { key_ids: created.map((k) => k.keyId), states: created.map((k) => k.state) },
          },
        ]);
      }
    });
    await this.reload();
  }

  /** Reloads the published keys from the database (another replica may have rotated). */
  async reload(): Promise<KeyRing> {
    const stored = await publishedKeys(this.db, this.opts.now());
    const ring = new KeyRing(stored.map((k) => loadKey(k, this.master)));
    const changed = this.ring_?.jwksJson !== ring.jwksJson;
    this.ring_ = ring;
    this.lastReloadMs = Date.now();
    if (changed) this.opts.onChange?.(ring);
    return ring;
  }

  /**
   * Reloads at most once per `minIntervalMs`: called when a token names an
   * unknown key, which a hostile caller can do at will.
   */
  async reloadIfStale(minIntervalMs = 1000): Promise<KeyRing> {
    if (Date.now() - this.lastReloadMs < minIntervalMs) return this.ring;
    return this.reload();
  }

  /** next -> active, active -> retired, new next. Returns the new ring. */
  async rotate(requestId: string | null): Promise<KeyRing> {
    await withTransaction(this.db, async (tx) => {
      await lockKeys(tx);
      const now = this.opts.now();
      const [active] = await keysInState(tx, "active");
      const [next] = await keysInState(tx, "next");
      if (!active || !next) throw new Error("key table is missing its active or next key");
      await retireKey(tx, active.keyId, now, new Date(now.getTime() + this.opts.retiredKeyLifetimeMs));
      await activateKey(tx, next.keyId, now);
      const fresh = await generateSigningKey(this.opts.algorithm, this.master, "next", now);
      await insertKey(tx, fresh);
      await notifyKeysChanged(tx);
      await appendAudit(tx, [
        {
          kind: "key.rotated",
          time: now,
          appId: null,
          requestId,
          actor: "operator",
          data: { retired_key_id: active.keyId, active_key_id: next.keyId, next_key_id: fresh.keyId },
        },
      ]);
    });
    return this.reload();
  }
}
