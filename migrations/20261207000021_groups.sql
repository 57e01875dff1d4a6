-- Groups: households, teams and companies whose members pool value in a shared wallet. A group is a second kind
-- of holder: it has accounts (entity_type GROUP), lots, tags, attributes, counters, tiers and a state history
-- like a participant, through the same tables and code. A holder's id is a participant's or a group's; both
-- are random UUIDs, so an id names one holder without its kind. The state and lot tables therefore name the
-- holder, not the participant, and lose their foreign key to participants: the API checks a holder exists in
-- the organization before it writes.

CREATE TABLE groups (
    id                           uuid PRIMARY KEY,
    organization_id              uuid NOT NULL REFERENCES organizations (id),
    name                         text NOT NULL,
    status                       text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'ARCHIVED')),
    -- The participant who asked for the group (audit only).
    created_on_behalf_of         uuid REFERENCES participants (id),
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    deleted_at                   timestamptz,
    CHECK ((status = 'ARCHIVED') = (deleted_at IS NOT NULL))
);
CREATE INDEX groups_org_created ON groups (organization_id, created_at, id);

-- A member who leaves keeps their row (status LEFT); re-adding them reactivates it.
CREATE TABLE group_members (
    group_id                uuid NOT NULL REFERENCES groups (id),
    participant_id          uuid NOT NULL REFERENCES participants (id),
    role                    text NOT NULL CHECK (role IN ('ADMIN', 'MEMBER')),
    status                  text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'LEFT')),
    joined_at               timestamptz NOT NULL DEFAULT now(),
    left_at                 timestamptz,
    -- The participant who made the last membership change (audit only).
    changed_on_behalf_of    uuid REFERENCES participants (id),
    PRIMARY KEY (group_id, participant_id),
    CHECK ((status = 'LEFT') = (left_at IS NOT NULL))
);
CREATE INDEX group_members_of_participant ON group_members (participant_id, joined_at) WHERE status = 'ACTIVE';

-- State belongs to a holder.
ALTER TABLE participant_tags RENAME TO holder_tags;
ALTER TABLE holder_tags RENAME COLUMN participant_id TO holder_id;
ALTER TABLE holder_tags DROP CONSTRAINT participant_tags_participant_id_fkey;
ALTER TABLE participant_attributes RENAME TO holder_attributes;
ALTER TABLE holder_attributes RENAME COLUMN participant_id TO holder_id;
ALTER TABLE holder_attributes DROP CONSTRAINT participant_attributes_participant_id_fkey;
ALTER TABLE participant_counters RENAME TO holder_counters;
ALTER TABLE holder_counters RENAME COLUMN participant_id TO holder_id;
ALTER TABLE holder_counters DROP CONSTRAINT participant_counters_participant_id_fkey;
ALTER TABLE state_history RENAME COLUMN participant_id TO holder_id;
ALTER TABLE state_history DROP CONSTRAINT state_history_participant_id_fkey;
ALTER INDEX state_history_participant RENAME TO state_history_holder;

-- So do lots.
ALTER TABLE lots RENAME COLUMN participant_id TO holder_id;
ALTER TABLE lots DROP CONSTRAINT lots_participant_id_fkey;
-- Accounts are found by owner kind and id, so a lot says which kind of holder it belongs to.
ALTER TABLE lots ADD COLUMN holder_type text NOT NULL DEFAULT 'PARTICIPANT' CHECK (holder_type IN ('PARTICIPANT', 'GROUP'));
ALTER TABLE lots ALTER COLUMN holder_type DROP DEFAULT;
