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

-- Stores a batch of revocations with consecutive cursors and their audit
-- events, in one call: the cursor row is taken (locked until commit), the
-- revocations numbered from it, their events (each names its revocation's
-- cursor inside its data, so the writer sends each event in three parts:
-- before the cursor's value, from after it to before the seq, after the
-- seq) chained by baton_append_audit, and replicas notified at commit.
-- Event i is revocation i's. Lock order as every writer: the cursor, then
-- the audit head. Returns the first cursor.
CREATE FUNCTION baton_append_revocations(
  p_target text[], p_target_id text[], p_app_id text[], p_revoke_time timestamptz[], p_expire_time timestamptz[],
  p_reason text[], p_audiences jsonb[],
  p_event_time timestamptz[], p_kind text[], p_event_app_id text[], p_request_id text[],
  p_before_cursor text[], p_before_seq text[], p_after_seq text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  n int := coalesce(cardinality(p_target), 0);
  v_last bigint;
  v_first bigint;
BEGIN
  UPDATE revocation_cursor SET value = value + n WHERE id = 1 RETURNING value INTO v_last;
  v_first := v_last - n + 1;
  INSERT INTO revocations (cursor, target, target_id, app_id, revoke_time, expire_time, reason, audiences)
    SELECT v_first + u.ord - 1, u.target, u.target_id, u.app_id, u.revoke_time, u.expire_time, u.reason,
           ARRAY(SELECT jsonb_array_elements_text(u.audiences))
    FROM unnest(p_target, p_target_id, p_app_id, p_revoke_time, p_expire_time, p_reason, p_audiences)
      WITH ORDINALITY AS u(target, target_id, app_id, revoke_time, expire_time, reason, audiences, ord);
  PERFORM baton_append_audit(
    p_event_time, p_kind, p_event_app_id, p_request_id,
    ARRAY(SELECT x.b || '"' || (v_first + x.ord - 1)::text || '"' || x.s
          FROM unnest(p_before_cursor, p_before_seq) WITH ORDINALITY AS x(b, s, ord) ORDER BY x.ord),
    p_after_seq);
  PERFORM pg_notify('baton_revocations', v_last::text);
  RETURN v_first;
END
$$;
