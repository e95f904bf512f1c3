-- Retention: expired grants and old audit events are pruned (server/service/retention.ts).

-- Grants are deleted leaves first: a grant goes only once no child refers to
-- it. Both that lookup and the foreign-key check on every deleted parent
-- search by parent; without this index each one scans the table.
CREATE INDEX grants_parent ON grants (parent_token_id) WHERE parent_token_id IS NOT NULL;
-- The pruner walks grants by expiry across all apps.
CREATE INDEX grants_expire ON grants (expire_time);

-- Where the remaining audit chain starts: the sequence number and hash of the
-- last pruned event (0 and 32 zero bytes while nothing was pruned). The first
-- remaining event must follow it: seq + 1, prev_hash = hash.
CREATE TABLE audit_anchor (
  id         integer PRIMARY KEY CHECK (id = 1),
  seq        bigint NOT NULL,
  hash       bytea NOT NULL,
  prune_time timestamptz
);
INSERT INTO audit_anchor VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000', NULL);
