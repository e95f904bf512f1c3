// Every app and resource server, held in memory so that authenticating one
// never reads the database (and works while it is down). The view is
// complete: an id it does not hold does not exist. It is kept fresh by
// catching up on the rows changed since the last change it saw: on each
// notification, after each change made here, and on the periodic catch-up
// that also covers a lost notification.

import { type AppRecord, appsChangedSince } from "../storage/apps.js";
import type { Queryable } from "../storage/db.js";
import { type ResourceServerRecord, resourceServersChangedSince } from "../storage/resource-servers.js";

export class AppView {
  private readonly apps = new Map<string, AppRecord>();
  private readonly resourceServers = new Map<string, ResourceServerRecord>();
  // One cursor per table: each is in commit order only within its table.
  private appSeq = -1n;
  private resourceServerSeq = -1n;
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  constructor(private readonly db: Queryable) {}

  app(appId: string): AppRecord | null {
    return this.apps.get(appId) ?? null;
  }

  resourceServer(id: string): ResourceServerRecord | null {
    return this.resourceServers.get(id) ?? null;
  }

  get size(): number {
    return this.apps.size + this.resourceServers.size;
  }

  /**
   * Reads what changed since the last catch-up. Resolves once a read that
   * began after this call has been applied, so a caller that has just
   * committed a change sees it. Calls made during a read share one more.
   */
  catchUp(): Promise<void> {
    if (!this.running) {
      this.running = this.read().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    // The read in flight may have started before the caller's commit.
    this.queued ??= this.running
      .catch(() => {})
      .then(() => {
        this.queued = null;
        return this.catchUp();
      });
    return this.queued;
  }

  private async read(): Promise<void> {
    const a = await appsChangedSince(this.db, this.appSeq);
    for (const app of a.apps) this.apps.set(app.appId, app);
    this.appSeq = a.lastSeq;
    const r = await resourceServersChangedSince(this.db, this.resourceServerSeq);
    for (const rs of r.resourceServers) this.resourceServers.set(rs.resourceServerId, rs);
    this.resourceServerSeq = r.lastSeq;
  }
}
