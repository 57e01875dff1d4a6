-- The claim as PL/pgSQL instead of SQL: a SQL function with SET options is never inlined and plans its
-- query anew on every call, which made planning most of the claim's cost (0.38 ms per claim under single
-- POSTs); PL/pgSQL keeps the plan for the connection's life. The planner settings are the same, and in
-- effect when the plan is made (migration 0013 says why they are there).
CREATE OR REPLACE FUNCTION claim_pending_events(how_many integer)
    RETURNS TABLE (id uuid, organization_id uuid, program_id uuid, participant_id uuid, external_id text,
                   recipient_id uuid, recipient_external_id text, event_data jsonb,
                   event_timestamp timestamptz, attempts integer, next_attempt_at timestamptz)
    LANGUAGE plpgsql
    SET enable_sort = off SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
BEGIN
    RETURN QUERY
    SELECT e.id, e.organization_id, e.program_id, e.participant_id, e.external_id, e.recipient_id,
           e.recipient_external_id, e.event_data, e.event_timestamp, e.attempts, q.next_attempt_at
      FROM event_queue q JOIN events e ON e.id = q.event_id
     WHERE q.next_attempt_at <= now()
     ORDER BY q.next_attempt_at, q.event_id
     LIMIT how_many
       FOR UPDATE OF q SKIP LOCKED;
END
$$;
