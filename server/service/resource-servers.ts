// Operator use cases for resource servers: principals that name the
// audiences they serve, and may only stream revocations and validate tokens
// for those audiences. They are not apps: no scope ceiling, no issuance.

import { AlreadyExistsError, NotFoundError } from "../domain/errors.js";
import { MAX_REASON_LENGTH, optionalText, requireAppName, requireAudiences } from "../domain/limits.js";
import { hashSecret, newClientSecret, randomBase62, RESOURCE_SERVER_ID } from "../crypto/secrets.js";
import { appendAudit } from "../storage/audit.js";
import { type Db, withTransaction } from "../storage/db.js";
import {
  disableResourceServer,
  getResourceServer,
  insertResourceServer,
  listResourceServers,
  type ResourceServerRecord,
} from "../storage/resource-servers.js";
import { pageOf, pageRequest } from "./paging.js";

export interface CreateResourceServerInput {
  readonly name: string;
  readonly audiences: readonly string[];
}

export class ResourceServerAdmin {
  constructor(
    private readonly db: Db,
    private readonly now: () => number,
    /** Awaited after a committed change (creation or disabling): the app view takes it, a disabled one's streams end. */
    private readonly onChange: (id: string, disabled: boolean) => Promise<void> | void = () => {},
  ) {}

  async create(input: CreateResourceServerInput, requestId: string): Promise<{ resourceServer: ResourceServerRecord; clientSecret: string }> {
    const name = requireAppName(input.name);
    const audiences = requireAudiences("audiences", input.audiences);
    const clientSecret = newClientSecret();
    const t = new Date(this.now());
    const rs: ResourceServerRecord = {
      resourceServerId: `rs_${randomBase62(22)}`,
      name,
      secretHash: hashSecret(clientSecret),
      audiences,
      disabled: false,
      createTime: t,
      updateTime: t,
    };
    await withTransaction(this.db, async (tx) => {
      if (!(await insertResourceServer(tx, rs))) throw new AlreadyExistsError("resource server", "name");
      await appendAudit(tx, [
        { kind: "resource_server.created", time: t, appId: null, requestId, actor: "operator", data: { resource_server_id: rs.resourceServerId, name, audiences } },
      ]);
    });
    await this.onChange(rs.resourceServerId, false);
    return { resourceServer: rs, clientSecret };
  }

  async list(pageSize: number, pageToken: string): Promise<{ resourceServers: ResourceServerRecord[]; nextPageToken: string }> {
    const { size, after } = pageRequest(pageSize, pageToken, RESOURCE_SERVER_ID);
    const { page, nextPageToken } = pageOf(await listResourceServers(this.db, after, size + 1), size, (r) => r.resourceServerId);
    return { resourceServers: page, nextPageToken };
  }

  async disable(id: string, reason: string, requestId: string): Promise<ResourceServerRecord> {
    if (!RESOURCE_SERVER_ID.test(id)) throw new NotFoundError("resource server");
    const why = optionalText("reason", reason, MAX_REASON_LENGTH);
    const rs = await withTransaction(this.db, async (tx) => {
      const old = await getResourceServer(tx, id, true);
      if (!old) throw new NotFoundError("resource server");
      const t = new Date(this.now());
      await disableResourceServer(tx, id, t);
      await appendAudit(tx, [
        { kind: "resource_server.disabled", time: t, appId: null, requestId, actor: "operator", data: { resource_server_id: id, reason: why } },
      ]);
      return { ...old, disabled: true, updateTime: t };
    });
    await this.onChange(id, true);
    return rs;
  }
}
