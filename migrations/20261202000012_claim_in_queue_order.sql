-- Workers claim pending events through this function so that the claim always walks events_pending in
-- order and stops after the batch. Left to itself the planner chose a bitmap scan and a sort of every due
-- event whenever its statistics said few were pending (a fresh table, or one analysed while the queue was
-- short), so each claim cost time in proportion to the backlog: 6 ms per claim with 25,000 events waiting,
-- the largest single cost of a drain. Without sorting, the only plan that yields this order is the index's.
CREATE FUNCTION claim_pending_events(how_many integer) RETURNS SETOF events LANGUAGE sql
    SET enable_sort = off
AS $$
    SELECT * FROM events
     WHERE status = 'PENDING' AND next_attempt_at <= now()
     ORDER BY next_attempt_at, created_at
     LIMIT how_many
       FOR UPDATE SKIP LOCKED
$$;
