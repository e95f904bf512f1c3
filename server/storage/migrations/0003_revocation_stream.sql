-- The revocation stream's replay window. Pruning deletes revocations whose
-- tokens are all long dead; `pruned_through` is the largest cursor ever
-- deleted, so a subscriber resuming from an older cursor is told to take a
-- fresh snapshot instead of silently missing events.
ALTER TABLE revocation_cursor ADD COLUMN pruned_through bigint NOT NULL DEFAULT 0;
