// RevocationSubscriber: a resource server's live copy of the broker's
// revocations (DESIGN §6, §7). It holds StreamRevocations open, keeps a local
// RevocationSet, and answers "is this token revoked?" from memory, for the
// TokenVerifier (verifier.ts).
//
//   first connect:  no cursor: snapshot, SnapshotComplete, then live events
//   reconnect:      from the last cursor it applied (replay, then live), with
//                   exponential backoff and full jitter
//   CURSOR_EXPIRED / CURSOR_INVALID: forget the cursor and take a fresh
//                   snapshot; the old set keeps answering until the new one
//                   is complete (SnapshotComplete), then is replaced
//   SUBSCRIBER_TOO_SLOW / SHUTTING_DOWN: resume from its own applied cursor.
//                   The error's `cursor` metadata names the last one the
//                   broker handed over; ours is what actually reached the
//                   set, so it is the one that cannot skip an event.
//
// `freshAtMs` is the local time up to which the set is known complete: set
// when SnapshotComplete is received (the snapshot was read just before), and
// on each Checkpoint to min(now, checkpoint.observe_time), where observe_time
// is when the broker's own view last matched the database. Taking
// observe_time rather than "a message arrived" catches a broker that still
// streams checkpoints but has lost its database; taking the minimum with now
// means a broker clock ahead of ours never makes us look fresher. A
// revocation event does not advance it: it proves the stream is alive, not
// that nothing is missing after it. It never goes backwards.
//
// The stream has a channel of its own, never shared with a BrokerClient's
// unary calls (grpc-js would otherwise pool one HTTP/2 connection between
// clients of the same address): a connection the broker closes over a bad
// unary call (GOAWAY) must not take the stream down with it. The broker
// sends a Checkpoint at least every checkpoint interval, so a stream silent
// for idleTimeoutMs (twice that by default) is presumed half-open: it is
// cancelled and its channel closed, and the next connect opens a new
// connection and resumes from the cursor. Meanwhile freshAtMs does not move,
// so verifiers go STALE as they would for any outage.
//
// The matching rules mirror the broker's (server/domain/revocations.ts),
// reimplemented here because the SDK ships on its own.

import { credentials as grpcCredentials, status, type ChannelCredentials, type ClientOptions, type ClientReadableStream } from "@grpc/grpc-js";
import type { JSONWebKeySet } from "jose";
import { optionalString, requiredObject } from "./args.js";
import { callerMetadata, checkCaller, isLoopbackTarget, type AppOrOperator } from "./client.js";
import { BatonError, fromServiceError } from "./errors.js";
import { BrokerServiceClient, RevocationTarget, type Revocation, type StreamRevocationsResponse } from "./gen/baton/v1/broker.js";

/** One ancestor of a delegated token: its token id (`jti`) and agent id (`sub`). */
export interface LineageFacts {
  /** The ancestor token's id. */
  readonly tokenId: string;
  /** The ancestor token's agent id. */
  readonly agentId: string;
}

/** What a revocation check needs of a token. {@link VerifiedClaims} (verifier.ts) has all of it. */
export interface RevocationFacts {
  /** `jti`. */
  readonly tokenId: string;
  /** `sub`: the agent. */
  readonly agentId: string;
  /** `client_id`: the app of the chain's root. */
  readonly appId: string;
  /** The task id. */
  readonly taskId: string;
  /** The ancestors, root first; empty for a token issued by an app. */
  readonly lineage: readonly LineageFacts[];
  /** When the chain's root was issued (`root_iat`, or `iat` without lineage), in ms. */
  readonly rootIssuedAtMs: number;
}

interface Entry {
  readonly revokedAtMs: number;
  readonly expiresAtMs: number;
  readonly cursor: string;
}

const taskKey = (appId: string, taskId: string): string => `${appId}\u0000${taskId}`;

/**
 * A set of revocations, indexed so a check costs O(lineage). A token is
 * revoked when its own id or an ancestor's id (TOKEN), its agent or an
 * ancestor's agent (AGENT), its chain's root token id (CHAIN), or its app
 * (APP) or app and task (TASK) for a chain rooted at or before the
 * revocation, matches an entry.
 */
export class RevocationSet {
  // id -> the latest expiry among revocations of that id
  readonly #tokens = new Map<string, number>();
  readonly #agents = new Map<string, number>();
  readonly #chains = new Map<string, number>();
  // key -> entries: a task or an app may be revoked more than once, at different times
  readonly #tasks = new Map<string, Entry[]>();
  readonly #apps = new Map<string, Entry[]>();

