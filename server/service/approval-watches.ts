// WatchApproval: each open watch is sent the approval's state, then every
// change, and ends once it is no longer pending. Changes arrive as
// notifications on APPROVALS_CHANNEL from whichever replica made them (see
// main.ts); a watch re-reads the approval on each one and sends it when it
// differs from what it last sent. A timer at the approval's expiry re-reads
// it too, so an approval nobody decides still ends its watches as EXPIRED.

import { isTerminal } from "../domain/approvals.js";
import { ShuttingDownError } from "../domain/errors.js";
import type { ApprovalRecord } from "../storage/approvals.js";
import type { Approvals } from "./approvals.js";
import type { Principal } from "./principals.js";

export interface WatchSink {
  write(a: ApprovalRecord): void;
  /** Ends the stream: OK without an error. */
  end(err?: unknown): void;
}

interface Watch {
  readonly approvalId: string;
  readonly sink: WatchSink;
  /** What was last sent: the state and the decisions so far. */
  lastKey: string;
  timer: NodeJS.Timeout | null;
  /** Re-reads run one after another, so changes are sent in order. */
  reading: Promise<void>;
  done: boolean;
}

const keyOf = (a: ApprovalRecord): string => `${a.state}/${a.decisions.length}`;
/** Past the expiry instant, so the re-read finds it due. */
const EXPIRY_SLACK_MS = 50;

export class ApprovalWatches {
  private readonly watches = new Map<string, Set<Watch>>();
  private closing = false;

  constructor(
    private readonly approvals: Approvals,
    private readonly now: () => number,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  get count(): number {
    let n = 0;
    for (const s of this.watches.values()) n += s.size;
    return n;
  }

  /** Starts a watch for a caller who may read the approval (else NOT_FOUND); returns its stop function. */
  async open(caller: Principal, approvalId: string, sink: WatchSink): Promise<() => void> {
    if (this.closing) throw new ShuttingDownError();
    const a = await this.approvals.get(caller, approvalId);
    const w: Watch = { approvalId, sink, lastKey: keyOf(a), timer: null, reading: Promise.resolve(), done: false };
    sink.write(a);
    if (isTerminal(a.state)) {
      w.done = true;
      sink.end();
      return () => {};
    }
    let set = this.watches.get(approvalId);
    if (!set) this.watches.set(approvalId, (set = new Set()));
    set.add(w);
    w.timer = setTimeout(() => this.refresh(w), Math.max(0, a.expireTime.getTime() - this.now()) + EXPIRY_SLACK_MS);
    w.timer.unref();
    // It may have changed between the read and the registration.
    this.refresh(w);
    return () => this.remove(w);
  }

  /** A notification: the approval changed somewhere. */
  changed(approvalId: string): void {
    for (const w of this.watches.get(approvalId) ?? []) this.refresh(w);
  }

  /** After a lost LISTEN connection: whatever changed meanwhile is in the table. */
  refreshAll(): void {
    for (const set of this.watches.values()) for (const w of set) this.refresh(w);
  }

  /** Broker shutdown: every watch ends with SHUTTING_DOWN; the client watches again elsewhere. */
  closeAll(): void {
    this.closing = true;
    for (const set of [...this.watches.values()]) {
      for (const w of [...set]) {
        this.remove(w);
        w.sink.end(new ShuttingDownError());
      }
    }
  }

  private refresh(w: Watch): void {
    w.reading = w.reading.then(async () => {
      if (w.done) return;
      let a: ApprovalRecord | null;
      try {
        a = await this.approvals.current(w.approvalId);
      } catch (err) {
        // The next notification, the expiry timer or a reconnect reads again.
        this.onError(err);
        return;
      }
      if (!a || w.done) return;
      if (keyOf(a) === w.lastKey) return;
      w.lastKey = keyOf(a);
      w.sink.write(a);
      if (isTerminal(a.state)) {
        this.remove(w);
        w.sink.end();
      }
    });
  }

  private remove(w: Watch): void {
    w.done = true;
    if (w.timer) clearTimeout(w.timer);
    const set = this.watches.get(w.approvalId);
    set?.delete(w);
    if (set?.size === 0) this.watches.delete(w.approvalId);
  }
}
