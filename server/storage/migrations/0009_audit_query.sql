-- ListAuditEvents filters on facts held in each event's hashed payload. These
-- columns are derived copies of them, so a filtered page is an index range
-- scan in seq order. They are not hashed: the payload alone is the record,
-- and verification never reads them.
--
-- A trigger fills them from the payload on every insert, whichever code path
-- writes the event (appendAudit, or a writer that inserts its events with its
-- own rows), and the same function backfills the events already stored.
-- auditIndexFacts (storage/audit.ts) states the same rules for the converter;
-- test/integration/audit-migration.test.ts checks they agree.
ALTER TABLE audit_events
  ADD COLUMN task_id text,
  ADD COLUMN agent_id text,
  ADD COLUMN human_principal text,
  ADD COLUMN token_id text;

-- Only string values count. A revocation's target stands for the token (a
-- chain: its root), agent or task it names, for events written before its
-- data named them under their own keys.
CREATE FUNCTION baton_audit_facts(kind text, payload text, OUT task_id text, OUT agent_id text, OUT human text, OUT token_id text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  d jsonb := payload::jsonb -> 'data';
  target text;
  id text;
BEGIN
  IF jsonb_typeof(d) IS DISTINCT FROM 'object' THEN RETURN; END IF;
  IF kind = 'revocation.created' AND jsonb_typeof(d->'target') = 'string' AND jsonb_typeof(d->'id') = 'string' THEN
    target := d->>'target';
    id := d->>'id';
  END IF;
  task_id := COALESCE(CASE WHEN jsonb_typeof(d->'task_id') = 'string' THEN d->>'task_id' END, CASE WHEN target = 'task' THEN id END);
  agent_id := COALESCE(CASE WHEN jsonb_typeof(d->'agent_id') = 'string' THEN d->>'agent_id' END, CASE WHEN target = 'agent' THEN id END);
  human := CASE WHEN jsonb_typeof(d->'human') = 'string' THEN d->>'human' END;
  token_id := COALESCE(CASE WHEN jsonb_typeof(d->'token_id') = 'string' THEN d->>'token_id' END, CASE WHEN target IN ('token', 'chain') THEN id END);
END
$$;

UPDATE audit_events e SET (task_id, agent_id, human_principal, token_id) = (SELECT * FROM baton_audit_facts(e.kind, e.payload));

CREATE FUNCTION baton_audit_query_columns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SELECT f.task_id, f.agent_id, f.human, f.token_id INTO NEW.task_id, NEW.agent_id, NEW.human_principal, NEW.token_id
    FROM baton_audit_facts(NEW.kind, NEW.payload) f;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_events_query_columns BEFORE INSERT ON audit_events
  FOR EACH ROW EXECUTE FUNCTION baton_audit_query_columns();

-- One index per filter, in seq order: a page is the first rows of one range.
-- (app_id, seq) exists since 0001. Partial: many events have no task, token...
CREATE INDEX audit_events_task ON audit_events (task_id, seq) WHERE task_id IS NOT NULL;
CREATE INDEX audit_events_agent ON audit_events (agent_id, seq) WHERE agent_id IS NOT NULL;
CREATE INDEX audit_events_human ON audit_events (human_principal, seq) WHERE human_principal IS NOT NULL;
CREATE INDEX audit_events_token ON audit_events (token_id, seq) WHERE token_id IS NOT NULL;
CREATE INDEX audit_events_kind ON audit_events (kind, seq);
CREATE INDEX audit_events_time ON audit_events (event_time);
