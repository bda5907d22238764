-- +goose Up
-- Failovers and DR tests of DR plans. A run's id is the id of the job
-- that launched it. Every resource the run creates in AWS is appended to
-- created as soon as it exists, so a crash leaves it on record (the
-- cleanup also finds resources by their haven:run tag). doc holds the
-- rest of the run as the API shows it (machines, steps, RTO, leftovers).
CREATE TABLE dr_runs (
    id          uuid PRIMARY KEY,
    plan_id     uuid NOT NULL REFERENCES dr_plans (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('failover', 'test')),
    state       text NOT NULL,
    clean_after timestamptz,
    created     jsonb NOT NULL DEFAULT '[]',
    doc         jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dr_runs_plan ON dr_runs (plan_id, kind, created_at);
CREATE INDEX dr_runs_clean_after ON dr_runs (clean_after) WHERE clean_after IS NOT NULL;

-- +goose Down
DROP TABLE dr_runs;
