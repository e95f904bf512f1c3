// AccessReporter: tells the broker what this resource server decided when
// agents used their tokens (BrokerService.ReportAccess), so the audit trail
// shows use as well as issuance.
//
// Reporting must never slow or break verification, so `report()` only copies
// the decision into a bounded in-memory buffer and returns: no network I/O,
// no promise, no await. A background flush sends the buffer in batches (at
// most 500, the broker's limit) every `flushIntervalMs`, or as soon as a
// batch fills. When the broker is unreachable (UNAVAILABLE, a deadline,
// RATE_LIMITED) the batch stays at the head of the buffer and is retried
// with exponential backoff; meanwhile new decisions fill the buffer, and
// once it holds `bufferSize` they are dropped and counted. The broker takes
// a batch all or nothing; when it refuses one as wrong (a report about a
// token it does not know: one long expired and pruned, say) it names the
// report, which is discarded and counted as rejected, and the rest is sent
// again. A refusal naming none discards the batch.
//
// Decisions about a token whose signature did not verify carry no trusted
// token id and agent, and are not reports (the middleware skips them).

import { status } from "@grpc/grpc-js";
import { optionalNumber, optionalString, requiredObject, requiredString } from "./args.js";
import { BrokerClient, MAX_ACCESS_REPORT_BATCH, type AppCredentials, type BrokerClientOptions } from "./client.js";
import { BatonError } from "./errors.js";

/** One access decision, as the resource server made it. */
export interface AccessDecision {
  /** `jti` of the token presented. */
  readonly tokenId: string;
  /** `sub` of the token presented (the agent). */
  readonly agentId: string;
  /** True when the request was let through. */
  readonly allowed: boolean;
  /** The scope the request needed. */
  readonly scope?: string;
  /** What was accessed, e.g. `GET /records/P-1042` (cut to 512 characters). Never a credential. */
  readonly resource?: string;
  /** Why it was denied: a TokenStatus name (`TOKEN_STATUS_REVOKED`) or a code of your own (cut to 128). */
  readonly reason?: string;
  /** The outcome, e.g. an HTTP or gRPC status (`200`, `OK`) (cut to 128). */
  readonly outcome?: string;
  /** The audience checked; the reporter's own by default. */
  readonly audience?: string;
  /** When the decision was made, in ms since the epoch; now by default. */
  readonly decideTimeMs?: number;
}

/** Options of {@link AccessReporter}. */
export interface AccessReporterOptions {
  /** The broker: a BrokerClient (shared, not closed by the reporter) or an address (a client the reporter owns). */
  readonly broker: BrokerClient | string;
  /** For an address: the client's options (TLS credentials off loopback). */
  readonly brokerOptions?: BrokerClientOptions;
  /** This resource server's client id (`rs_...`) and secret. */
  readonly credentials: AppCredentials;
  /** The audience this resource server serves, used when a decision names none. */
  readonly audience: string;
  /** The most decisions held; past it new ones are dropped and counted. Default 10000. */
  readonly bufferSize?: number;
  /** Reports per call, 1 to 500. Default 500. */
  readonly batchSize?: number;
  /** How often the buffer is sent, in ms. Default 1000. */
  readonly flushIntervalMs?: number;
  /** The first retry's delay after a failed send, in ms, doubling up to maxBackoffMs. Default 500. */
  readonly minBackoffMs?: number;
  /** The longest delay between retries, in ms. Default 30000. */
  readonly maxBackoffMs?: number;
  /** Each call's deadline, in ms. Default 5000. */
  readonly timeoutMs?: number;
  /** Told of every failed send (for logging); must not throw. */
  readonly onError?: (err: BatonError) => void;
}

/** What the reporter has done so far. */
export interface AccessReporterStats {
  /** Reports the broker stored. */
  readonly sent: number;
  /** Decisions dropped because the buffer was full (or the reporter closed). */
  readonly dropped: number;
  /** Send attempts that failed (each retry counts). */
  readonly failedBatches: number;
  /** Reports discarded because the broker refused them as invalid. */
  readonly rejected: number;
  /** Decisions waiting to be sent. */
  readonly pending: number;
}

/** A decision as buffered: every field set. */
type Buffered = Required<AccessDecision>;

// Refusals that go away by themselves: the batch is kept and retried.
const RETRYABLE = new Set<number>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED, status.ABORTED]);

