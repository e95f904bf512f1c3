-- Renewal (issue 8). Each app may set how long a task may keep renewing its
-- tokens; NULL: the broker's default (BATON_MAX_TASK_SECONDS). Each grant
-- records when its renewal line began (the issue time of the line's first
-- token, copied on every renewal); NULL for grants written before this
-- migration, which read it as their own issue time.
ALTER TABLE apps ADD COLUMN max_task_seconds integer CHECK (max_task_seconds > 0);
ALTER TABLE grants ADD COLUMN task_start_time timestamptz;
