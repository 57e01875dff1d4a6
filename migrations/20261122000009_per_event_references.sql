-- The four tables written for every event (events, rule_evaluations, journal_entries, postings) no longer
-- check their references to rows that every event shares: the organization, program, asset, rule, rule
-- version, API key and system account. Each such check locked that shared row (FOR KEY SHARE) in every
-- concurrent transaction, so the row's lock state was rewritten by every event: the hot row this design
-- otherwise avoids, and with the other checks about a fifth of Postgres's time per event.
--
-- What still holds, and why it is no weaker:
-- - a posting's organization, asset, holder and bucket are copied from its account, and its program from
--   its entry, by the one statement that writes them (ledger::repo::insert_entries), which joins the account;
-- - an event's program and participants are checked for its organization by the INSERT that stores it;
-- - none of the shared rows is ever deleted (enforced below);
-- - `scrip verify` checks that every copied reference names an existing row and agrees with its source
--   (ledger::check_invariants, "references"), which a foreign key never did.
-- References to rows of the event's own (its participant, an entry's event, a posting's entry, an
-- evaluation's event) keep their foreign keys.
ALTER TABLE events
    DROP CONSTRAINT events_organization_id_fkey,
    DROP CONSTRAINT events_program_id_fkey,
    DROP CONSTRAINT events_created_by_api_key_id_fkey;
ALTER TABLE rule_evaluations
    DROP CONSTRAINT rule_evaluations_organization_id_fkey,
    DROP CONSTRAINT rule_evaluations_rule_id_fkey,
    DROP CONSTRAINT rule_evaluations_rule_history_id_fkey,
    DROP CONSTRAINT rule_evaluations_stopped_by_rule_id_fkey;
ALTER TABLE journal_entries
    DROP CONSTRAINT journal_entries_organization_id_fkey,
    DROP CONSTRAINT journal_entries_program_id_fkey,
    DROP CONSTRAINT journal_entries_rule_id_fkey,
    DROP CONSTRAINT journal_entries_created_by_api_key_id_fkey;
ALTER TABLE postings
    DROP CONSTRAINT postings_organization_id_fkey,
    DROP CONSTRAINT postings_account_id_fkey,
    DROP CONSTRAINT postings_program_id_fkey,
    DROP CONSTRAINT postings_asset_id_fkey;

CREATE FUNCTION forbid_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted (archive or revoke instead)', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER organizations_kept BEFORE DELETE ON organizations FOR EACH ROW EXECUTE FUNCTION forbid_delete();
CREATE TRIGGER programs_kept BEFORE DELETE ON programs FOR EACH ROW EXECUTE FUNCTION forbid_delete();
CREATE TRIGGER assets_kept BEFORE DELETE ON assets FOR EACH ROW EXECUTE FUNCTION forbid_delete();
CREATE TRIGGER rules_kept BEFORE DELETE ON rules FOR EACH ROW EXECUTE FUNCTION forbid_delete();
CREATE TRIGGER rule_history_kept BEFORE DELETE ON rule_history FOR EACH ROW EXECUTE FUNCTION forbid_delete();
CREATE TRIGGER api_keys_kept BEFORE DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION forbid_delete();
CREATE TRIGGER accounts_kept BEFORE DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION forbid_delete();

-- An entry balances when its postings do: checked once per statement over the rows it inserted (was once
-- per posting, deferred to commit). Postings are never changed or removed, so an entry that balanced stays
-- balanced as long as every statement's own postings balance per entry and asset; all of an entry's
-- postings are written by one statement.
DROP TRIGGER postings_balanced ON postings;
DROP FUNCTION ledger_check_entry_balanced();
CREATE FUNCTION ledger_check_postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced record;
BEGIN
    SELECT journal_entry_id, asset_id INTO unbalanced FROM inserted
     GROUP BY journal_entry_id, asset_id HAVING sum(amount) <> 0
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance for asset %', unbalanced.journal_entry_id,
            unbalanced.asset_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER postings_balanced AFTER INSERT ON postings
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_postings_balanced();

-- Every asset's system accounts exist from its creation on (assets::create opens them), so event batches
-- never create a shared account; existing assets get theirs here.
INSERT INTO accounts (id, organization_id, entity_type, entity_id, asset_id, bucket, balance)
SELECT gen_random_uuid(), a.organization_id, k.entity_type, NULL, a.id, 'AVAILABLE', NULL
  FROM assets a CROSS JOIN (VALUES ('SYSTEM_ISSUANCE'), ('SYSTEM_BREAKAGE')) AS k(entity_type)
ON CONFLICT ON CONSTRAINT accounts_identity DO NOTHING;
