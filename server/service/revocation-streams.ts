// StreamRevocations, without gRPC (DESIGN §7). Each subscriber gets:
//   no cursor:  a snapshot of the live revocations, SnapshotComplete, then live events;
//   a cursor:   every revocation after it, then live events;
// in cursor (= commit) order, each exactly once; Checkpoints on an interval
// when idle; KeySetChanged when the key set changes. Live events wait in a
// bounded buffer while the transport is full; past the bound the stream ends
// with SUBSCRIBER_TOO_SLOW carrying the last delivered cursor.
//
// No gap, no duplicate: a session subscribes to the revocation state before
// it reads the table, and drops live events at or below what the read
// covered. The state emits every cursor in order, so whatever the read did
// not cover arrives live.
//
// Tenant isolation: each session sends only what its subscriber may see
// (`visibleTo`): a resource server, the revocations whose audiences meet its
// own; an app, its own; the operator, all. A skipped revocation still moves
// the session's resume point past it, so checkpoints (and the cursor in a
// resumable error) carry the latest cursor and resuming stays lossless.

import {
  type BatonError,
  CursorExpiredError,
  CursorInvalidError,
  NotPermittedError,
  ResourceServerDisabledError,
  ShuttingDownError,
  SubscriberTooSlowError,
} from "../domain/errors.js";
import type { StoredRevocation } from "../domain/revocations.js";
import type { Db } from "../storage/db.js";
import { cursorBounds, revocationsAfter, revocationSnapshot } from "../storage/revocations.js";
import type { Principal } from "./principals.js";
import type { RevocationState } from "./revocation-state.js";

export type StreamEvent =
  | { readonly kind: "revocation"; readonly revocation: StoredRevocation }
  | { readonly kind: "snapshotComplete"; readonly cursor: bigint }
  | { readonly kind: "checkpoint"; readonly cursor: bigint; readonly observeMs: number }
  | { readonly kind: "keySetChanged"; readonly jwksJson: string };

/** What a session writes to: a gRPC server stream in production. */
export interface StreamSink {
  /** Writes one event; false when the transport's buffer is full. */
  write(e: StreamEvent): boolean;
  /** Calls `fn` once the transport can take more. */
  onceDrained(fn: () => void): void;
  /** Ends the stream: cleanly (null) or with an error. */
  end(err: BatonError | null): void;
}

export interface StreamSettings {
  readonly checkpointIntervalMs: number;
  /** Live events a session may hold while its transport is full. */
  readonly maxBufferedEvents: number;
  readonly now: () => number;
}

/** Which revocations a subscriber may see. */
export type Visibility = (r: StoredRevocation) => boolean;

/**
 * What `p` may see: a revocation can affect tokens for the audiences it
 * records, so a resource server sees those that meet its own; an app sees
 * its own app's; the operator sees everything.
 */
export function visibleTo(p: Principal): Visibility {
  switch (p.kind) {
    case "operator":
      return () => true;
    case "app": {
      const appId = p.app.appId;
      return (r) => r.appId === appId;
    }
    case "resourceServer": {
      const served = new Set(p.resourceServer.audiences);
      return (r) => r.audiences.some((a) => served.has(a));
    }
    case "agent":
    case "approver":
      throw new NotPermittedError(`${p.kind}s may not stream revocations`);
  }
}

const CURSOR = /^[0-9]{1,19}$/;
const REPLAY_PAGE = 1000;

export class RevocationStreams {
  private readonly sessions = new Set<Session>();
  private closing = false;

  constructor(
    private readonly db: Db,
    private readonly state: RevocationState,
    private readonly settings: StreamSettings,
  ) {}

  get count(): number {
    return this.sessions.size;
  }

  /**
   * Starts a stream. Throws CURSOR_INVALID or CURSOR_EXPIRED before anything
   * is sent. Returns a function that stops the session (on cancellation).
   */
  async open(cursorText: string, sink: StreamSink, subscriber: Principal): Promise<() => void> {
    const visible = visibleTo(subscriber);
    const owner = subscriber.kind === "resourceServer" ? subscriber.resourceServer.resourceServerId : null;
    if (this.closing) throw new ShuttingDownError();
    let from: bigint | null = null;
    if (cursorText !== "") {
      if (!CURSOR.test(cursorText)) throw new CursorInvalidError();
      from = BigInt(cursorText);
    }
    const session = new Session(sink, this.state, this.settings, visible, owner, () => this.sessions.delete(session));
    this.sessions.add(session);
    try {
      if (from === null) {
        const snap = await revocationSnapshot(this.db, this.settings.now());
        await session.start(snap.revocations, snap.cursor, null);
      } else {
        const bounds = await cursorBounds(this.db);
        if (from > bounds.latest) throw new CursorInvalidError();
        if (from < bounds.prunedThrough) throw new CursorExpiredError();
        const replay: StoredRevocation[] = [];
        let after = from;
        for (;;) {
          const rows = await revocationsAfter(this.db, after, REPLAY_PAGE);
          replay.push(...rows);
          if (rows.length < REPLAY_PAGE) break;
          after = rows.at(-1)!.cursor;
        }
        await session.start(replay, replay.at(-1)?.cursor ?? from, from);
      }
    } catch (err) {
      session.stop();
      throw err;
    }
    return () => session.stop();
  }

