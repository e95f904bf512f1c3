-- Baton's store of record (DESIGN §8). Times are timestamptz; ids are text.

CREATE TABLE apps (
  app_id               text PRIMARY KEY,
  name                 text NOT NULL UNIQUE,
  -- SHA-256 of the client secret. The secret is 256 random bits, so a slow
  -- password hash would add latency to every call and no security.
  secret_hash          bytea NOT NULL,
  scope_ceiling        text[] NOT NULL,
  audiences            text[] NOT NULL,
  max_ttl_seconds      integer NOT NULL CHECK (max_ttl_seconds > 0),
  max_delegation_depth integer NOT NULL CHECK (max_delegation_depth >= 0),
  disabled             boolean NOT NULL DEFAULT false,
  create_time          timestamptz NOT NULL,
  update_time          timestamptz NOT NULL
);

CREATE TABLE signing_keys (
  key_id          text PRIMARY KEY,
  algorithm       text NOT NULL CHECK (algorithm IN ('ES256', 'EdDSA')),
  state           text NOT NULL CHECK (state IN ('next', 'active', 'retired')),
  public_jwk      text NOT NULL,
  -- AES-256-GCM under the master key: iv (12) || tag (16) || ciphertext.
  private_key_enc bytea NOT NULL,
  create_time     timestamptz NOT NULL,
  activate_time   timestamptz,
  retire_time     timestamptz,
  -- When retired: after this no token it signed can be valid.
  expire_time     timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (state) WHERE state = 'next';

-- Every token ever issued or delegated.
CREATE TABLE grants (
  token_id         text PRIMARY KEY,
  app_id           text NOT NULL REFERENCES apps (app_id),
  agent_id         text NOT NULL,
  task_id          text NOT NULL,
  orchestration_id text,
  human_principal  text,
  parent_token_id  text REFERENCES grants (token_id),
  root_token_id    text NOT NULL,
  depth            integer NOT NULL CHECK (depth >= 0),
  scopes           text[] NOT NULL,
  audiences        text[] NOT NULL,
  key_thumbprint   text,
  key_id           text NOT NULL,
  issue_time       timestamptz NOT NULL,
  expire_time      timestamptz NOT NULL
);
CREATE INDEX grants_app_task ON grants (app_id, task_id);
CREATE INDEX grants_agent ON grants (agent_id);
CREATE INDEX grants_root ON grants (root_token_id);
CREATE INDEX grants_app_expire ON grants (app_id, expire_time);

-- The cursor of the revocation stream. Each revoking transaction increments
-- this one row; the row lock is held until commit, so cursor order is commit
-- order (a plain sequence is not: a transaction can take 5, commit after 6,
-- and a reader at 6 never sees 5).
CREATE TABLE revocation_cursor (
  id    integer PRIMARY KEY CHECK (id = 1),
  value bigint NOT NULL
);
INSERT INTO revocation_cursor VALUES (1, 0);

CREATE TABLE revocations (
  cursor      bigint PRIMARY KEY,
  target      text NOT NULL CHECK (target IN ('token', 'agent', 'task', 'chain', 'app')),
  target_id   text NOT NULL,
  app_id      text NOT NULL,
  revoke_time timestamptz NOT NULL,
  expire_time timestamptz NOT NULL,
  reason      text
);
CREATE INDEX revocations_expire ON revocations (expire_time);

-- Hash-chained audit trail: hash = sha256(prev_hash || payload). The head row
-- is locked by every writer, which orders the chain.
CREATE TABLE audit_head (
  id   integer PRIMARY KEY CHECK (id = 1),
  seq  bigint NOT NULL,
  hash bytea NOT NULL
);
INSERT INTO audit_head VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_events (
  seq        bigint PRIMARY KEY,
  event_time timestamptz NOT NULL,
  kind       text NOT NULL,
  app_id     text,
  request_id text,
  -- Canonical JSON of the event; the hash covers exactly these bytes.
  payload    text NOT NULL,
  prev_hash  bytea NOT NULL,
  hash       bytea NOT NULL
);
CREATE INDEX audit_events_app ON audit_events (app_id, seq);
