-- Claims take work from organizations in turn, so that one organization's backlog (or slow rules) cannot
-- keep another's events waiting behind it. A queue row carries its event's organization, and a second index
-- finds each organization's due rows in order.
--
-- When no more events are due than a batch takes, the claim takes them in queue order as before: every
-- organization's due events are in it (or already in another batch), so that is fair, and it costs one index
-- range as before. Only behind a backlog does it look for the organizations with due events, one index probe
-- each, starting from a random organization id and wrapping around (so none is always last), and take an
-- equal share of the batch from each, oldest first. (Looking for organizations on every claim cost a fifth of
-- the single-POST rate, where batches are small; BENCHMARKS.md.)
ALTER TABLE event_queue ADD COLUMN organization_id uuid;
UPDATE event_queue q SET organization_id = e.organization_id FROM events e WHERE e.id = q.event_id;
ALTER TABLE event_queue ALTER COLUMN organization_id SET NOT NULL;
CREATE INDEX event_queue_organizations ON event_queue (organization_id, next_attempt_at, event_id);

CREATE OR REPLACE FUNCTION claim_pending_events(how_many integer)
    RETURNS TABLE (id uuid, organization_id uuid, program_id uuid, participant_id uuid, external_id text,
                   recipient_id uuid, recipient_external_id text, event_data jsonb,
                   event_timestamp timestamptz, attempts integer, next_attempt_at timestamptz)
    LANGUAGE plpgsql
    SET enable_sort = off SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    start constant uuid := gen_random_uuid();
    due uuid[] := '{}';
    org uuid;
    next_org uuid;
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM event_queue q WHERE q.next_attempt_at <= now()
                               LIMIT how_many + 1) AS due_now) <= how_many THEN
        RETURN QUERY
        SELECT e.id, e.organization_id, e.program_id, e.participant_id, e.external_id, e.recipient_id,
               e.recipient_external_id, e.event_data, e.event_timestamp, e.attempts, q.next_attempt_at
          FROM event_queue q JOIN events e ON e.id = q.event_id
         WHERE q.next_attempt_at <= now()
         ORDER BY q.next_attempt_at, q.event_id
         LIMIT how_many
           FOR UPDATE OF q SKIP LOCKED;
        RETURN;
    END IF;
    FOR pass IN 1..2 LOOP
        org := CASE WHEN pass = 1 THEN start ELSE '00000000-0000-0000-0000-000000000000'::uuid END;
        LOOP
            SELECT q.organization_id INTO next_org FROM event_queue q
             WHERE q.organization_id > org ORDER BY q.organization_id LIMIT 1;
            EXIT WHEN next_org IS NULL OR (pass = 2 AND next_org > start);
            org := next_org;
            IF EXISTS (SELECT 1 FROM event_queue d WHERE d.organization_id = org AND d.next_attempt_at <= now()) THEN
                due := due || org;
            END IF;
            EXIT WHEN cardinality(due) >= how_many;
        END LOOP;
        EXIT WHEN cardinality(due) >= how_many;
    END LOOP;
    IF cardinality(due) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT e.id, e.organization_id, e.program_id, e.participant_id, e.external_id, e.recipient_id,
           e.recipient_external_id, e.event_data, e.event_timestamp, e.attempts, c.next_attempt_at
      FROM unnest(due) AS o(id)
     CROSS JOIN LATERAL (
           SELECT q.next_attempt_at, q.event_id FROM event_queue q
            WHERE q.organization_id = o.id AND q.next_attempt_at <= now()
            ORDER BY q.next_attempt_at, q.event_id
            LIMIT greatest(1, how_many / cardinality(due))
              FOR UPDATE OF q SKIP LOCKED) c
      JOIN events e ON e.id = c.event_id;
END
$$;
