// Signing on a worker thread (server/crypto/signing-thread.ts): every token
// signed by the thread verifies, is in its one accepted form, and nothing is
// lost when the worker dies or the signer closes.

import { generateKeyPairSync, verify, type KeyObject } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { SigningThread } from "../../server/crypto/signing-thread.js";
import type { SigningAlgorithm } from "../../server/crypto/keyring.js";
import { isLowS } from "../helpers/low-s.js";

const es = generateKeyPairSync("ec", { namedCurve: "P-256" });
const ed = generateKeyPairSync("ed25519");

const verifies = (data: Buffer, sig: Buffer, key: KeyObject, alg: SigningAlgorithm): boolean =>
  alg === "ES256" ? verify("sha256", data, { key, dsaEncoding: "ieee-p1363" }, sig) : verify(null, data, key, sig);

const open: SigningThread[] = [];
const thread = (onFailure?: (err: Error) => void): SigningThread => {
  const t = new SigningThread(onFailure);
  open.push(t);
  return t;
};
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

/** 200 inputs alternating ES256 and EdDSA keys, signed at once. */
async function signMany(t: SigningThread): Promise<{ data: Buffer; sig: Buffer; alg: SigningAlgorithm }[]> {
  const jobs = Array.from({ length: 200 }, (_, i) => {
    const alg: SigningAlgorithm = i % 2 === 0 ? "ES256" : "EdDSA";
    const data = Buffer.from(`token input ${i}`);
    return { data, alg, sig: t.sign(data, (alg === "ES256" ? es : ed).privateKey, alg) };
  });
  return Promise.all(jobs.map(async (j) => ({ data: j.data, alg: j.alg, sig: await j.sig })));
}

describe("SigningThread", () => {
  it("answers every signature, each over its own input with its own key, ES256 ones low-S", async () => {
    const failures: Error[] = [];
    const t = thread((e) => failures.push(e));
    for (const { data, sig, alg } of await signMany(t)) {
      expect(verifies(data, sig, (alg === "ES256" ? es : ed).publicKey, alg)).toBe(true);
      if (alg === "ES256") expect(isLowS(`x.y.${sig.toString("base64url")}`)).toBe(true);
    }
    expect(failures).toEqual([]);
  });

  it("signs what a dead worker owed on the event loop, tells of the failure, and keeps signing", async () => {
    const failures: Error[] = [];
    const t = thread((e) => failures.push(e));
    await signMany(t); // the worker is running
    const worker = (t as unknown as { worker: { terminate(): Promise<number> } }).worker;
    const pending = signMany(t);
    // The batch is posted on the next turn; the worker dies with it unanswered or not.
    await new Promise((resolve) => setImmediate(resolve));
    await worker.terminate();
    for (const { data, sig, alg } of await pending) expect(verifies(data, sig, (alg === "ES256" ? es : ed).publicKey, alg)).toBe(true);
    expect(failures.map((e) => e.message)).toEqual(["signing thread exited with code 1"]);
    for (const { data, sig, alg } of await signMany(t)) expect(verifies(data, sig, (alg === "ES256" ? es : ed).publicKey, alg)).toBe(true);
  });

  it("makes a lone signature on the event loop, without starting the worker", async () => {
    const t = thread();
    const data = Buffer.from("alone");
    expect(verifies(data, await t.sign(data, es.privateKey, "ES256"), es.publicKey, "ES256")).toBe(true);
    expect((t as unknown as { worker: unknown }).worker).toBeNull();
    await signMany(t);
    expect((t as unknown as { worker: unknown }).worker).not.toBeNull();
  });

  it("after close, signs on the event loop; what was asked before close is answered", async () => {
    const t = thread();
    const before = signMany(t);
    await t.close();
    const after = await signMany(t);
    for (const { data, sig, alg } of [...(await before), ...after]) expect(verifies(data, sig, (alg === "ES256" ? es : ed).publicKey, alg)).toBe(true);
  });

  it("refuses a key that cannot sign, for that input only", async () => {
    const t = thread();
    const [bad, good] = await Promise.allSettled([
      t.sign(Buffer.from("a"), es.publicKey, "ES256"),
      t.sign(Buffer.from("b"), es.privateKey, "ES256"),
    ]);
    expect(bad.status).toBe("rejected");
    expect(good.status === "fulfilled" && verifies(Buffer.from("b"), good.value, es.publicKey, "ES256")).toBe(true);
  });
});
