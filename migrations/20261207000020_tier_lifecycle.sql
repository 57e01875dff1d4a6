-- What the tier lifecycle pass works from.
--
-- `active_at`: the holder's last processed event in the tier's program (ACTIVITY_REFRESH counts inactivity from
-- it, or from `acquired_at` before any). `downgrade_at`/`downgrade_to`: a downgrade a period review decided and
-- status validity or grace put off; `downgrade_to` NULL is the base. Requalifying cancels it.
ALTER TABLE holder_tiers
    ADD COLUMN active_at     timestamptz,
    ADD COLUMN downgrade_at  timestamptz,
    ADD COLUMN downgrade_to  uuid REFERENCES tier_levels (id),
    ADD CHECK (downgrade_to IS NULL OR downgrade_at IS NOT NULL);
CREATE INDEX holder_tiers_downgrading ON holder_tiers (downgrade_at) WHERE downgrade_at IS NOT NULL;
CREATE INDEX holder_tiers_by_tier ON holder_tiers (tier_id, holder_id);

-- A PERIOD_BASED tier's reviews: `reviewed_through` is the last period end whose review finished (NULL: none
-- yet, the first is the first period end after `created_at`); `review_cursor` is the last member done in the
-- review under way, so a crash resumes after it.
ALTER TABLE tiers
    ADD COLUMN reviewed_through  timestamptz,
    ADD COLUMN review_cursor     uuid;

-- Reviews walk a program's members in id order.
CREATE INDEX participant_programs_members ON participant_programs (program_id, participant_id);
DROP INDEX participant_programs_program;
