-- Wasm rules: uploaded components, rules that run one, and what each evaluation burned and printed.
CREATE TABLE rule_modules (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id),
    sha256                 text NOT NULL,
    size                   integer NOT NULL,
    interface              text NOT NULL,
    bytes                  bytea NOT NULL,
    created_by_api_key_id  uuid REFERENCES api_keys (id),
    created_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rule_modules_content UNIQUE (organization_id, sha256)
);

ALTER TABLE rules
    ADD COLUMN module_id uuid REFERENCES rule_modules (id),
    ADD COLUMN module_config jsonb,
    ADD COLUMN module_limits jsonb;

ALTER TABLE rule_evaluations
    ADD COLUMN fuel_consumed bigint,
    ADD COLUMN logs text;
