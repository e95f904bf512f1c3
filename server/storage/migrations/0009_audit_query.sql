-- ListAuditEvents filters on facts held in each event's hashed payload. These
-- columns are derived copies of them (appendAudit fills them from the event
-- data, with the same rules as the backfill below), so a filtered page is an
-- index range scan in seq order. They are not hashed: the payload alone is
-- the record, and verification never reads them.
ALTER TABLE audit_events
  ADD COLUMN task_id text,
  ADD COLUMN agent_id text,
  ADD COLUMN human_principal text,
  ADD COLUMN token_id text;

-- Events written before this migration. Only string values count (as in
-- auditIndexFacts). A revocation's target stands for the token (a chain: its
-- root), agent or task it names.
CREATE OR REPLACE FUNCTION pg_temp.str(d jsonb, k text) RETURNS text LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN jsonb_typeof(d->k) = 'string' THEN d->>k END $$;
UPDATE audit_events e SET
  task_id = COALESCE(pg_temp.str(d, 'task_id'), CASE WHEN e.kind = 'revocation.created' AND pg_temp.str(d, 'target') = 'task' THEN pg_temp.str(d, 'id') END),
  agent_id = COALESCE(pg_temp.str(d, 'agent_id'), CASE WHEN e.kind = 'revocation.created' AND pg_temp.str(d, 'target') = 'agent' THEN pg_temp.str(d, 'id') END),
  human_principal = pg_temp.str(d, 'human'),
  token_id = COALESCE(pg_temp.str(d, 'token_id'), CASE WHEN e.kind = 'revocation.created' AND pg_temp.str(d, 'target') IN ('token', 'chain') THEN pg_temp.str(d, 'id') END)
FROM (SELECT seq, payload::jsonb->'data' AS d FROM audit_events) p
WHERE p.seq = e.seq;

-- One index per filter, in seq order: a page is the first rows of one range.
-- (app_id, seq) exists since 0001. Partial: most events have no task, token...
CREATE INDEX audit_events_task ON audit_events (task_id, seq) WHERE task_id IS NOT NULL;
CREATE INDEX audit_events_agent ON audit_events (agent_id, seq) WHERE agent_id IS NOT NULL;
CREATE INDEX audit_events_human ON audit_events (human_principal, seq) WHERE human_principal IS NOT NULL;
CREATE INDEX audit_events_token ON audit_events (token_id, seq) WHERE token_id IS NOT NULL;
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
CREATE INDEX audit_events_time ON audit_events (event_time);
