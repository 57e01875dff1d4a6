-- Tiers: ranked tracks of levels inside a program (`status`: silver, gold, platinum). A holder has at most
-- one level per tier; no level is the base, rank 0. `lifecycle` (retention, qualification period, status
-- validity, downgrade policy, counter rollover) is kept as the validated JSON the API reads and writes.
CREATE TABLE tiers (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    program_id       uuid NOT NULL REFERENCES programs (id),
    key              text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    display_name     text,
    lifecycle        jsonb,
    status           text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    archived_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tiers_key_unique UNIQUE (program_id, key),
    CHECK ((status = 'ARCHIVED') = (archived_at IS NOT NULL))
);

CREATE TABLE tier_levels (
    id             uuid PRIMARY KEY,
    tier_id        uuid NOT NULL REFERENCES tiers (id),
    key            text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    rank           integer NOT NULL CHECK (rank >= 1),
    display_name   text,
    color          text,
    icon_url       text,
    benefits       jsonb NOT NULL DEFAULT '{}',
    qualification  jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tier_levels_key_unique UNIQUE (tier_id, key),
    -- Checked at commit, so a PATCH may swap two levels' ranks.
    CONSTRAINT tier_levels_rank_unique UNIQUE (tier_id, rank) DEFERRABLE INITIALLY DEFERRED
);

-- The level each holder has in each tier. The holder is a kind and an id so that groups hold tiers through
-- the same table and code as participants.
CREATE TABLE holder_tiers (
    tier_id      uuid NOT NULL REFERENCES tiers (id),
    holder_type  text NOT NULL CHECK (holder_type IN ('PARTICIPANT', 'GROUP')),
    holder_id    uuid NOT NULL,
    level_id     uuid NOT NULL REFERENCES tier_levels (id),
    acquired_at  timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    PRIMARY KEY (holder_type, holder_id, tier_id)
);
CREATE INDEX holder_tiers_expiring ON holder_tiers (expires_at) WHERE expires_at IS NOT NULL;
