// Rate limits, in memory, per replica (N replicas admit up to N times the
// rate). Two kinds:
// - per app: Issue, Delegate and Revoke by an app or its agents take a token
//   from the app's bucket after authentication (so nobody can spend another
//   app's budget), and are refused with RATE_LIMITED when it is empty.
//   Validate is not charged: it does no database work, and resource servers
//   validating online for an app would otherwise share (and exhaust) the
//   budget its orchestrator issues with. The operator is never limited;
// - per resource server: each ReportAccess batch takes a token from the
//   resource server's bucket, at the default app rate, so one resource server
//   cannot flood the audit trail (RATE_LIMITED);
// - per source address: failed authentications take a token, and a source
//   with none left is refused with AUTHENTICATION_THROTTLED before its
//   credentials are even looked at.

import { isIP } from "node:net";
import { AuthenticationThrottledError, RateLimitedError, ReportsRateLimitedError } from "../domain/errors.js";
import { type Bucket, fullBucket, peek, perSecond, type Rate, take } from "../domain/rate-limit.js";
import type { AppRecord } from "../storage/apps.js";

/**
 * Buckets by key, the least recently used forgotten beyond `maxKeys`. A
 * forgotten bucket comes back full: forgetting one that is not costs the
 * limit some precision, never memory.
 */
class Buckets {
  private readonly map = new Map<string, Bucket>();

  constructor(private readonly maxKeys: number) {}

  get(key: string, rate: Rate, nowMs: number): Bucket {
    return this.map.get(key) ?? fullBucket(rate, nowMs);
  }

  set(key: string, b: Bucket): void {
    // Delete first: a Map iterates in insertion order, oldest first.
    this.map.delete(key);
    this.map.set(key, b);
    if (this.map.size > this.maxKeys) this.map.delete(this.map.keys().next().value!);
  }
}

const MAX_TRACKED_APPS = 100_000;
const MAX_TRACKED_SOURCES = 100_000;

export interface RateLimitSettings {
  /** For apps without their own limit: requests per second, and burst. */
  readonly appPerSecond: number;
  readonly appBurst: number;
  /** Failed authentications a source may make at once, regained at that many per window. */
  readonly authFailures: number;
  readonly authFailureWindowSeconds: number;
  readonly now: () => number;
}

export class RateLimits {
  private readonly apps = new Buckets(MAX_TRACKED_APPS);
  private readonly sources = new Buckets(MAX_TRACKED_SOURCES);
  private readonly resourceServers = new Buckets(MAX_TRACKED_APPS);
  /** Requests refused by an app's limit, and authentications refused for their source. */
  rateLimited = 0;
  authThrottled = 0;

  private readonly authRate: Rate;

  constructor(readonly settings: RateLimitSettings) {
    this.authRate = { count: settings.authFailures, periodMs: settings.authFailureWindowSeconds * 1000, burst: settings.authFailures };
  }

  /** The app's own limit, each part falling back to the default when unset (0). */
  rateOf(app: Pick<AppRecord, "ratePerSecond" | "rateBurst"> | null): Rate {
    const s = this.settings;
    return perSecond(app?.ratePerSecond || s.appPerSecond, app?.rateBurst || s.appBurst);
  }

  /** Takes a token for one request of `appId`, or throws RateLimitedError. */
  chargeApp(appId: string, rate: Rate): void {
    const nowMs = this.settings.now();
    const t = take(this.apps.get(appId, rate, nowMs), rate, nowMs);
    this.apps.set(appId, t.bucket);
    if (!t.ok) {
      this.rateLimited++;
      throw new RateLimitedError(appId, rate.count, rate.burst, t.retryAfterMs);
    }
  }

  /** Takes a token for one access-report batch of `resourceServerId` (default app rate), or throws. */
  chargeResourceServer(resourceServerId: string): void {
    const rate = this.rateOf(null);
    const nowMs = this.settings.now();
    const t = take(this.resourceServers.get(resourceServerId, rate, nowMs), rate, nowMs);
    this.resourceServers.set(resourceServerId, t.bucket);
    if (!t.ok) {
      this.rateLimited++;
      throw new ReportsRateLimitedError(resourceServerId, rate.count, rate.burst, t.retryAfterMs);
    }
  }

  /** Throws AuthenticationThrottledError when `source` has used up its failed attempts. */
  checkSource(source: string): void {
    const rate = this.authRate;
    const nowMs = this.settings.now();
    const p = peek(this.sources.get(source, rate, nowMs), rate, nowMs);
    if (!p.ok) {
      this.authThrottled++;
      throw new AuthenticationThrottledError(p.retryAfterMs);
    }
  }

  /** Counts one failed authentication against `source`. */
  sourceFailed(source: string): void {
    const rate = this.authRate;
    const nowMs = this.settings.now();
    this.sources.set(source, take(this.sources.get(source, rate, nowMs), rate, nowMs).bucket);
  }
}

/**
 * The key a peer address is throttled under: the IPv4 address, or the /64
 * of an IPv6 one (one host usually holds a whole /64, so per-address keys
 * would let it try 2^64 times). `address` is "host:port" as grpc-js reports
 * it (IPv6 hosts without brackets); anything else (a Unix socket) is one
 * source.
 */
export function sourceKey(address: string): string {
  const colon = address.lastIndexOf(":");
  const host = colon > 0 && /^\d+$/.test(address.slice(colon + 1)) ? address.slice(0, colon) : address;
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)?.[1] ?? bare;
  switch (isIP(v4)) {
    case 4:
      return v4;
    case 6:
      return `${ipv6Groups(v4).slice(0, 4).join(":")}::/64`;
    default:
      return "local";
  }
}

/** The eight 16-bit groups of a valid IPv6 address, as lower-case hex without leading zeros. */
function ipv6Groups(a: string): string[] {
  const noZone = a.split("%")[0]!;
  const [head, tail] = noZone.includes("::") ? noZone.split("::") : [noZone, null];
  const parse = (s: string | null | undefined): string[] => (s ? s.split(":") : []);
  const h = parse(head);
  const t = parse(tail);
  const groups = tail === null ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => (g.includes(".") ? g : parseInt(g, 16).toString(16)));
}
