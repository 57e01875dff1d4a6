-- Foundation schema: tenants, programs, assets, participants, rules, events and the double-entry ledger.
-- Later features (lots, holds, wallets, budgets, tiers, groups) add tables that reference these; nothing here
-- assumes they do not exist.

-- Tenancy -----------------------------------------------------------------------------------------------------

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is stored; the key itself is shown once, when it is created.
CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    key_hash         bytea NOT NULL UNIQUE,
    key_prefix       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);

-- Programs and assets -----------------------------------------------------------------------------------------

CREATE TABLE programs (
    id                           uuid PRIMARY KEY,
    organization_id              uuid NOT NULL REFERENCES organizations (id),
    name                         text NOT NULL,
    description                  text,
    on_unknown_participant       text NOT NULL DEFAULT 'CREATE'
                                 CHECK (on_unknown_participant IN ('CREATE', 'REJECT')),
    status                       text NOT NULL DEFAULT 'ACTIVE'
                                 CHECK (status IN ('ACTIVE', 'SUSPENDED', 'ARCHIVED')),
    redemption_target_type       text NOT NULL DEFAULT 'SYSTEM_REDEMPTION'
                                 CHECK (redemption_target_type IN ('SYSTEM_REDEMPTION', 'SYSTEM_BREAKAGE', 'LEDGER_ENTITY')),
    redemption_target_entity_id  uuid,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    deleted_at                   timestamptz
);
CREATE INDEX programs_org_created ON programs (organization_id, created_at, id);

CREATE TABLE assets (
    id                      uuid PRIMARY KEY,
    organization_id         uuid NOT NULL REFERENCES organizations (id),
    name                    text NOT NULL,
    symbol                  text NOT NULL,
    inventory_mode          text NOT NULL CHECK (inventory_mode IN ('SIMPLE', 'LOT')),
    issuance_policy         text NOT NULL CHECK (issuance_policy IN ('UNLIMITED', 'PREFUNDED')),
    scale                   smallint NOT NULL CHECK (scale BETWEEN 0 AND 18),
    max_transaction_amount  numeric CHECK (max_transaction_amount > 0),
    status                  text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    deleted_at              timestamptz,
    CONSTRAINT assets_symbol_unique UNIQUE (organization_id, symbol)
);
CREATE INDEX assets_org_created ON assets (organization_id, created_at, id);

CREATE TABLE program_assets (
    program_id       uuid NOT NULL REFERENCES programs (id),
    asset_id         uuid NOT NULL REFERENCES assets (id),
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT program_assets_pkey PRIMARY KEY (program_id, asset_id)
);
CREATE INDEX program_assets_asset ON program_assets (asset_id);

-- Participants and their state ----------------------------------------------------------------------------------

CREATE TABLE participants (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    external_id      text NOT NULL,
    status           text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED', 'CLOSED')),
    email            text,
    phone            text,
    first_name       text,
    last_name        text,
    display_name     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT participants_external_id_unique UNIQUE (organization_id, external_id)
);
CREATE INDEX participants_org_created ON participants (organization_id, created_at, id);

-- Enrollment of a participant in a program; inactive enrollments are reactivated by the next event.
CREATE TABLE participant_programs (
    participant_id  uuid NOT NULL REFERENCES participants (id),
    program_id      uuid NOT NULL REFERENCES programs (id),
    status          text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'FROZEN', 'LOCKED', 'CLOSED')),
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, program_id)
);
CREATE INDEX participant_programs_program ON participant_programs (program_id);

CREATE TABLE participant_tags (
    participant_id  uuid NOT NULL REFERENCES participants (id),
    tag             text NOT NULL CHECK (tag = lower(tag)),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, tag)
);

CREATE TABLE participant_attributes (
    participant_id  uuid NOT NULL REFERENCES participants (id),
    key             text NOT NULL,
    value           text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, key)
);

