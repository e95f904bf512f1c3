-- Tenant isolation on the revocation stream (issue 7 item 12).
--
-- Resource servers: operator-registered principals naming the audiences they
-- serve. They stream revocations and validate tokens for those audiences
-- only; they have no scope ceiling and issue nothing.
CREATE TABLE resource_servers (
  resource_server_id text PRIMARY KEY,
  name               text NOT NULL UNIQUE,
  -- SHA-256 of the client secret, as for apps (256 random bits).
  secret_hash        bytea NOT NULL,
  audiences          text[] NOT NULL,
  disabled           boolean NOT NULL DEFAULT false,
  create_time        timestamptz NOT NULL,
  update_time        timestamptz NOT NULL
);

-- The audiences of every token a revocation can kill, fixed at revoke time:
-- a token or chain revocation, the revoked grant's (its descendants' are a
-- subset); an agent revocation, the union over the agent's grants; a task
-- or app revocation, the app's audience list (every live token of the app
-- fits it: narrowing the list revokes what no longer fits). A resource
-- server is sent the revocations whose audiences meet its own. The stream
-- filters in memory (each row is read once per replica and matched per
-- subscriber), so there is no index on it.
ALTER TABLE revocations ADD COLUMN audiences text[];

-- Rows written before this migration: the same rules, from the grants and
-- apps tables; the app's audiences when a grant is gone.
UPDATE revocations r SET audiences = COALESCE(
  CASE
    WHEN r.target IN ('token', 'chain') THEN (SELECT g.audiences FROM grants g WHERE g.token_id = r.target_id)
    WHEN r.target = 'agent' THEN (
      SELECT array_agg(DISTINCT a ORDER BY a) FROM grants g, unnest(g.audiences) AS a WHERE g.agent_id = r.target_id)
  END,
  (SELECT a.audiences FROM apps a WHERE a.app_id = r.app_id),
  '{}');
ALTER TABLE revocations ALTER COLUMN audiences SET NOT NULL;
