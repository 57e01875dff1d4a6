-- Lots of LOT assets. Every credit of a LOT asset to a participant creates a lot; debits, holds, releases,
-- forfeits and transfers consume lots oldest first and record which lots each journal entry took. For every
-- participant and LOT asset, the balance of each bucket equals the remaining value of its lots in that status
-- (an overdraft is a negative AVAILABLE balance with no AVAILABLE lots left).
CREATE TABLE lots (
    id                uuid PRIMARY KEY,
    organization_id   uuid NOT NULL REFERENCES organizations (id),
    participant_id    uuid NOT NULL REFERENCES participants (id),
    asset_id          uuid NOT NULL REFERENCES assets (id),
    program_id        uuid NOT NULL REFERENCES programs (id),
    -- The entry that credited the value (for a split lot, the entry that split it off).
    journal_entry_id  uuid NOT NULL REFERENCES journal_entries (id),
    parent_lot_id     uuid REFERENCES lots (id),
    amount            numeric NOT NULL CHECK (amount > 0),
    remaining         numeric NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    status            text NOT NULL CHECK (status IN ('DEFERRED', 'AVAILABLE', 'HELD', 'CONSUMED', 'EXPIRED')),
    reference_id      text,
    -- Credited straight into HELD: a provisional accrual that void-hold may cancel.
    provisional       boolean NOT NULL DEFAULT false,
    -- When the value was earned: FIFO order, kept by splits.
    earned_at         timestamptz NOT NULL,
    expires_at        timestamptz,
    matures_at        timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('CONSUMED', 'EXPIRED')) = (remaining = 0))
);
CREATE INDEX lots_of_holder ON lots (participant_id, asset_id, status, earned_at, id) WHERE remaining > 0;
CREATE INDEX lots_expiring ON lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;
CREATE INDEX lots_maturing ON lots (matures_at) WHERE status = 'DEFERRED';

CREATE TABLE lot_consumptions (
    id                uuid PRIMARY KEY,
    lot_id            uuid NOT NULL REFERENCES lots (id),
    journal_entry_id  uuid NOT NULL REFERENCES journal_entries (id),
    amount            numeric NOT NULL CHECK (amount > 0),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lot_consumptions_lot ON lot_consumptions (lot_id);
CREATE INDEX lot_consumptions_entry ON lot_consumptions (journal_entry_id);
