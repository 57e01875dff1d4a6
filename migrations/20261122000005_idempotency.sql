-- Idempotency of balance operations and transfers: per program, operation and key, the hash of the request's
-- meaning and the response first given. The row is written in the operation's transaction, so a racing
-- duplicate waits for the first and then replays its answer.
CREATE TABLE idempotency_keys (
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    program_id       uuid NOT NULL REFERENCES programs (id),
    operation        text NOT NULL,
    key              text NOT NULL,
    request_hash     text NOT NULL,
    response         jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, operation, key)
);