CREATE TABLE participant_counters (
    participant_id  uuid NOT NULL REFERENCES participants (id),
    key             text NOT NULL,
    value           numeric NOT NULL,
    reset_after     text,
    last_reset_at   timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (participant_id, key)
);

-- Rules ----------------------------------------------------------------------------------------------------------

CREATE TABLE rules (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    program_id        uuid NOT NULL REFERENCES programs (id),
    name              text NOT NULL,
    description       text,
    condition         text NOT NULL,
    actions           jsonb NOT NULL,
    "order"           integer NOT NULL CHECK ("order" >= 1),
    stop_after_match  boolean NOT NULL DEFAULT false,
    active_from       timestamptz,
    active_to         timestamptz,
    status            text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'SUSPENDED', 'ARCHIVED')),
    -- The rule_history row describing the current version; evaluations record the version they ran with.
    history_id        uuid NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    deleted_at        timestamptz
);
CREATE UNIQUE INDEX rules_active_order_unique ON rules (program_id, "order") WHERE status = 'ACTIVE';
CREATE INDEX rules_org_program ON rules (organization_id, program_id, "order", id);

CREATE TABLE rule_history (
    id                     uuid PRIMARY KEY,
    rule_id                uuid NOT NULL REFERENCES rules (id),
    organization_id        uuid NOT NULL REFERENCES organizations (id),
    program_id             uuid NOT NULL REFERENCES programs (id),
    change_type            text NOT NULL
                           CHECK (change_type IN ('created', 'updated', 'archived', 'suspended', 'activated')),
    changes                jsonb NOT NULL,
    snapshot               jsonb NOT NULL,
    changed_by_api_key_id  uuid REFERENCES api_keys (id),
    changed_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_history_rule ON rule_history (rule_id, changed_at DESC, id DESC);

-- Events ---------------------------------------------------------------------------------------------------------

CREATE TABLE events (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id),
    program_id             uuid NOT NULL REFERENCES programs (id),
    participant_id         uuid REFERENCES participants (id),
    external_id            text,
    recipient_id           uuid,
    recipient_external_id  text,
    idempotency_key        text NOT NULL,
    event_type             text NOT NULL DEFAULT 'EXTERNAL' CHECK (event_type IN ('EXTERNAL', 'SYSTEM')),
    event_data             jsonb NOT NULL,
    event_timestamp        timestamptz NOT NULL,
    status                 text NOT NULL
                           CHECK (status IN ('RECEIVED', 'PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    error_message          text,
    attempts               integer NOT NULL DEFAULT 0,
    next_attempt_at        timestamptz NOT NULL DEFAULT now(),
    created_by_api_key_id  uuid REFERENCES api_keys (id),
    received_at            timestamptz NOT NULL DEFAULT now(),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    processed_at           timestamptz,
    CONSTRAINT events_idempotency_unique UNIQUE (program_id, idempotency_key)
);
-- Workers scan only this small partial index.
CREATE INDEX events_pending ON events (next_attempt_at, created_at) WHERE status = 'PENDING';
CREATE INDEX events_org_created ON events (organization_id, created_at DESC, id DESC);
CREATE INDEX events_program_created ON events (program_id, created_at);
CREATE INDEX events_participant ON events (participant_id);

CREATE TABLE rule_evaluations (
    id                  uuid PRIMARY KEY,
    organization_id     uuid NOT NULL REFERENCES organizations (id),
    event_id            uuid NOT NULL REFERENCES events (id),
    rule_id             uuid NOT NULL REFERENCES rules (id),
    rule_history_id     uuid NOT NULL REFERENCES rule_history (id),
    status              text NOT NULL,
    reason              text,
    stopped_by_rule_id  uuid REFERENCES rules (id),
    error_message       text,
    results             jsonb NOT NULL DEFAULT '[]',
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rule_evaluations_event ON rule_evaluations (event_id, created_at);
CREATE INDEX rule_evaluations_rule ON rule_evaluations (rule_id, status);

-- Ledger ---------------------------------------------------------------------------------------------------------

-- One account per (entity, asset, bucket). System accounts (entity_id NULL) are shared by every event of the
-- organization, so they keep no balance column: their balance is the sum of their postings, and no event ever
-- updates their row. Participant, group and program-wallet accounts materialise `balance`, updated under the
-- owner's lock in the same transaction as the postings.
CREATE TABLE accounts (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    entity_type      text NOT NULL CHECK (entity_type IN ('PARTICIPANT', 'GROUP', 'PROGRAM', 'LEDGER_ENTITY',
                                                          'SYSTEM_ISSUANCE', 'SYSTEM_BREAKAGE', 'SYSTEM_REDEMPTION')),
    entity_id        uuid,
    asset_id         uuid NOT NULL REFERENCES assets (id),
    bucket           text NOT NULL CHECK (bucket IN ('AVAILABLE', 'HELD', 'DEFERRED')),
    balance          numeric,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_identity UNIQUE NULLS NOT DISTINCT (organization_id, entity_type, entity_id, asset_id, bucket),
    CONSTRAINT accounts_system_shape CHECK ((entity_id IS NULL) = (entity_type LIKE 'SYSTEM\_%')),
    CONSTRAINT accounts_balance_shape CHECK ((balance IS NULL) = (entity_type LIKE 'SYSTEM\_%'))
);
CREATE INDEX accounts_entity ON accounts (entity_id, asset_id);

CREATE TABLE journal_entries (
    id                     uuid PRIMARY KEY,
    organization_id        uuid NOT NULL REFERENCES organizations (id),
    program_id             uuid NOT NULL REFERENCES programs (id),
    action_type            text NOT NULL,
    description            text,
    event_id               uuid REFERENCES events (id),
    rule_id                uuid REFERENCES rules (id),
    reference_id           text,
    created_by_api_key_id  uuid REFERENCES api_keys (id),
    created_at             timestamptz NOT NULL DEFAULT now(),
    -- Sealed after commit, in commit order, by the hash-chain job; NULL until then.
    entry_hash             text
);
CREATE INDEX journal_entries_org_created ON journal_entries (organization_id, created_at DESC, id DESC);
CREATE INDEX journal_entries_program_created ON journal_entries (program_id, created_at);
CREATE INDEX journal_entries_event ON journal_entries (event_id);

CREATE TABLE postings (
    id                uuid PRIMARY KEY,
    journal_entry_id  uuid NOT NULL REFERENCES journal_entries (id),
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    account_id        uuid NOT NULL REFERENCES accounts (id),
    program_id        uuid NOT NULL REFERENCES programs (id),
    asset_id          uuid NOT NULL REFERENCES assets (id),
    -- Copied from the account so reports and filters need no join.
    entity_type       text NOT NULL,
    entity_id         uuid,
    bucket            text NOT NULL,
    amount            numeric NOT NULL CHECK (amount <> 0),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX postings_entry ON postings (journal_entry_id);
CREATE INDEX postings_account ON postings (account_id);
CREATE INDEX postings_entity ON postings (entity_id, asset_id);

-- The journal is append-only: postings never change, and an entry changes only once, when it is sealed.
CREATE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'journal_entries' AND TG_OP = 'UPDATE' AND OLD.entry_hash IS NULL
       AND NEW.entry_hash IS NOT NULL
       AND (to_jsonb(NEW) - 'entry_hash') = (to_jsonb(OLD) - 'entry_hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

-- Checked at commit, so an entry's postings may be inserted in any order within its transaction.
CREATE FUNCTION ledger_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced uuid;
BEGIN
    SELECT asset_id INTO unbalanced FROM postings
     WHERE journal_entry_id = NEW.journal_entry_id
     GROUP BY asset_id HAVING sum(amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance for asset %', NEW.journal_entry_id, unbalanced
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry_balanced();

-- Wakes idle workers (LISTEN scrip_events) as soon as events are committed; they also poll.
CREATE FUNCTION events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('scrip_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION events_notify();
