-- The rewards catalog: what a program's members can redeem. UNIT_BASED rewards cost quantity × unit_cost and
-- may cap their stock (`max_total`) and what one member takes (`max_per_participant`); AMOUNT_BASED rewards
-- take any amount from unit_cost up and have no caps. A redemption locks its reward's row, so stock is
-- counted exactly under any concurrency, and only redemptions of the same reward wait for each other.
CREATE TABLE rewards (
    id                   uuid PRIMARY KEY,
    organization_id      uuid NOT NULL REFERENCES organizations (id),
    program_id           uuid NOT NULL REFERENCES programs (id),
    asset_id             uuid NOT NULL REFERENCES assets (id),
    name                 text NOT NULL,
    description          text,
    category             text,
    redemption_type      text NOT NULL CHECK (redemption_type IN ('UNIT_BASED', 'AMOUNT_BASED')),
    unit_cost            numeric NOT NULL CHECK (unit_cost > 0),
    status               text NOT NULL CHECK (status IN ('DRAFT', 'ACTIVE', 'OUT_OF_STOCK', 'ARCHIVED')),
    max_total            bigint CHECK (max_total > 0),
    max_per_participant  bigint CHECK (max_per_participant > 0),
    -- Units redeemed and not reversed (UNIT_BASED); redemptions made (AMOUNT_BASED).
    redeemed_count       bigint NOT NULL DEFAULT 0 CHECK (redeemed_count >= 0),
    available_from       timestamptz,
    available_until      timestamptz,
    metadata             jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT rewards_name_unique UNIQUE (program_id, name),
    CHECK (redemption_type = 'UNIT_BASED' OR (max_total IS NULL AND max_per_participant IS NULL)),
    CHECK (available_from IS NULL OR available_until IS NULL OR available_from < available_until)
);
CREATE INDEX rewards_of_program ON rewards (program_id, created_at, id);

-- A redemption debits the participant's AVAILABLE value to the program's redemption target, which is kept
-- on the record: reversals return value from where it went, whatever the program's target is by then.
CREATE TABLE redemptions (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    program_id         uuid NOT NULL REFERENCES programs (id),
    participant_id     uuid NOT NULL REFERENCES participants (id),
    asset_id           uuid NOT NULL REFERENCES assets (id),
    reward_id          uuid REFERENCES rewards (id),
    quantity           bigint CHECK (quantity > 0),
    unit_cost          numeric CHECK (unit_cost > 0),
    amount             numeric NOT NULL CHECK (amount > 0),
    description        text,
    journal_entry_id   uuid NOT NULL REFERENCES journal_entries (id),
    target_type        text NOT NULL CHECK (target_type IN ('SYSTEM_REDEMPTION', 'SYSTEM_BREAKAGE', 'LEDGER_ENTITY')),
    target_entity_id   uuid,
    reversed_amount    numeric NOT NULL DEFAULT 0 CHECK (reversed_amount >= 0 AND reversed_amount <= amount),
    reversed_quantity  bigint NOT NULL DEFAULT 0 CHECK (reversed_quantity >= 0),
    status             text NOT NULL DEFAULT 'COMPLETED'
                       CHECK (status IN ('COMPLETED', 'PARTIALLY_REVERSED', 'FULLY_REVERSED')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((reward_id IS NULL) = (quantity IS NULL) AND (reward_id IS NULL) = (unit_cost IS NULL)),
    CHECK (quantity IS NULL OR reversed_quantity <= quantity),
    CHECK ((target_type = 'LEDGER_ENTITY') = (target_entity_id IS NOT NULL))
);
CREATE INDEX redemptions_of_participant ON redemptions (participant_id, created_at DESC, id DESC);
CREATE INDEX redemptions_of_reward ON redemptions (reward_id, participant_id) WHERE reward_id IS NOT NULL;

CREATE TABLE redemption_reversals (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    redemption_id     uuid NOT NULL REFERENCES redemptions (id),
    amount            numeric NOT NULL CHECK (amount > 0),
    quantity          bigint CHECK (quantity > 0),
    reason            text NOT NULL,
    journal_entry_id  uuid NOT NULL REFERENCES journal_entries (id),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX redemption_reversals_of ON redemption_reversals (redemption_id, created_at, id);

-- Value a reversal gave back to a lot that an earlier entry consumed: `lot_id` is the consumed lot,
-- `restored_lot_id` the lot that holds the value again (the same lot, or a part split off it when the lot
-- has since been held), `reverses_entry_id` the consuming entry and `journal_entry_id` the reversal's.
CREATE TABLE lot_restorations (
    id                 uuid PRIMARY KEY,
    lot_id             uuid NOT NULL REFERENCES lots (id),
    restored_lot_id    uuid NOT NULL REFERENCES lots (id),
    reverses_entry_id  uuid NOT NULL REFERENCES journal_entries (id),
    journal_entry_id   uuid NOT NULL REFERENCES journal_entries (id),
    amount             numeric NOT NULL CHECK (amount > 0),
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lot_restorations_of ON lot_restorations (reverses_entry_id, lot_id);

-- Every asset's redemption account exists before its first redemption, as its issuance and breakage accounts
-- do: concurrent first redemptions would otherwise wait on each other's insert of it.
INSERT INTO accounts (id, organization_id, entity_type, entity_id, asset_id, bucket, balance)
SELECT gen_random_uuid(), organization_id, 'SYSTEM_REDEMPTION', NULL, id, 'AVAILABLE', NULL FROM assets
    ON CONFLICT ON CONSTRAINT accounts_identity DO NOTHING;
