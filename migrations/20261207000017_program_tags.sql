-- Program-level tags: what TAG and UNTAG actions with `target: {type: PROGRAM}` write.
CREATE TABLE program_tags (
    program_id       uuid NOT NULL REFERENCES programs (id),
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    tag              text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (program_id, tag)
);
