-- Where an event's processing began, as a point in the order of ids: a UUIDv7 the worker takes before the
-- event's first read. State changes and postings with a smaller id, or made by an event with a smaller
-- `state_as_of`, were there for its rules to see; the rest came after. Backtests rebuild what each event saw
-- from it (rules::backtest). Written by the same UPDATE that records the outcome; NULL for events processed
-- before this column existed, whose point is taken from `processed_at`.
ALTER TABLE events ADD COLUMN state_as_of uuid;