// Control characters would make the broker refuse the whole batch.
const CONTROL = /[\p{Cc}\p{Cs}]/gu;
const clean = (s: string, max: number): string => {
  const cut = s.length > max ? s.slice(0, max) : s;
  CONTROL.lastIndex = 0;
  return CONTROL.test(cut) ? cut.replace(CONTROL, "?") : cut;
};

function requiredBoolean(value: unknown, name: string): boolean {
  if (typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, not ${value === null ? "null" : typeof value}`);
  return value;
}

function positiveInt(value: unknown, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = optionalNumber(value, name) ?? fallback;
  if (!Number.isInteger(v) || v < 1 || v > max) throw new TypeError(`${name} must be an integer from 1 to ${max}`);
  return v;
}

/**
 * Reports access decisions to the broker in the background.
 *
 * @example
 * ```ts
 * const reporter = new AccessReporter({ broker, credentials: { clientId: rsId, clientSecret: rsSecret }, audience: "ehr-api" });
 * app.use(batonHttpMiddleware(verifier, { reporter }));   // reports every decision
 * reporter.report({ tokenId, agentId, allowed: false, reason: "consent_missing", resource: "GET /records/P-1" });
 * await reporter.close();                                  // flushes, up to 5 s
 * ```
 */
export class AccessReporter {
  readonly #broker: BrokerClient;
  readonly #ownsBroker: boolean;
  readonly #credentials: AppCredentials;
  readonly #audience: string;
  readonly #bufferSize: number;
  readonly #batchSize: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #timeoutMs: number;
  readonly #onError: ((err: BatonError) => void) | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  /** Oldest first; the head batch stays here until the broker has it. */
  #buffer: Buffered[] = [];
  #sending: Promise<void> | null = null;
  #kicked = false;
  #closed = false;
  #retryAtMs = 0;
  #backoffMs = 0;
  #sent = 0;
  #dropped = 0;
  #failedBatches = 0;
  #rejected = 0;

  constructor(options: AccessReporterOptions) {
    requiredObject(options, "options");
    requiredObject(options.credentials, "options.credentials");
    this.#credentials = {
      clientId: requiredString(options.credentials.clientId, "options.credentials.clientId"),
      clientSecret: requiredString(options.credentials.clientSecret, "options.credentials.clientSecret"),
    };
    if (!requiredString(options.audience, "options.audience")) throw new TypeError("options.audience is required");
    this.#audience = options.audience;
    this.#bufferSize = positiveInt(options.bufferSize, "options.bufferSize", 10_000);
    this.#batchSize = positiveInt(options.batchSize, "options.batchSize", MAX_ACCESS_REPORT_BATCH, MAX_ACCESS_REPORT_BATCH);
    const interval = positiveInt(options.flushIntervalMs, "options.flushIntervalMs", 1000);
    this.#minBackoffMs = positiveInt(options.minBackoffMs, "options.minBackoffMs", 500);
    this.#maxBackoffMs = positiveInt(options.maxBackoffMs, "options.maxBackoffMs", 30_000);
    this.#timeoutMs = positiveInt(options.timeoutMs, "options.timeoutMs", 5000);
    if (options.onError !== undefined && typeof options.onError !== "function") throw new TypeError("options.onError must be a function");
    this.#onError = options.onError;
    if (typeof options.broker === "string") {
      this.#broker = new BrokerClient(options.broker, options.brokerOptions);
      this.#ownsBroker = true;
    } else if (options.broker instanceof BrokerClient) {
      this.#broker = options.broker;
      this.#ownsBroker = false;
    } else {
      throw new TypeError("options.broker must be a BrokerClient or an address");
    }
    this.#timer = setInterval(() => this.#tick(), interval);
    // The reporter never keeps a process alive by itself.
    this.#timer.unref();
  }

  /**
   * Queues one decision and returns at once: no I/O, never throws for a
   * full buffer or an unreachable broker. Returns false when the decision
   * was dropped (buffer full, or the reporter closed).
   */
  report(decision: AccessDecision): boolean {
    requiredObject(decision, "decision");
    if (this.#closed || this.#buffer.length >= this.#bufferSize) {
      this.#dropped++;
      return false;
    }
    this.#buffer.push({
      tokenId: requiredString(decision.tokenId, "decision.tokenId"),
      agentId: requiredString(decision.agentId, "decision.agentId"),
      audience: decision.audience === undefined ? this.#audience : requiredString(decision.audience, "decision.audience"),
      scope: optionalString(decision.scope, "decision.scope"),
      resource: clean(optionalString(decision.resource, "decision.resource"), 512),
      allowed: requiredBoolean(decision.allowed, "decision.allowed"),
      reason: clean(optionalString(decision.reason, "decision.reason"), 128),
      outcome: clean(optionalString(decision.outcome, "decision.outcome"), 128),
      decideTimeMs: optionalNumber(decision.decideTimeMs, "decision.decideTimeMs") ?? Date.now(),
    });
    // A full batch goes out soon, but never from inside report().
    if (this.#buffer.length >= this.#batchSize && !this.#kicked && this.#sending === null) {
      this.#kicked = true;
      setImmediate(() => {
        this.#kicked = false;
        this.#tick();
      });
    }
    return true;
  }

  /** The counters. */
  get stats(): AccessReporterStats {
    return { sent: this.#sent, dropped: this.#dropped, failedBatches: this.#failedBatches, rejected: this.#rejected, pending: this.#buffer.length };
  }

  /**
   * Sends everything buffered now, ignoring the backoff, for at most
   * `timeoutMs` (default 5000). Resolves true when the buffer is empty;
   * false when the deadline came first (the rest stays buffered).
   */
  async flush(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.#buffer.length > 0 && Date.now() < deadline) {
      if (this.#sending === null) this.#start(deadline);
      const left = deadline - Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#sending, new Promise((r) => (timer = setTimeout(r, Math.max(left, 0))))]);
      clearTimeout(timer);
      // A failed send leaves a backoff: wait a little, not a spin, before the next try.
      if (this.#buffer.length > 0 && this.#sending === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, Math.min(this.#minBackoffMs, Math.max(deadline - Date.now(), 0))));
      }
    }
    return this.#buffer.length === 0;
  }

  /**
   * Stops the background flush, sends what is buffered (for at most
   * `timeoutMs`, default 5000) and closes the broker client when the
   * reporter made it. Later reports are dropped. Resolves true when
   * everything was sent.
   */
  async close(timeoutMs = 5000): Promise<boolean> {
    this.#closed = true;
    clearInterval(this.#timer);
    const drained = await this.flush(timeoutMs);
    if (this.#ownsBroker) this.#broker.close();
    return drained;
  }

  #tick(): void {
    if (this.#sending !== null || this.#buffer.length === 0 || Date.now() < this.#retryAtMs) return;
    this.#start(Number.POSITIVE_INFINITY);
  }

  /** Starts the one sender; it clears #sending when done (asynchronously, so after this assignment). */
  #start(deadline: number): void {
    this.#sending = this.#sendAll(deadline).finally(() => {
      this.#sending = null;
    });
  }

  /** Sends batches from the head until the buffer is empty, a send fails, or `deadline`. */
  async #sendAll(deadline: number): Promise<void> {
    while (this.#buffer.length > 0 && Date.now() < deadline) {
      const batch = this.#buffer.slice(0, this.#batchSize);
      try {
        const timeoutMs = Math.max(1, Math.min(this.#timeoutMs, deadline - Date.now()));
        await this.#broker.reportAccess(this.#credentials, batch, { timeoutMs });
        this.#sent += batch.length;
        this.#backoffMs = 0;
        this.#buffer.splice(0, batch.length);
      } catch (err) {
        this.#failedBatches++;
        const e = err instanceof BatonError ? err : new BatonError(status.UNKNOWN, err instanceof Error ? err.message : String(err));
        try {
          this.#onError?.(e);
        } catch {
          // A logging hook must not stop reporting.
        }
        if (!RETRYABLE.has(e.code)) {
          // The broker names the report it refused: drop that one and send the rest again.
          // Without an index the whole batch is at fault.
          const index = Number(e.metadata.index ?? Number.NaN);
          const bad = Number.isInteger(index) && index >= 0 && index < batch.length ? 1 : batch.length;
          this.#rejected += bad;
          this.#buffer.splice(bad === 1 ? index : 0, bad);
          continue;
        }
        this.#backoffMs = Math.min(this.#maxBackoffMs, this.#backoffMs === 0 ? this.#minBackoffMs : this.#backoffMs * 2);
        // Jitter: many resource servers coming back together do not retry in step.
        this.#retryAtMs = Date.now() + this.#backoffMs * (0.5 + Math.random() / 2);
        return;
      }
    }
  }
}
