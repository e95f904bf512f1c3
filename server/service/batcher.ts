// Group commit: while one batch is being written, the next requests queue and
// go together in the following one. At concurrency 1 a batch is one request
// (no added latency); under load one commit serves dozens of requests.
//
// Two rules keep the callers in two groups that take turns, one being
// written while the broker prepares the other (signing, checks, gRPC),
// instead of one group that waits for the database and then for the broker:
//
// - A batch starts on the event loop's next turn (setImmediate), not at the
//   first submit: requests that arrive together (one socket read carries
//   dozens of calls, and they reach the writer in the same turn) go in one
//   batch instead of a batch of one and a batch of the rest.
// - A batch takes at most half of the most requests seen waiting or being
//   written at once over the last second or so. In a steady load that is
//   half of the callers, so the other half is prepared meanwhile. Without it,
//   Issue at concurrency 64 alternated batches of 63 and 1 and the broker's
//   thread sat idle a quarter of the time (BENCHMARKS.md, issue 10).
//
// A batch is written in the trace context of its first request (see
// captureContext): otherwise every batch would join the trace of whichever
// request started the drain loop, long after that request ended.

import { captureContext, type InContext } from "../telemetry/tracing.js";

const PEAK_WINDOW_MS = 1000;

interface Pending<In, Out> {
  readonly input: In;
  readonly resolve: (out: Out) => void;
  readonly reject: (err: unknown) => void;
  readonly inContext: InContext;
}

export class Batcher<In, Out> {
  private queue: Pending<In, Out>[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Requests in batches being written. */
  private writing = 0;
  /** The most requests waiting or being written at once, this window and the last. */
  private peak = 0;
  private lastPeak = 0;
  private windowStart = 0;

  /**
   * `write` answers each input of a batch, in order, or throws for all.
   * `maxInFlight` batches may be written at once: a second one can do its
   * work while the first waits on its commit.
   */
  constructor(
    private readonly write: (batch: readonly In[]) => Promise<readonly Out[]>,
    private readonly maxBatch = 256,
    private readonly maxInFlight = 1,
  ) {}

  submit(input: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.queue.push({ input, resolve, reject, inContext: captureContext() });
      const now = performance.now();
      if (now - this.windowStart >= PEAK_WINDOW_MS) {
        this.lastPeak = this.peak;
        this.peak = 0;
        this.windowStart = now;
      }
      this.peak = Math.max(this.peak, this.queue.length + this.writing);
      if (this.inFlight < this.maxInFlight && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          if (this.inFlight < this.maxInFlight) void this.drain();
        });
      }
    });
  }

  /** The largest batch to take now: half the recent peak, within maxBatch. */
  private batchSize(): number {
    return Math.min(this.maxBatch, Math.max(1, Math.ceil(Math.max(this.peak, this.lastPeak) / 2)));
  }

  private async drain(): Promise<void> {
    this.inFlight++;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.batchSize());
        this.writing += batch.length;
        try {
          const out = await batch[0]!.inContext(() => this.write(batch.map((p) => p.input)));
          batch.forEach((p, i) => p.resolve(out[i]!));
        } catch (err) {
          for (const p of batch) p.reject(err);
        } finally {
          this.writing -= batch.length;
        }
      }
    } finally {
      this.inFlight--;
    }
  }
}
