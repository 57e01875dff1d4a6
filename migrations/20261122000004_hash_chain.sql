-- The hash chain: each journal entry's entry_hash covers the entry and its postings and the previous entry's
-- hash in its organization. Entries are sealed after they commit, by a sealer that numbers them in the order
-- it sees them (chain_seq), so writers never contend for a "last hash" row.
ALTER TABLE journal_entries ADD COLUMN chain_seq bigint;
CREATE UNIQUE INDEX journal_entries_chain ON journal_entries (organization_id, chain_seq);
CREATE INDEX journal_entries_unsealed ON journal_entries (organization_id, created_at, id) WHERE chain_seq IS NULL;

-- Sealing sets entry_hash and chain_seq once; nothing else about an entry ever changes.
-- (PL/pgSQL does not short-circuit AND, so the journal-only fields are read only inside the inner IF.)
CREATE OR REPLACE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'journal_entries' AND TG_OP = 'UPDATE' THEN
        IF OLD.entry_hash IS NULL AND OLD.chain_seq IS NULL
           AND NEW.entry_hash IS NOT NULL AND NEW.chain_seq IS NOT NULL
           AND (to_jsonb(NEW) - 'entry_hash' - 'chain_seq') = (to_jsonb(OLD) - 'entry_hash' - 'chain_seq') THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'the ledger is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
