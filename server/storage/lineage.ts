// Grants with their delegation lineage, read for access reports (query only).

import type { Queryable } from "./db.js";

export interface GrantWithLineage {
  readonly tokenId: string;
  readonly appId: string;
  readonly agentId: string;
  readonly taskId: string;
  readonly orchestrationId: string | null;
  readonly humanPrincipal: string | null;
  readonly audiences: readonly string[];
  /** The ancestors, root first (empty for a token an app issued). */
  readonly lineage: readonly { readonly tokenId: string; readonly agentId: string }[];
}

/**
 * The grants of `tokenIds` that exist, each with its ancestors, in one
 * recursive query (a chain is at most the app's delegation depth long).
 */
export async function grantsWithLineage(db: Queryable, tokenIds: readonly string[]): Promise<Map<string, GrantWithLineage>> {
  const { rows } = await db.query<{
    leaf: string; token_id: string; app_id: string; agent_id: string; task_id: string; orchestration_id: string | null;
    human_principal: string | null; audiences: string[]; depth: number;
  }>(
    `WITH RECURSIVE chain AS (
       SELECT token_id AS leaf, g.* FROM grants g WHERE token_id = ANY($1::text[])
       UNION ALL
       SELECT c.leaf, g.* FROM chain c JOIN grants g ON g.token_id = c.parent_token_id
     )
     SELECT leaf, token_id, app_id, agent_id, task_id, orchestration_id, human_principal, audiences, depth
     FROM chain ORDER BY leaf, depth`,
    [[...new Set(tokenIds)]],
  );
  const out = new Map<string, GrantWithLineage>();
  const ancestors = new Map<string, { tokenId: string; agentId: string }[]>();
  for (const r of rows) {
    if (r.token_id !== r.leaf) {
      ancestors.set(r.leaf, [...(ancestors.get(r.leaf) ?? []), { tokenId: r.token_id, agentId: r.agent_id }]);
      continue;
    }
    out.set(r.leaf, {
      tokenId: r.token_id, appId: r.app_id, agentId: r.agent_id, taskId: r.task_id, orchestrationId: r.orchestration_id,
      humanPrincipal: r.human_principal, audiences: r.audiences, lineage: [],
    });
  }
  for (const [leaf, g] of out) out.set(leaf, { ...g, lineage: ancestors.get(leaf) ?? [] });
  return out;
}
