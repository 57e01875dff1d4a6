-- Webhooks: endpoints an organization registers, the events written in the same transaction as the change
-- they report (the outbox), and one delivery per event and endpoint, claimed by any server process.

CREATE TABLE webhook_endpoints (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    url              text NOT NULL,
    description      text,
    enabled_events   text[] NOT NULL,
    metadata         jsonb,
    status           text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISABLED', 'ARCHIVED')),
    secret           text NOT NULL,
    -- Deliveries that ran out of attempts in a row; reset by any success. Too many disable the endpoint.
    consecutive_failures integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- What emitting an event reads: the organization's active endpoints.
CREATE INDEX webhook_endpoints_active ON webhook_endpoints (organization_id) WHERE status = 'ACTIVE';
CREATE INDEX webhook_endpoints_listed ON webhook_endpoints (organization_id, created_at DESC, id DESC);

CREATE TABLE webhook_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    type             text NOT NULL,
    -- The envelope's `data`, as sent.
    data             jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_deliveries (
    id                    uuid PRIMARY KEY,
    organization_id       uuid NOT NULL REFERENCES organizations (id),
    webhook_endpoint_id   uuid NOT NULL REFERENCES webhook_endpoints (id),
    webhook_event_id      uuid NOT NULL REFERENCES webhook_events (id),
    event_type            text NOT NULL,
    status                text NOT NULL DEFAULT 'PENDING'
                          CHECK (status IN ('PENDING', 'SENDING', 'DELIVERED', 'FAILED')),
    attempt_count         integer NOT NULL DEFAULT 0,
    max_attempts          integer NOT NULL DEFAULT 8,
    next_attempt_at       timestamptz,
    -- A SENDING delivery whose process died is claimed again once this passes.
    lease_until           timestamptz,
    last_attempt_at       timestamptz,
    delivered_at          timestamptz,
    last_response_status  integer,
    last_response_body    text,
    last_error            text,
    error_code            text,
    resend_seq            integer NOT NULL DEFAULT 0,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (webhook_event_id, webhook_endpoint_id, resend_seq)
);
-- What the delivery pass claims.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_until) WHERE status = 'SENDING';
CREATE INDEX webhook_deliveries_listed ON webhook_deliveries (webhook_endpoint_id, created_at DESC, id DESC);
