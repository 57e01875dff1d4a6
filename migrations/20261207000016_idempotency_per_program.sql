-- Idempotency keys are scoped per program, as Scrip's are: one key names one request, whatever its
-- operation, so a key used for a hold and then for a release is a conflict, not two effects. Keys an
-- earlier version let two operations share keep their rows: every use after the first gets its operation
-- appended to the key, so it stays on record but is no longer replayed.
UPDATE idempotency_keys k
   SET key = k.key || '#' || k.operation
 WHERE EXISTS (SELECT 1 FROM idempotency_keys o
                WHERE o.program_id = k.program_id AND o.key = k.key
                  AND (o.created_at, o.operation) < (k.created_at, k.operation));

ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey, ADD PRIMARY KEY (program_id, key);
