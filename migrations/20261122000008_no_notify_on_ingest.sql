-- Postgres serializes the commits of every transaction that sends a NOTIFY (a lock held from pre-commit to the
-- end of commit), so a NOTIFY per ingested event capped single-event ingestion near a third of the INSERT
-- ceiling. The server now wakes its own workers directly and NOTIFYs other processes from a separate
-- connection, at most every 10 ms (events::worker::Doorbell).
DROP TRIGGER events_notify ON events;
DROP FUNCTION events_notify();
