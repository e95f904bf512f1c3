-- Approvals (issue 8): an app's approval policy, named human approvers, and
-- the approvals themselves with their decisions.

-- [{pattern, scope_class, approvals_required, approver_group}], checked by
-- the broker (domain/approvals.ts) before it is written.
ALTER TABLE apps ADD COLUMN approval_policy jsonb NOT NULL DEFAULT '[]';

CREATE TABLE approvers (
  approver_id text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  -- SHA-256 of the client secret, as for apps (256 random bits).
  secret_hash bytea NOT NULL,
  groups      text[] NOT NULL,
  disabled    boolean NOT NULL DEFAULT false,
  create_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL
);

CREATE TABLE approvals (
  approval_id        text PRIMARY KEY,
  -- Listing order: newest first, and the page token.
  seq                bigserial NOT NULL UNIQUE,
  state              text NOT NULL CHECK (state IN ('PENDING', 'APPROVED', 'DENIED', 'EXPIRED', 'USED')),
  request_kind       text NOT NULL CHECK (request_kind IN ('issue', 'delegate')),
  app_id             text NOT NULL,
  requester          text NOT NULL,
  -- The binding: a request is minted under the approval only when all of
  -- these equal the request's.
  parent_token_id    text,
  task_id            text NOT NULL,
  orchestration_id   text,
  human_principal    text,
  scopes             text[] NOT NULL,
  scopes_needing_approval text[] NOT NULL,
  audiences          text[] NOT NULL,
  ttl_seconds        bigint,
  key_thumbprint     text,
  approvals_required integer NOT NULL,
  approver_group     text NOT NULL,
  create_time        timestamptz NOT NULL,
  expire_time        timestamptz NOT NULL,
  use_time           timestamptz,
  token_id           text
);
CREATE INDEX approvals_group_seq ON approvals (approver_group, seq);
CREATE INDEX approvals_app_seq ON approvals (app_id, seq);
-- The lazy expiry sweep looks for live approvals past their window.
CREATE INDEX approvals_live_expiry ON approvals (expire_time) WHERE state IN ('PENDING', 'APPROVED');

CREATE TABLE approval_decisions (
  approval_id text NOT NULL REFERENCES approvals ON DELETE CASCADE,
  approver_id text NOT NULL REFERENCES approvers,
  -- The approver's name when deciding (names are unique; kept for display).
  approver_name text NOT NULL,
  approved    boolean NOT NULL,
  reason      text NOT NULL,
  decide_time timestamptz NOT NULL,
  -- Decisions in the order they were made.
  seq         bigserial NOT NULL,
  PRIMARY KEY (approval_id, approver_id)
);
