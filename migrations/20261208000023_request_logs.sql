-- Request logs: one row per authenticated API request, written in batches off the request path and kept for
-- the operator's retention period. Usage per day is counted from them.
CREATE TABLE request_logs (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    request_id       text NOT NULL,
    method           text NOT NULL,
    path             text NOT NULL,
    route_pattern    text,
    status_code      integer NOT NULL,
    duration_ms      integer NOT NULL,
    auth_type        text NOT NULL,
    error_code       text,
    ip_address       text,
    user_agent       text,
    request_body     jsonb,
    response_body    jsonb,
    created_at       timestamptz NOT NULL
);
CREATE INDEX request_logs_listed ON request_logs (organization_id, created_at DESC, id DESC);
CREATE INDEX request_logs_by_request_id ON request_logs (organization_id, request_id);
-- What the retention pass deletes by.
CREATE INDEX request_logs_age ON request_logs (created_at);
