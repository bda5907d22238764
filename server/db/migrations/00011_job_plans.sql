-- +goose Up
-- A restore_plan job's plan (api.RestorePlan), written with its success.
-- Kept apart from the columns job listings read, since a plan may list
-- thousands of entries.
ALTER TABLE jobs ADD COLUMN plan jsonb;

-- +goose Down
ALTER TABLE jobs DROP COLUMN plan;