  /** Number of entries held. */
  get size(): number {
    let n = this.#tokens.size + this.#agents.size + this.#chains.size;
    for (const l of this.#tasks.values()) n += l.length;
    for (const l of this.#apps.values()) n += l.length;
    return n;
  }

  /** Adds a revocation; false when its target is unknown to this SDK (nothing could match it). */
  add(r: Revocation): boolean {
    // An unset expire_time is kept until... never: it cannot be proven harmless.
    const expiresAtMs = r.expireTime?.getTime() ?? Number.POSITIVE_INFINITY;
    const entry: Entry = { revokedAtMs: r.revokeTime?.getTime() ?? 0, expiresAtMs, cursor: r.cursor };
    switch (r.target) {
      case RevocationTarget.REVOCATION_TARGET_TOKEN:
        return keepLatest(this.#tokens, r.id, expiresAtMs);
      case RevocationTarget.REVOCATION_TARGET_AGENT:
        return keepLatest(this.#agents, r.id, expiresAtMs);
      case RevocationTarget.REVOCATION_TARGET_CHAIN:
        return keepLatest(this.#chains, r.id, expiresAtMs);
      case RevocationTarget.REVOCATION_TARGET_TASK:
        return append(this.#tasks, taskKey(r.appId, r.id), entry);
      case RevocationTarget.REVOCATION_TARGET_APP:
        return append(this.#apps, r.appId, entry);
      default:
        return false;
    }
  }

  /** Whether some entry matches the token (see the class comment). */
  isRevoked(t: RevocationFacts): boolean {
    if (this.#tokens.has(t.tokenId) || this.#agents.has(t.agentId)) return true;
    for (const a of t.lineage) {
      if (this.#tokens.has(a.tokenId) || this.#agents.has(a.agentId)) return true;
    }
    if (this.#chains.has(t.lineage[0]?.tokenId ?? t.tokenId)) return true;
    return revokedBefore(this.#apps.get(t.appId), t.rootIssuedAtMs) || revokedBefore(this.#tasks.get(taskKey(t.appId, t.taskId)), t.rootIssuedAtMs);
  }

  /** Forgets entries whose every possible match expired before `nowMs`. Returns how many. */
  prune(nowMs: number): number {
    let removed = 0;
    for (const m of [this.#tokens, this.#agents, this.#chains]) {
      for (const [k, exp] of m) {
        if (exp < nowMs) {
          m.delete(k);
          removed += 1;
        }
      }
    }
    for (const m of [this.#tasks, this.#apps]) {
      for (const [k, list] of m) {
        const kept = list.filter((e) => e.expiresAtMs >= nowMs);
        removed += list.length - kept.length;
        if (kept.length === 0) m.delete(k);
        else m.set(k, kept);
      }
    }
    return removed;
  }
}

function keepLatest(m: Map<string, number>, k: string, exp: number): boolean {
  const prev = m.get(k);
  m.set(k, prev === undefined ? exp : Math.max(prev, exp));
  return true;
}

function append(m: Map<string, Entry[]>, k: string, e: Entry): boolean {
  const list = m.get(k);
  if (!list) m.set(k, [e]);
  else if (!list.some((x) => x.cursor === e.cursor)) list.push(e);
  return true;
}

function revokedBefore(list: readonly Entry[] | undefined, rootIssuedAtMs: number): boolean {
  return list !== undefined && list.some((e) => rootIssuedAtMs <= e.revokedAtMs);
}

/**
 * Where the subscriber is:
 * `idle` (not started), `connecting` (stream opened, nothing received yet),
 * `snapshot` (receiving a snapshot), `live` (set complete, following events),
 * `backoff` (stream ended; waiting to reconnect), `closed`.
 */
export type SubscriberState = "idle" | "connecting" | "snapshot" | "live" | "backoff" | "closed";

/** Options of {@link RevocationSubscriber}. */
export interface RevocationSubscriberOptions {
  /**
   * The broker (`host:port` or a gRPC target URI), or a function called at
   * every (re)connect that returns it: a list of replicas to rotate through,
   * or a discovery lookup.
   */
  readonly target: string | (() => string);
  /** Who subscribes: an app `{ clientId, clientSecret }` (Basic) or an operator `{ operatorToken }` (Bearer). */
  readonly caller: AppOrOperator;
  /** Transport security; as for BrokerClient, plaintext is allowed only to a loopback address. */
  readonly credentials?: ChannelCredentials;
  /** gRPC channel options. */
  readonly channelOptions?: Partial<ClientOptions>;
  /**
   * Resume after this cursor instead of starting with a snapshot. The set
   * starts empty, so this only makes sense with a set restored by the
   * caller; an expired or unknown cursor falls back to a snapshot.
   */
  readonly cursor?: string;
  /** The first reconnect waits up to this long, in ms; each failure doubles it. Default 200. */
  readonly backoffBaseMs?: number;
  /** The longest reconnect wait, in ms. Default 15000. */
  readonly backoffMaxMs?: number;
  /** How often expired revocations are forgotten, in ms. Default 60000. */
  readonly pruneIntervalMs?: number;
  /**
   * The broker's checkpoint interval (`BATON_STREAM_CHECKPOINT_SECONDS`), in
   * ms: an idle stream gets a Checkpoint at least this often. Default 5000.
   */
  readonly checkpointIntervalMs?: number;
  /**
   * Reconnect, on a new connection, when nothing at all (no message, not even
   * a Checkpoint) arrived for this long, in ms: a half-open connection
   * otherwise looks alive. Default 2 x checkpointIntervalMs; 0 disables.
   */
  readonly idleTimeoutMs?: number;
  /** The clock, in ms since the epoch. Default Date.now. */
  readonly now?: () => number;
}

/** Where a revocation came from: a snapshot, or a live (or replayed) event. */
export interface RevocationEventInfo {
  /** True for an entry of a snapshot (not yet in force until SnapshotComplete). */
  readonly snapshot: boolean;
}

type Listener<A extends unknown[]> = (...args: A) => void;

class Listeners<A extends unknown[]> {
  readonly #fns = new Set<Listener<A>>();
  add(fn: Listener<A>): () => void {
    this.#fns.add(fn);
    return () => this.#fns.delete(fn);
  }
  emit(...args: A): void {
    for (const fn of this.#fns) {
      try {
        fn(...args);
      } catch (err) {
        // A listener's bug must not stop the subscriber from keeping the set current.
        process.emitWarning(`a RevocationSubscriber listener threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
}

const REASON_CURSOR_EXPIRED = "CURSOR_EXPIRED";
const REASON_CURSOR_INVALID = "CURSOR_INVALID";

/**
 * Keeps a local copy of the broker's live revocations through
 * StreamRevocations, reconnecting and resuming as needed.
 *
 * @example
 * ```ts
 * const subscriber = new RevocationSubscriber({ target: "127.0.0.1:50051", caller: { clientId, clientSecret } });
 * subscriber.start();
 * await subscriber.ready();
 * subscriber.isRevoked(claims); // from memory
 * subscriber.close();
 * ```
 */
export class RevocationSubscriber {
  readonly #opts: RevocationSubscriberOptions;
  readonly #now: () => number;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  readonly #idleTimeoutMs: number;
  #set = new RevocationSet();
  /** The snapshot being received, which replaces #set at SnapshotComplete. */
  #pending: RevocationSet | null = null;
  /** The last cursor applied to #set; "" means the next connect takes a snapshot. */
  #cursor: string;
  #freshAtMs: number | null = null;
  #state: SubscriberState = "idle";
  #client: BrokerServiceClient | null = null;
  #address = "";
  #call: ClientReadableStream<StreamRevocationsResponse> | null = null;
  #attempt = 0;
  #reconnectTimer: NodeJS.Timeout | null = null;
  #idleTimer: NodeJS.Timeout | null = null;
  #pruneTimer: NodeJS.Timeout | null = null;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;
  #rejectReady!: (err: Error) => void;
  readonly #onRevocation = new Listeners<[Revocation, RevocationEventInfo]>();
  readonly #onKeySet = new Listeners<[JSONWebKeySet]>();
  readonly #onStateChange = new Listeners<[SubscriberState, BatonError | undefined]>();

  /** @throws TypeError when `target` is a non-loopback address and no `credentials` are given, or an option is out of range or of the wrong type */
  constructor(options: RevocationSubscriberOptions) {
    requiredObject(options, "options");
    // A wrong type here would otherwise fail every reconnect, forever.
    checkCaller(options.caller, "options.caller");
    if (typeof options.target !== "string" && typeof options.target !== "function") throw new TypeError("options.target must be a string or a function");
    this.#opts = options;
    this.#now = options.now ?? Date.now;
    this.#cursor = optionalString(options.cursor, "options.cursor");
    this.#backoffBaseMs = nonNegative(options.backoffBaseMs ?? 200, "backoffBaseMs");
    this.#backoffMaxMs = nonNegative(options.backoffMaxMs ?? 15_000, "backoffMaxMs");
    const checkpointIntervalMs = nonNegative(options.checkpointIntervalMs ?? 5_000, "checkpointIntervalMs");
    this.#idleTimeoutMs = nonNegative(options.idleTimeoutMs ?? 2 * checkpointIntervalMs, "idleTimeoutMs");
    if (nonNegative(options.pruneIntervalMs ?? 60_000, "pruneIntervalMs") === 0) throw new TypeError("pruneIntervalMs must be positive");
    if (typeof options.target === "string" && !options.credentials && !isLoopbackTarget(options.target)) {
      throw new TypeError("plaintext is only allowed on loopback: pass credentials (credentials.createSsl(...))");
    }
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#resolveReady = resolve;
      this.#rejectReady = reject;
    });
    // Nobody may ever call ready(); a rejection on close must not go unhandled.
    this.#ready.catch(() => {});
  }

  /** Opens the stream. Calling it again does nothing. @throws Error after close() */
  start(): void {
    if (this.#state === "closed") throw new Error("the subscriber is closed");
    if (this.#state !== "idle") return;
    this.#pruneTimer = setInterval(() => this.prune(), this.#opts.pruneIntervalMs ?? 60_000);
    this.#pruneTimer.unref();
    this.#connect();
  }

  /** Resolves once the set is first known complete (SnapshotComplete, or a Checkpoint when resuming); rejects if closed before. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * Whether a token is revoked, by the rules of DESIGN §6. During a
   * re-snapshot both the old set and the snapshot received so far are
   * consulted: either may only add revocations, never lift one.
   */
  isRevoked(facts: RevocationFacts): boolean {
    return this.#set.isRevoked(facts) || (this.#pending?.isRevoked(facts) ?? false);
  }

  /** The local time (ms) up to which the set is known complete (see the file header); null before the first. */
  get freshAtMs(): number | null {
    return this.#freshAtMs;
  }

  /** The last cursor applied; "" before the first snapshot completes or after a cursor error. */
  get cursor(): string {
    return this.#cursor;
  }

  /** The current state. */
  get state(): SubscriberState {
    return this.#state;
  }

  /** Entries in the set in force. */
  get size(): number {
    return this.#set.size;
  }

  /** Calls `fn` for every revocation received (snapshot entries included). Returns an unsubscribe function. */
  onRevocation(fn: (revocation: Revocation, info: RevocationEventInfo) => void): () => void {
    return this.#onRevocation.add(fn);
  }

  /** Calls `fn` with the new JWK set on every KeySetChanged. Returns an unsubscribe function. */
  onKeySet(fn: (jwks: JSONWebKeySet) => void): () => void {
    return this.#onKeySet.add(fn);
  }

  /** Calls `fn` on every state change; `backoff` comes with the error that ended the stream, if any. Returns an unsubscribe function. */
  onStateChange(fn: (state: SubscriberState, error: BatonError | undefined) => void): () => void {
    return this.#onStateChange.add(fn);
  }

  /** Forgets expired revocations now (also done on a timer). Returns how many. */
  prune(): number {
    const now = this.#now();
    return this.#set.prune(now) + (this.#pending?.prune(now) ?? 0);
  }

  /** Ends the stream, closes the channel and clears every timer; nothing of the subscriber keeps the process alive afterwards. */
  close(): void {
    if (this.#state === "closed") return;
    const call = this.#call;
    this.#call = null;
    call?.cancel();
    this.#client?.close();
    this.#client = null;
    for (const t of [this.#reconnectTimer, this.#idleTimer]) if (t) clearTimeout(t);
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    this.#reconnectTimer = this.#idleTimer = this.#pruneTimer = null;
    this.#pending = null;
    this.#setState("closed");
    this.#rejectReady(new BatonError(status.CANCELLED, "the subscriber was closed"));
  }

  #setState(s: SubscriberState, err?: BatonError): void {
    if (this.#state === s && err === undefined) return;
    this.#state = s;
    this.#onStateChange.emit(s, err);
  }

  #connect(): void {
    this.#reconnectTimer = null;
    if (this.#state === "closed") return;
    const { target, credentials, channelOptions, caller } = this.#opts;
    const address = typeof target === "function" ? target() : target;
    if (!credentials && !isLoopbackTarget(address)) {
      this.#retry(new BatonError(status.FAILED_PRECONDITION, "plaintext is only allowed on loopback: pass credentials"));
      return;
    }
    let call: ClientReadableStream<StreamRevocationsResponse>;
    try {
      if (!this.#client || this.#address !== address) {
        this.#client?.close();
        // A local subchannel pool: a connection of this channel's own (see the file header).
        this.#client = new BrokerServiceClient(address, credentials ?? grpcCredentials.createInsecure(), {
          ...channelOptions,
          "grpc.use_local_subchannel_pool": 1,
        });
        this.#address = address;
      }
      call = this.#client.streamRevocations({ cursor: this.#cursor }, callerMetadata(caller));
    } catch (err) {
      // A target grpc-js cannot parse, or an operator token metadata refuses.
      this.#client?.close();
      this.#client = null;
      this.#retry(err instanceof BatonError ? err : new BatonError(status.INVALID_ARGUMENT, err instanceof Error ? err.message : "cannot open the stream"));
      return;
    }
    this.#pending = this.#cursor === "" ? new RevocationSet() : null;
    this.#setState("connecting");
    this.#call = call;
    this.#armIdle();
    call.on("data", (msg: StreamRevocationsResponse) => {
      if (this.#call !== call) return;
      this.#attempt = 0;
      this.#armIdle();
      this.#apply(msg);
    });
    call.on("error", (err: unknown) => this.#ended(call, fromServiceError(err)));
    call.on("end", () => this.#ended(call, undefined));
  }

  #apply(msg: StreamRevocationsResponse): void {
    if (msg.revocation) {
      const r = msg.revocation;
      if (this.#pending) {
        this.#pending.add(r);
        this.#setState("snapshot");
      } else {
        this.#set.add(r);
        this.#cursor = r.cursor;
        this.#setState("live");
      }
      this.#onRevocation.emit(r, { snapshot: this.#pending !== null });
    } else if (msg.snapshotComplete) {
      if (this.#pending) this.#set = this.#pending;
      this.#pending = null;
      this.#cursor = msg.snapshotComplete.cursor;
      this.#fresh(this.#now());
    } else if (msg.checkpoint) {
      // The broker sends none before SnapshotComplete; one would say nothing about an incomplete set.
      if (this.#pending) return;
      this.#cursor = msg.checkpoint.cursor;
      const now = this.#now();
      this.#fresh(Math.min(now, msg.checkpoint.observeTime?.getTime() ?? now));
    } else if (msg.keySetChanged) {
      let jwks: unknown;
      try {
        jwks = JSON.parse(msg.keySetChanged.jwksJson);
      } catch {
        return;
      }
      if (typeof jwks === "object" && jwks !== null && Array.isArray((jwks as JSONWebKeySet).keys)) this.#onKeySet.emit(jwks as JSONWebKeySet);
    }
  }

  #fresh(atMs: number): void {
    this.#freshAtMs = this.#freshAtMs === null ? atMs : Math.max(this.#freshAtMs, atMs);
    this.#setState("live");
    this.#resolveReady();
  }

  #armIdle(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    if (this.#idleTimeoutMs === 0) return;
    this.#idleTimer = setTimeout(() => {
      const call = this.#call;
      if (!call) return;
      this.#ended(call, new BatonError(status.DEADLINE_EXCEEDED, `no message from the broker in ${this.#idleTimeoutMs} ms`));
      call.cancel();
      // The connection itself is suspect: the next connect opens a new one.
      this.#client?.close();
      this.#client = null;
    }, this.#idleTimeoutMs);
    this.#idleTimer.unref();
  }

  /** The stream ended (error, clean end or idle): pick the cursor to resume from and reconnect later. */
  #ended(call: ClientReadableStream<StreamRevocationsResponse>, err: BatonError | undefined): void {
    if (this.#call !== call) return;
    this.#call = null;
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    // A snapshot cut short is discarded whole; the next connect takes a new one.
    this.#pending = null;
    if (err?.reason === REASON_CURSOR_EXPIRED || err?.reason === REASON_CURSOR_INVALID) this.#cursor = "";
    this.#retry(err);
  }

  #retry(err: BatonError | undefined): void {
    if (this.#state === "closed") return;
    // Full jitter: uniform in [0, min(max, base * 2^attempt)].
    const ceiling = Math.min(this.#backoffMaxMs, this.#backoffBaseMs * 2 ** Math.min(this.#attempt, 30));
    this.#attempt += 1;
    this.#setState("backoff", err);
    this.#reconnectTimer = setTimeout(() => this.#connect(), Math.random() * ceiling);
    this.#reconnectTimer.unref();
  }
}

function nonNegative(v: number, name: string): number {
  if (!Number.isFinite(v) || v < 0) throw new TypeError(`${name} must be a non-negative number`);
  return v;
}
