// Signing keys: public JWK in clear, private part encrypted by the crypto
// layer before it reaches here (query functions only).

import type { KeyState, StoredKey } from "../crypto/keyring.js";
import type { Queryable } from "./db.js";

interface Row {
  key_id: string;
  algorithm: "ES256" | "EdDSA";
  state: KeyState;
  public_jwk: string;
  private_key_enc: Buffer;
  create_time: Date;
  activate_time: Date | null;
  retire_time: Date | null;
  expire_time: Date | null;
}

const fromRow = (r: Row): StoredKey => ({
  keyId: r.key_id,
  algorithm: r.algorithm,
  state: r.state,
  publicJwk: r.public_jwk,
  privateKeyEnc: r.private_key_enc,
  createTime: r.create_time,
  activateTime: r.activate_time,
  retireTime: r.retire_time,
  expireTime: r.expire_time,
});

/** Keys still published at `now`: next, active, and retired ones whose tokens may be alive. Newest first. */
export async function publishedKeys(db: Queryable, now: Date): Promise<StoredKey[]> {
  const { rows } = await db.query<Row>(
    "SELECT * FROM signing_keys WHERE state <> 'retired' OR expire_time >= $1 ORDER BY create_time DESC, key_id",
    [now],
  );
  return rows.map(fromRow);
}

export async function insertKey(db: Queryable, k: StoredKey): Promise<void> {
  await db.query(
    `INSERT INTO signing_keys (key_id, algorithm, state, public_jwk, private_key_enc, create_time, activate_time, retire_time, expire_time)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [k.keyId, k.algorithm, k.state, k.publicJwk, k.privateKeyEnc, k.createTime, k.activateTime, k.retireTime, k.expireTime],
  );
}

/** Locks the keys table against concurrent rotation (in a transaction). */
/** The channel that tells replicas the key table changed. */
export const KEYS_CHANNEL = "baton_keys";

/** Wakes every replica to reload the key set once this transaction commits. */
export async function notifyKeysChanged(tx: Queryable): Promise<void> {
  await tx.query("SELECT pg_notify($1, '')", [KEYS_CHANNEL]);
}

export async function lockKeys(db: Queryable): Promise<void> {
  await db.query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE");
}

export async function keysInState(db: Queryable, state: KeyState): Promise<StoredKey[]> {
  const { rows } = await db.query<Row>("SELECT * FROM signing_keys WHERE state = $1", [state]);
  return rows.map(fromRow);
}

export async function retireKey(db: Queryable, keyId: string, retireTime: Date, expireTime: Date): Promise<void> {
  await db.query("UPDATE signing_keys SET state = 'retired', retire_time = $2, expire_time = $3 WHERE key_id = $1", [
    keyId,
    retireTime,
    expireTime,
  ]);
}

export async function activateKey(db: Queryable, keyId: string, activateTime: Date): Promise<void> {
  await db.query("UPDATE signing_keys SET state = 'active', activate_time = $2 WHERE key_id = $1", [keyId, activateTime]);
}
