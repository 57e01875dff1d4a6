-- Pending events wait in a queue table of their own, and events' status changes become HOT updates.
--
-- The queue used to be a partial index on events (WHERE status = 'PENDING'). Finishing an event changed a
-- column of that index, so every status update wrote a new row version elsewhere and an entry in each of
-- the table's six indexes. Now an event's schedule lives in event_queue, one narrow row from ingest until
-- the event is COMPLETED or FAILED; the events row's update touches no indexed column and, with room left
-- on its page, stays on it (HOT) with no index writes.
CREATE TABLE event_queue (
    next_attempt_at  timestamptz NOT NULL,
    -- No foreign key: its check would be a query per ingested event. The row is written by the statement
    -- that stores the event, and `scrip verify` checks that exactly the PENDING events are queued, once.
    event_id         uuid NOT NULL,
    PRIMARY KEY (next_attempt_at, event_id)
);
INSERT INTO event_queue (next_attempt_at, event_id)
SELECT next_attempt_at, id FROM events WHERE status = 'PENDING';

DROP INDEX events_pending;
ALTER TABLE events DROP COLUMN next_attempt_at;
-- Room for each row's one status update on its own page.
ALTER TABLE events SET (fillfactor = 50);

-- The claim takes the queue's oldest due rows in key order, sorting nothing (migration 0012 says why), and
-- reads each one's event by primary key. The planner settings pin that one plan: left to its statistics
-- the planner joined the claimed rows to a scan of the whole events table.
DROP FUNCTION claim_pending_events(integer);
CREATE FUNCTION claim_pending_events(how_many integer)
    RETURNS TABLE (id uuid, organization_id uuid, program_id uuid, participant_id uuid, external_id text,
                   recipient_id uuid, recipient_external_id text, event_data jsonb,
                   event_timestamp timestamptz, attempts integer, next_attempt_at timestamptz)
    LANGUAGE sql
    SET enable_sort = off SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
    SELECT e.id, e.organization_id, e.program_id, e.participant_id, e.external_id, e.recipient_id,
           e.recipient_external_id, e.event_data, e.event_timestamp, e.attempts, q.next_attempt_at
      FROM event_queue q JOIN events e ON e.id = q.event_id
     WHERE q.next_attempt_at <= now()
     ORDER BY q.next_attempt_at, q.event_id
     LIMIT how_many
       FOR UPDATE OF q SKIP LOCKED
$$;