  /** Sends the new key set on every stream. */
  keySetChanged(jwksJson: string): void {
    for (const s of this.sessions) s.send({ kind: "keySetChanged", jwksJson });
  }

  /** Ends the streams of a disabled resource server. */
  closeResourceServer(id: string): void {
    for (const s of [...this.sessions]) if (s.owner === id) s.fail(() => new ResourceServerDisabledError());
  }

  /** Ends every stream with SHUTTING_DOWN (and its cursor), so clients resume elsewhere. */
  closeAll(): void {
    this.closing = true;
    for (const s of [...this.sessions]) s.fail((cursor) => new ShuttingDownError(cursor));
  }
}

class Session {
  /** Live events waiting for the transport, or for the initial read to finish. */
  private queue: StreamEvent[] = [];
  private live = false;
  private blocked = false;
  private stopped = false;
  /** Live revocations at or below this were covered by the initial read. */
  private floor = -1n;
  /**
   * The last cursor handed to the transport: where the subscriber can
   * resume. Null until a snapshot is complete (nothing to resume from yet).
   */
  private delivered: bigint | null = null;
  private readonly unsubscribe: () => void;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sink: StreamSink,
    private readonly state: RevocationState,
    private readonly settings: StreamSettings,
    private readonly visible: Visibility,
    /** The resource server subscribed, if one did. */
    readonly owner: string | null,
    private readonly onStop: () => void,
  ) {
    this.unsubscribe = state.subscribe((r) => this.send({ kind: "revocation", revocation: r }));
  }

  /** Sends the initial read (waiting on the transport as needed), then goes live. */
  async start(initial: readonly StoredRevocation[], coveredThrough: bigint, resumedFrom: bigint | null): Promise<void> {
    this.floor = coveredThrough;
    this.delivered = resumedFrom;
    for (const r of initial) {
      if (this.stopped) return;
      // Everything before `r` was handed over, so a skipped `r` is passed too.
      const more = this.visible(r) ? this.sink.write({ kind: "revocation", revocation: r }) : true;
      if (resumedFrom !== null) this.delivered = r.cursor;
      if (!more) await new Promise<void>((res) => this.sink.onceDrained(res));
    }
    if (this.stopped) return;
    if (resumedFrom === null) {
      this.blocked = !this.sink.write({ kind: "snapshotComplete", cursor: coveredThrough });
      this.delivered = coveredThrough;
    }
    this.queue = this.queue.filter((e) => e.kind !== "revocation" || e.revocation.cursor > this.floor);
    this.live = true;
    this.timer = setInterval(() => this.checkpoint(), this.settings.checkpointIntervalMs);
    this.timer.unref();
    if (this.blocked) this.sink.onceDrained(() => this.flush());
    else this.flush();
  }

  send(e: StreamEvent): void {
    if (this.stopped) return;
    if (e.kind === "revocation" && this.live && e.revocation.cursor <= this.floor) return;
    if (e.kind === "revocation" && !this.visible(e.revocation)) {
      // Not the subscriber's to see. When everything before it was handed
      // over, it is passed too; otherwise the resume point stays behind it
      // (safe: a resume replays it, skipped again) until a checkpoint.
      if (this.live && !this.blocked && this.queue.length === 0) this.delivered = e.revocation.cursor;
      return;
    }
    this.queue.push(e);
    if (this.queue.length > this.settings.maxBufferedEvents) {
      this.fail((cursor) => new SubscriberTooSlowError(cursor));
      return;
    }
    if (this.live && !this.blocked) this.flush();
  }

  private flush(): void {
    this.blocked = false;
    while (!this.stopped && this.queue.length > 0) {
      const e = this.queue.shift()!;
      if (e.kind === "revocation") this.delivered = e.revocation.cursor;
      if (!this.sink.write(e)) {
        this.blocked = true;
        this.sink.onceDrained(() => this.flush());
        return;
      }
    }
  }

  /** Idle and caught up: everything up to the state's cursor has been handed over. */
  private checkpoint(): void {
    if (this.stopped || this.blocked || this.queue.length > 0 || this.delivered === null) return;
    const cursor = this.delivered > this.state.lastCursor ? this.delivered : this.state.lastCursor;
    this.sink.write({ kind: "checkpoint", cursor, observeMs: this.state.lastSyncMs });
  }

  fail(error: (deliveredCursor: bigint | null) => BatonError): void {
    if (this.stopped) return;
    const err = error(this.delivered);
    this.stop();
    this.sink.end(err);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    if (this.timer) clearInterval(this.timer);
    this.queue = [];
    this.onStop();
  }
}
