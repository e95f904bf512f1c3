// A raw StreamRevocations subscriber for tests: collects every event, lets a
// test wait for a condition, and records how the stream ended.

import type { ClientReadableStream, Metadata } from "@grpc/grpc-js";
import type { BrokerServiceClient, StreamRevocationsResponse } from "../../server/gen/baton/v1/broker.js";
import { decodeError, type DecodedError } from "./broker.js";

export interface TestStream {
  readonly events: StreamRevocationsResponse[];
  /** Cursors of the revocations received, in arrival order. */
  readonly cursors: bigint[];
  readonly call: ClientReadableStream<StreamRevocationsResponse>;
  /** How the stream ended: an error, "end", or null while open. */
  ended: DecodedError | "end" | null;
  waitFor(pred: (s: TestStream) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  cancel(): void;
}

export function openStream(client: InstanceType<typeof BrokerServiceClient>, cursor: string, md: Metadata): TestStream {
  const call = client.streamRevocations({ cursor }, md);
  const s: TestStream = {
    events: [],
    cursors: [],
    call,
    ended: null,
    async waitFor(pred, timeoutMs = 10_000, what = "condition") {
      const deadline = Date.now() + timeoutMs;
      while (!pred(s)) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; ${s.cursors.length} revocations, ended: ${JSON.stringify(s.ended)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    cancel() {
      call.cancel();
    },
  };
  call.on("data", (e: StreamRevocationsResponse) => {
    s.events.push(e);
    if (e.revocation) s.cursors.push(BigInt(e.revocation.cursor));
  });
  call.on("error", (err) => {
    s.ended = (err as { code?: number }).code === 1 ? "end" : safeDecode(err);
  });
  call.on("end", () => {
    s.ended ??= "end";
  });
  return s;
}

function safeDecode(err: unknown): DecodedError {
  try {
    return decodeError(err);
  } catch {
    const e = err as { code: number; details: string };
    return { code: e.code, message: e.details, reason: "", domain: "", metadata: {} };
  }
}

/** The last cursor a stream has seen (revocation, snapshot marker or checkpoint). */
export function lastCursor(s: TestStream): string {
  for (let i = s.events.length - 1; i >= 0; i--) {
    const e = s.events[i]!;
    const c = e.revocation?.cursor ?? e.snapshotComplete?.cursor ?? e.checkpoint?.cursor;
    if (c !== undefined) return c;
  }
  return "";
}
