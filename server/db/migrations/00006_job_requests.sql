-- +goose Up
-- Idempotency keys of the requests that make jobs (backup now, restore,
-- verify, GC), per caller (API token): a repeated request gets the job the
-- first one made. Keys expire after a day (db.RequestKeyTTL).
CREATE TABLE job_requests (
    caller     text NOT NULL,
    key        text NOT NULL,
    request    text NOT NULL,
    job_id     uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (caller, key)
);
CREATE INDEX job_requests_by_age ON job_requests (created_at);
-- An asset's active backups, which backup now joins.
CREATE INDEX jobs_active_backups ON jobs (asset_id) WHERE kind = 'backup' AND state IN ('queued', 'running');

-- +goose Down
DROP INDEX jobs_active_backups;
DROP TABLE job_requests;
