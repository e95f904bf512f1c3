// Group commit: while one batch is being written, the next requests queue and
// go together in the following one. At concurrency 1 a batch is one request
// (no added latency); under load one commit serves dozens of requests.
//
// A batch is written in the trace context of its first request (see
// captureContext): otherwise every batch would join the trace of whichever
// request started the drain loop, long after that request ended.

import { captureContext, type InContext } from "../telemetry/tracing.js";

interface Pending<In, Out> {
  readonly input: In;
  readonly resolve: (out: Out) => void;
  readonly reject: (err: unknown) => void;
  readonly inContext: InContext;
}

export class Batcher<In, Out> {
  private queue: Pending<In, Out>[] = [];
  private inFlight = 0;

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
      if (this.inFlight < this.maxInFlight) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.inFlight++;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const out = await batch[0]!.inContext(() => this.write(batch.map((p) => p.input)));
          batch.forEach((p, i) => p.resolve(out[i]!));
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.inFlight--;
    }
  }
}
