-- Rule budgets: a spending cap per rule and asset, lifetime or reset on a schedule.
--
-- Every matching event draws on its rule's budget, so the allowance is split over slots: a worker draws from
-- one slot under that slot's row lock, and concurrent workers mostly hold different slots. The sum of the
-- slots never exceeds the limit and no slot goes below zero, so the budget is never overspent. The budget
-- row itself changes only when the budget is set, reset, or its period rolls over.
CREATE TABLE rule_budgets (
    rule_id          uuid NOT NULL REFERENCES rules (id),
    asset_id         uuid NOT NULL REFERENCES assets (id),
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    "limit"          numeric NOT NULL CHECK ("limit" > 0),
    schedule_type    text CHECK (schedule_type IN ('CRON', 'INTERVAL')),
    cron_expression  text,
    interval         text,
    interval_ms      bigint CHECK (interval_ms > 0),
    next_reset_at    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, asset_id),
    CHECK ((schedule_type IS NULL) = (next_reset_at IS NULL)),
    CHECK ((schedule_type = 'CRON') = (cron_expression IS NOT NULL)),
    CHECK ((schedule_type = 'INTERVAL') = (interval_ms IS NOT NULL))
);

CREATE TABLE budget_slots (
    rule_id    uuid NOT NULL,
    asset_id   uuid NOT NULL,
    slot       smallint NOT NULL,
    remaining  numeric NOT NULL CHECK (remaining >= 0),
    PRIMARY KEY (rule_id, asset_id, slot),
    FOREIGN KEY (rule_id, asset_id) REFERENCES rule_budgets (rule_id, asset_id) ON DELETE CASCADE
);
