// Token signatures computed off the event loop. An ES256 signature is ~0.05 ms
// of CPU, a tenth or more of what the broker's one JavaScript thread spent on
// an Issue; on that thread it delays every other call. A worker thread signs
// instead: the signatures requested in one turn of the event loop go to it
// in one message (a cohort of calls arrives in one socket read), so the
// thread pays ~3 µs per signature for the hand-over. (Per-call asynchronous
// signing on libuv's pool cost ~0.3 ms per call in wake-ups: BENCHMARKS.md.)
//
// The worker holds no key of its own: each batch carries the KeyObjects it
// needs (shared with the worker, not copied out as bytes). Nothing is lost
// if the worker fails: the signatures it owed are made on the event loop,
// and so is every one after close().

import type { KeyObject } from "node:crypto";
import { Worker } from "node:worker_threads";
import { lowS, signBytes } from "./jws.js";
import type { SigningAlgorithm } from "./keyring.js";

export interface Signer {
  /** The signature over `data` as a JWS carries it (see jws.ts signBytes). */
  sign(data: Buffer, key: KeyObject, alg: SigningAlgorithm): Promise<Buffer>;
  close(): Promise<void>;
}

/** Signs on the calling thread. */
export const inlineSigner: Signer = {
  sign: async (data, key, alg) => signBytes(data, key, alg),
  close: async () => {},
};

// CommonJS, evaluated: the same under tsx and the compiled build. Answers
// each item with its raw signature or the error's message.
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { sign } = require("node:crypto");
parentPort.on("message", ({ id, keys, items }) => {
  const out = items.map(([k, es256, data]) => {
    try {
      return es256 ? sign("sha256", data, { key: keys[k], dsaEncoding: "ieee-p1363" }) : sign(null, data, keys[k]);
    } catch (err) {
      return String((err && err.message) || err);
    }
  });
  parentPort.postMessage({ id, out });
});
`;

/** How long after a failure signatures are made on the event loop before a new worker is tried. */
const RETRY_MS = 1000;

interface Job {
  readonly data: Buffer;
  readonly key: KeyObject;
  readonly alg: SigningAlgorithm;
  readonly resolve: (sig: Buffer) => void;
  readonly reject: (err: Error) => void;
}

export class SigningThread implements Signer {
  private worker: Worker | null = null;
  private queue: Job[] = [];
  private scheduled = false;
  private readonly sent = new Map<number, Job[]>();
  private nextId = 0;
  private closed = false;
  /** After a failure, signatures are made here until then (ms, performance.now()). */
  private retryAt = 0;

  /** `onFailure` hears of a worker that failed (its signatures, and the next second's, are then made here). */
  constructor(private readonly onFailure: (err: Error) => void = () => {}) {}

  sign(data: Buffer, key: KeyObject, alg: SigningAlgorithm): Promise<Buffer> {
    if (this.closed) return inlineSigner.sign(data, key, alg);
    return new Promise((resolve, reject) => {
      this.queue.push({ data, key, alg, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
    this.signHere([...this.sent.values()].flat());
    this.sent.clear();
    this.flush();
  }

  private flush(): void {
    this.scheduled = false;
    const jobs = this.queue;
    this.queue = [];
    if (jobs.length === 0) return;
    // One signature alone is made here: handing it over and back costs more
    // time (0.11-0.19 ms measured at idle) than making it (~0.05-0.07 ms),
    // and a lone call is no load on the event loop.
    const worker = this.closed || jobs.length === 1 ? null : this.started();
    if (!worker) return this.signHere(jobs);
    const keys: KeyObject[] = [];
    const items = jobs.map((j) => {
      let k = keys.indexOf(j.key);
      if (k < 0) k = keys.push(j.key) - 1;
      return [k, j.alg === "ES256", j.data] as const;
    });
    const id = this.nextId++;
    this.sent.set(id, jobs);
    worker.postMessage({ id, keys, items });
  }

  private started(): Worker | null {
    if (this.worker) return this.worker;
    if (performance.now() < this.retryAt) return null;
    try {
      const worker = new Worker(WORKER_SOURCE, { eval: true, name: "baton-signer" });
      // Never what keeps the process alive; close() ends it.
      worker.unref();
      worker.on("message", (m: { id: number; out: (Uint8Array | string)[] }) => this.answered(m.id, m.out));
      worker.on("error", (err) => this.failed(worker, err));
      worker.on("exit", (code) => this.failed(worker, new Error(`signing thread exited with code ${code}`)));
      this.worker = worker;
      return worker;
    } catch (err) {
      this.retryAt = performance.now() + RETRY_MS;
      this.onFailure(err as Error);
      return null;
    }
  }

  private answered(id: number, out: (Uint8Array | string)[]): void {
    const jobs = this.sent.get(id);
    if (!jobs) return;
    this.sent.delete(id);
    jobs.forEach((j, i) => {
      const r = out[i];
      if (typeof r === "string" || r === undefined) j.reject(new Error(`signing failed: ${r ?? "no answer"}`));
      // The worker made the raw signature; the low-S form is the same step signBytes takes.
      else {
        const sig = Buffer.from(r.buffer, r.byteOffset, r.byteLength);
        j.resolve(j.alg === "ES256" ? lowS(sig) : sig);
      }
    });
  }

  /** The worker ended or threw: what it owed is signed here; the next batch starts a new one. */
  private failed(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    this.retryAt = performance.now() + RETRY_MS;
    if (!this.closed) this.onFailure(err);
    const owed = [...this.sent.values()].flat();
    this.sent.clear();
    this.signHere(owed);
  }

  private signHere(jobs: readonly Job[]): void {
    for (const j of jobs) {
      try {
        j.resolve(signBytes(j.data, j.key, j.alg));
      } catch (err) {
        j.reject(err as Error);
      }
    }
  }
}
