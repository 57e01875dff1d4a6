-- Participant state history and counter windows.

-- Counter windows keep the Go duration as written plus its length, so the database can compare times.
ALTER TABLE participant_counters ADD COLUMN reset_after_ms bigint CHECK (reset_after_ms > 0);

CREATE TABLE state_history (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id),
    participant_id         uuid NOT NULL REFERENCES participants (id),
    state_type             text NOT NULL CHECK (state_type IN ('tag', 'counter', 'attribute', 'tier')),
    key                    text NOT NULL,
    operation              text NOT NULL CHECK (operation IN ('set', 'delete', 'add', 'remove', 'auto_reset')),
    old_value              text,
    new_value              text,
    program_id             uuid REFERENCES programs (id),
    event_id               uuid REFERENCES events (id),
    rule_id                uuid REFERENCES rules (id),
    changed_by_api_key_id  uuid REFERENCES api_keys (id),
    changed_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX state_history_participant ON state_history (participant_id, changed_at DESC, id DESC);
CREATE INDEX state_history_event ON state_history (event_id);
