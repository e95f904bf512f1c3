// One dedicated connection that LISTENs for the broker's notifications. A
// notification is only a wake-up: the tables are the truth. When the
// connection drops (a restart, pg_terminate_backend, a network cut) it
// reconnects with backoff and reports it, so the caller catches up on
// whatever was notified while nobody listened.

import pg from "pg";

export interface ListenerEvents {
  readonly onNotify: (channel: string, payload: string) => void;
  /** Called after every (re)connection once LISTEN is in place. */
  readonly onConnected: () => void;
  readonly onError: (err: unknown) => void;
}

const MAX_BACKOFF_MS = 5_000;

export class Listener {
  private client: pg.Client | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private failures = 0;

  constructor(
    private readonly connectionString: string,
    private readonly channels: readonly string[],
    private readonly events: ListenerEvents,
    /** An attempt that has not connected and listened within this is abandoned and retried. */
    private readonly connectTimeoutMs = 5_000,
  ) {}

  /** Connects and listens; resolves after the first attempt, successful or not. */
  async start(): Promise<void> {
    await this.connect();
  }

  get connected(): boolean {
    return this.client !== null;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: "baton-listen",
      connectionTimeoutMillis: this.connectTimeoutMs,
      query_timeout: this.connectTimeoutMs,
      // A silent network cut is noticed by TCP keepalive, not by the idle LISTEN.
      keepAlive: true,
    });
    let lost = false;
    const onLost = (err?: unknown): void => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = null;
      client.removeAllListeners("notification");
      client.end().catch(() => {});
      if (err !== undefined && !this.stopped) this.events.onError(err);
      this.scheduleReconnect();
    };
    client.on("error", onLost);
    client.on("end", () => onLost());
    client.on("notification", (n) => this.events.onNotify(n.channel, n.payload ?? ""));
    try {
      await client.connect();
      for (const channel of this.channels) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (err) {
      onLost(err);
      return;
    }
    if (lost || this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    this.failures = 0;
    this.events.onConnected();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const base = Math.min(MAX_BACKOFF_MS, 100 * 2 ** this.failures);
    this.failures += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, base / 2 + Math.random() * (base / 2));
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const c = this.client;
    this.client = null;
    if (c) await c.end().catch(() => {});
  }
}
