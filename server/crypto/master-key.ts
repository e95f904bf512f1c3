// Private signing keys are stored encrypted under the master key
// (AES-256-GCM, the key id as associated data so a ciphertext cannot be
// moved to another key's row).

import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/** The master key does not open a ciphertext: it is not the key that sealed it (or the data was altered). */
export class MasterKeyMismatchError extends Error {
  constructor() {
    super("the master key does not decrypt this data");
  }
}

export class MasterKey {
  private constructor(private readonly key: Buffer) {}

  /** From 32 bytes, base64 or base64url encoded. */
  static fromBase64(text: string): MasterKey {
    const key = Buffer.from(text, "base64");
    if (key.length !== 32) throw new Error("master key must be 32 bytes, base64-encoded");
    return new MasterKey(key);
  }

  static generate(): string {
    return randomBytes(32).toString("base64");
  }

  encrypt(plain: Buffer, aad: string): Buffer {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.key, iv);
    c.setAAD(Buffer.from(aad, "utf8"));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([iv, c.getAuthTag(), body]);
  }

  decrypt(sealed: Buffer, aad: string): Buffer {
    const d = createDecipheriv("aes-256-gcm", this.key, sealed.subarray(0, 12));
    d.setAAD(Buffer.from(aad, "utf8"));
    d.setAuthTag(sealed.subarray(12, 28));
    try {
      return Buffer.concat([d.update(sealed.subarray(28)), d.final()]);
    } catch {
      // node:crypto only says "Unsupported state or unable to authenticate data".
      throw new MasterKeyMismatchError();
    }
  }
}
