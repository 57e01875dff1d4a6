-- Each queued event is in a lane: 0 for events sent to the API, 1 for events the scheduler made
-- (automations, fan-outs). Behind a backlog the claim serves each organization's lanes in turn, as it serves
-- organizations, so a fan-out that keeps an organization's queue full no longer holds that organization's
-- live events behind every event it queued (BENCHMARKS.md, "Automation fan-outs"). With no backlog the claim
-- still takes the due events in queue order, lanes or not.
ALTER TABLE event_queue ADD COLUMN lane smallint NOT NULL DEFAULT 0;
UPDATE event_queue q SET lane = 1 FROM events e WHERE e.id = q.event_id AND e.event_type = 'SYSTEM';
-- The same index as before with the lane after the organization: an organization's rows are still found by
-- its prefix (the fan-out's room, the console's queue), and each lane's due rows in order.
DROP INDEX event_queue_organizations;
CREATE INDEX event_queue_lanes ON event_queue (organization_id, lane, next_attempt_at, event_id);

CREATE OR REPLACE FUNCTION claim_pending_events(how_many integer)
    RETURNS TABLE (id uuid, organization_id uuid, program_id uuid, participant_id uuid, external_id text,
                   recipient_id uuid, recipient_external_id text, event_data jsonb,
                   event_timestamp timestamptz, attempts integer, next_attempt_at timestamptz)
    LANGUAGE plpgsql
    SET enable_sort = off SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
DECLARE
    start constant uuid := gen_random_uuid();
    due_orgs uuid[] := '{}';
    due_lanes smallint[] := '{}';
    org uuid;
    org_lane smallint;
    next_org uuid;
    next_lane smallint;
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
    -- Behind a backlog: the (organization, lane) pairs with due events, one index probe each, from a random
    -- organization around, and an equal share of the batch from each, oldest first.
    FOR pass IN 1..2 LOOP
        org := CASE WHEN pass = 1 THEN start ELSE '00000000-0000-0000-0000-000000000000'::uuid END;
        org_lane := -1;
        LOOP
            SELECT q.organization_id, q.lane INTO next_org, next_lane FROM event_queue q
             WHERE (q.organization_id, q.lane) > (org, org_lane)
             ORDER BY q.organization_id, q.lane LIMIT 1;
            EXIT WHEN next_org IS NULL OR (pass = 2 AND next_org > start);
            org := next_org;
            org_lane := next_lane;
            IF EXISTS (SELECT 1 FROM event_queue d
                        WHERE d.organization_id = org AND d.lane = org_lane AND d.next_attempt_at <= now()) THEN
                due_orgs := due_orgs || org;
                due_lanes := due_lanes || org_lane;
            END IF;
            EXIT WHEN cardinality(due_orgs) >= how_many;
        END LOOP;
        EXIT WHEN cardinality(due_orgs) >= how_many;
    END LOOP;
    IF cardinality(due_orgs) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT e.id, e.organization_id, e.program_id, e.participant_id, e.external_id, e.recipient_id,
           e.recipient_external_id, e.event_data, e.event_timestamp, e.attempts, c.next_attempt_at
      FROM unnest(due_orgs, due_lanes) AS o(id, lane)
     CROSS JOIN LATERAL (
           SELECT q.next_attempt_at, q.event_id FROM event_queue q
            WHERE q.organization_id = o.id AND q.lane = o.lane AND q.next_attempt_at <= now()
            ORDER BY q.next_attempt_at, q.event_id
            LIMIT greatest(1, how_many / cardinality(due_orgs))
              FOR UPDATE OF q SKIP LOCKED) c
      JOIN events e ON e.id = c.event_id;
END
$$;
