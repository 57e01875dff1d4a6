-- Two more references join those of 0009:
-- - an event's participant: checking it locked the participant row (FOR KEY SHARE) in each ingest
--   transaction while event workers hold the same rows, so every such check created a multixact. The INSERT
--   that stores an event checks its participant and recipient for its organization itself, and participants
--   are never deleted (enforced below);
-- - a lot's organization, asset and program, which every credit of a LOT asset locked as in 0009.
-- `scrip verify` checks both.
ALTER TABLE events DROP CONSTRAINT events_participant_id_fkey;
ALTER TABLE lots
    DROP CONSTRAINT lots_organization_id_fkey,
    DROP CONSTRAINT lots_asset_id_fkey,
    DROP CONSTRAINT lots_program_id_fkey;
CREATE TRIGGER participants_kept BEFORE DELETE ON participants FOR EACH ROW EXECUTE FUNCTION forbid_delete();
