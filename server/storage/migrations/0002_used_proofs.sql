-- Proof-of-possession ids already accepted, so a proof works once across all
-- replicas. Rows are deleted once their proof could no longer be fresh.
CREATE TABLE used_proofs (
  jti_hash    bytea PRIMARY KEY,
  expire_time timestamptz NOT NULL
);
CREATE INDEX used_proofs_expire ON used_proofs (expire_time);
