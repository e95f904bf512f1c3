-- Extends the audit chain inside PostgreSQL, under the head row's lock, so a
-- writer need not guess where the head is: several batches (of one broker
-- or of several replicas) can be in flight, each chained where the head is
-- when it gets the lock. The writer sends each event's canonical JSON in two
-- parts, everything before and after its "seq" member (keys are sorted, so
-- "seq" sits between "request_id" and "time"); the function numbers the
-- events, joins the parts around the seq, and hashes exactly as appendAudit
-- does: hash = sha256(prev_hash || payload as UTF-8). Returns the new head seq.
CREATE FUNCTION baton_append_audit(
  p_time timestamptz[], p_kind text[], p_app_id text[], p_request_id text[], p_before_seq text[], p_after_seq text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  s bigint;
  h bytea;
  payload text;
  seqs bigint[] := '{}';
  payloads text[] := '{}';
  prevs bytea[] := '{}';
  hashes bytea[] := '{}';
BEGIN
  SELECT seq, hash INTO s, h FROM audit_head WHERE id = 1 FOR UPDATE;
  FOR i IN 1 .. coalesce(cardinality(p_kind), 0) LOOP
    s := s + 1;
    payload := p_before_seq[i] || '"seq":"' || s::text || '",' || p_after_seq[i];
    prevs := prevs || h;
    h := sha256(h || convert_to(payload, 'UTF8'));
    seqs := seqs || s;
    payloads := payloads || payload;
    hashes := hashes || h;
  END LOOP;
  INSERT INTO audit_events (seq, event_time, kind, app_id, request_id, payload, prev_hash, hash)
    SELECT * FROM unnest(seqs, p_time, p_kind, p_app_id, p_request_id, payloads, prevs, hashes);
  UPDATE audit_head SET seq = s, hash = h WHERE id = 1;
  RETURN s;
END
$$;
