-- ListAuditEvents filters on facts held in each event's hashed payload. These
-- columns are derived copies of them, so a filtered page is an index range
-- scan in seq order. They are not hashed: the payload alone is the record,
-- and verification never reads them.
--
-- A trigger fills them from the payload on every insert, whichever code path
-- writes the event (appendAudit, or a writer that inserts its events with its
-- own rows), and backfills the events already stored. auditIndexFacts
-- (storage/audit-query.ts) states the same rules for the converter;
-- test/integration/audit-migration.test.ts checks they agree.
ALTER TABLE audit_events
  ADD COLUMN task_id text,
  ADD COLUMN agent_id text,
  ADD COLUMN human_principal text,
  ADD COLUMN token_id text;

-- The rules, in one trigger function: only string values count; a
-- revocation's target stands for the token (a chain: its root), agent or task
-- it names, for events written before its data named them under their own
-- keys. It follows the payload on UPDATE too: the columns can never say other
-- than the payload, and the backfill below is that UPDATE.
CREATE FUNCTION baton_audit_query_columns() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  d jsonb := NEW.payload::jsonb -> 'data';
  target text;
  id text;
BEGIN
  NEW.task_id := NULL;
  NEW.agent_id := NULL;
  NEW.human_principal := NULL;
  NEW.token_id := NULL;
  IF jsonb_typeof(d) IS DISTINCT FROM 'object' THEN RETURN NEW; END IF;
  IF NEW.kind = 'revocation.created' AND jsonb_typeof(d->'target') = 'string' AND jsonb_typeof(d->'id') = 'string' THEN
    target := d->>'target';
    id := d->>'id';
  END IF;
  NEW.task_id := COALESCE(CASE WHEN jsonb_typeof(d->'task_id') = 'string' THEN d->>'task_id' END, CASE WHEN target = 'task' THEN id END);
  NEW.agent_id := COALESCE(CASE WHEN jsonb_typeof(d->'agent_id') = 'string' THEN d->>'agent_id' END, CASE WHEN target = 'agent' THEN id END);
  NEW.human_principal := CASE WHEN jsonb_typeof(d->'human') = 'string' THEN d->>'human' END;
  NEW.token_id := COALESCE(CASE WHEN jsonb_typeof(d->'token_id') = 'string' THEN d->>'token_id' END, CASE WHEN target IN ('token', 'chain') THEN id END);
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_events_query_columns BEFORE INSERT OR UPDATE OF payload, kind, task_id, agent_id, human_principal, token_id ON audit_events
  FOR EACH ROW EXECUTE FUNCTION baton_audit_query_columns();

-- The events already stored (the chain columns are untouched).
UPDATE audit_events SET payload = payload;

-- One index per filter, in seq order: a page is the first rows of one range.
-- (app_id, seq) exists since 0001. Partial: many events have no task, token...
CREATE INDEX audit_events_task ON audit_events (task_id, seq) WHERE task_id IS NOT NULL;
CREATE INDEX audit_events_agent ON audit_events (agent_id, seq) WHERE agent_id IS NOT NULL;
CREATE INDEX audit_events_human ON audit_events (human_principal, seq) WHERE human_principal IS NOT NULL;
CREATE INDEX audit_events_token ON audit_events (token_id, seq) WHERE token_id IS NOT NULL;
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
CREATE INDEX audit_events_time ON audit_events (event_time);
