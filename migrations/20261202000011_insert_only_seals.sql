-- Seals move out of journal_entries into an insert-only table, and entries become fully immutable.
--
-- Sealing used to UPDATE each entry (chain_seq, entry_hash): a non-HOT update, since chain_seq is indexed,
-- that rewrote the whole row and five index entries and ran a PL/pgSQL check comparing both row versions
-- as JSON - about a fifth of Postgres's time per event. A seal is now one narrow row.
--
-- The sealer needs to find committed, unsealed entries in an order no later commit can precede. Each entry
-- records the top-level transaction that wrote it (written_by); every transaction with an id below the
-- oldest one still running has finished, so entries with written_by below that horizon are final and are
-- sealed in (written_by, id) order after the last one sealed (journal_seal_cursor). An entry whose
-- transaction commits late has a written_by at or above every horizon taken before, so it is never passed.
-- No foreign key to the entry: its check would lock every sealed entry's row. The sealer seals only entries
-- it has read, entries are never deleted, and `scrip verify` reports a seal whose entry is missing.
CREATE TABLE journal_seals (
    journal_entry_id  uuid PRIMARY KEY,
    organization_id   uuid NOT NULL,
    chain_seq         bigint NOT NULL,
    entry_hash        text NOT NULL,
    CONSTRAINT journal_seals_chain UNIQUE (organization_id, chain_seq)
);

INSERT INTO journal_seals (journal_entry_id, organization_id, chain_seq, entry_hash)
SELECT id, organization_id, chain_seq, entry_hash FROM journal_entries WHERE chain_seq IS NOT NULL;

-- Written by the one sealer at a time (an advisory lock), once per pass of up to a thousand entries.
CREATE TABLE journal_seal_cursor (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    written_by   xid8 NOT NULL,
    entry_id     uuid NOT NULL
);
INSERT INTO journal_seal_cursor (written_by, entry_id) VALUES ('0', '00000000-0000-0000-0000-000000000000');

ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only;
ALTER TABLE journal_entries ADD COLUMN written_by xid8;
-- Entries not sealed yet come first; sealed ones are never looked at again.
UPDATE journal_entries SET written_by = '1' WHERE chain_seq IS NULL;
ALTER TABLE journal_entries ENABLE TRIGGER journal_entries_append_only;
ALTER TABLE journal_entries ALTER COLUMN written_by SET DEFAULT pg_current_xact_id();
CREATE INDEX journal_entries_written ON journal_entries (written_by, id);

DROP INDEX journal_entries_unsealed;
DROP INDEX journal_entries_chain;
ALTER TABLE journal_entries DROP COLUMN chain_seq, DROP COLUMN entry_hash;

-- Nothing about an entry, a posting or a seal ever changes.
CREATE OR REPLACE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER journal_seals_append_only BEFORE UPDATE OR DELETE ON journal_seals
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
