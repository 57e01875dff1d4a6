-- Automations: schedules that create SYSTEM events. The scheduler lives here: any server process claims what is
-- due with SKIP LOCKED, and every event an automation creates carries an idempotency key made of the
-- automation, its fire time and (for a fan-out) the participant, so nothing fires twice.
CREATE TABLE automations (
    id                      uuid PRIMARY KEY,
    organization_id         uuid NOT NULL REFERENCES organizations (id),
    program_id              uuid NOT NULL REFERENCES programs (id),
    name                    text NOT NULL,
    description             text,
    event_name              text NOT NULL,
    payload                 jsonb NOT NULL DEFAULT '{}',
    scope                   text NOT NULL CHECK (scope IN ('program', 'participants')),
    trigger_type            text NOT NULL
                            CHECK (trigger_type IN ('cron', 'one_time', 'immediate', 'participant_state')),
    cron_expression         text,
    timezone                text NOT NULL DEFAULT 'UTC',
    trigger_at              timestamptz,
    schedule_type           text CHECK (schedule_type IN ('ATTRIBUTE_DATE', 'INTERVAL', 'CRON', 'THRESHOLD')),
    schedule_config         jsonb,
    participant_filter      text,
    guard_condition         text,
    filter_hints            jsonb NOT NULL DEFAULT '[]',
    participant_id          uuid REFERENCES participants (id),
    status                  text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'archived')),
    source                  text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'rule_action')),
    -- The event whose rule created it (source rule_action).
    source_event_id         uuid,
    next_run_at             timestamptz,
    last_run_at             timestamptz,
    last_error              text,
    error_message           text,
    processed_at            timestamptz,
    last_evaluated_at       timestamptz,
    execution_status        text NOT NULL DEFAULT 'idle'
                            CHECK (execution_status IN ('idle', 'pending', 'executing', 'completed', 'failed')),
    execution_started_at    timestamptz,
    execution_completed_at  timestamptz,
    execution_error         text,
    participants_processed  integer NOT NULL DEFAULT 0,
    participants_total      integer NOT NULL DEFAULT 0,
    -- A fan-out in progress: the fire time its events are keyed by, and the last member it reached.
    execution_fire_at       timestamptz,
    execution_cursor        uuid,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX automations_name_unique ON automations (program_id, name) WHERE status <> 'archived';
CREATE INDEX automations_list ON automations (organization_id, program_id, created_at DESC, id DESC);
CREATE INDEX automations_due ON automations (next_run_at) WHERE status = 'active';
CREATE INDEX automations_fan_outs ON automations (execution_status, id)
    WHERE execution_status IN ('pending', 'executing');

-- A participant_state automation's schedule for one participant.
CREATE TABLE automation_subscriptions (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    automation_id      uuid NOT NULL REFERENCES automations (id),
    participant_id     uuid NOT NULL REFERENCES participants (id),
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'completed', 'failed')),
    next_trigger_at    timestamptz,
    last_triggered_at  timestamptz,
    trigger_count      integer NOT NULL DEFAULT 0,
    retry_count        integer NOT NULL DEFAULT 0,
    last_error         text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT automation_subscriptions_unique UNIQUE (automation_id, participant_id)
);
CREATE INDEX automation_subscriptions_due ON automation_subscriptions (next_trigger_at) WHERE status = 'active';
CREATE INDEX automation_subscriptions_list ON automation_subscriptions (organization_id, automation_id, created_at DESC, id DESC);
