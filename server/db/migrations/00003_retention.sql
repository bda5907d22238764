-- +goose Up
-- What the retention planner decided for each point, so the catalog can
-- say why a point is kept, until when, and in which tier.
ALTER TABLE points
    ADD COLUMN tier        text NOT NULL DEFAULT 'warm',
    ADD COLUMN expires_at  timestamptz,
    ADD COLUMN reasons     text[] NOT NULL DEFAULT '{}',
    ADD COLUMN legal_hold  boolean NOT NULL DEFAULT false,
    ADD COLUMN next_review timestamptz,
    ADD COLUMN log_start   timestamptz,
    ADD COLUMN log_end     timestamptz;
CREATE INDEX points_by_storage ON points (storage_id) WHERE deleted_at IS NULL;

-- +goose Down
DROP INDEX points_by_storage;
ALTER TABLE points DROP COLUMN tier, DROP COLUMN expires_at, DROP COLUMN reasons, DROP COLUMN legal_hold,
    DROP COLUMN next_review, DROP COLUMN log_start, DROP COLUMN log_end;
