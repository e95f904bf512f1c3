-- Apps and resource servers are held in memory by every replica (the app
-- view) and kept fresh by notification plus a catch-up that reads the rows
-- changed since the last one seen. Each write takes the next value of one
-- counter row; its lock is held until commit, so change order is commit
-- order (a plain sequence is not: a reader at 6 could miss a 5 that commits
-- later). Writes to these tables are rare operator actions.
CREATE TABLE principal_change_cursor (
  id    integer PRIMARY KEY CHECK (id = 1),
  value bigint NOT NULL
);
INSERT INTO principal_change_cursor VALUES (1, 0);

ALTER TABLE apps ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE resource_servers ADD COLUMN change_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX apps_change_seq ON apps (change_seq);
CREATE INDEX resource_servers_change_seq ON resource_servers (change_seq);

-- A trigger, so that no write (a broker's or a manual one) escapes the catch-up.
CREATE FUNCTION baton_principal_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE principal_change_cursor SET value = value + 1 WHERE id = 1 RETURNING value INTO NEW.change_seq;
  RETURN NEW;
END
$$;
CREATE TRIGGER apps_changed BEFORE INSERT OR UPDATE ON apps
  FOR EACH ROW EXECUTE FUNCTION baton_principal_changed();
CREATE TRIGGER resource_servers_changed BEFORE INSERT OR UPDATE ON resource_servers
  FOR EACH ROW EXECUTE FUNCTION baton_principal_changed();
