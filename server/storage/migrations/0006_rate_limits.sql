-- Per-app rate limits (requests per second and burst, per broker replica).
-- 0: the broker's configured default, so existing apps keep it.
ALTER TABLE apps
  ADD COLUMN rate_per_second integer NOT NULL DEFAULT 0 CHECK (rate_per_second >= 0),
  ADD COLUMN rate_burst integer NOT NULL DEFAULT 0 CHECK (rate_burst >= 0);
