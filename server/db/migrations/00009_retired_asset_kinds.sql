-- +goose Up
-- Any workload's assets are retired when deleted (see db.AssetTable): a
-- retired asset's kind is its table's retired kind, not one of a fixed list.
ALTER TABLE retired_assets DROP CONSTRAINT IF EXISTS retired_assets_kind_check;

-- +goose Down
-- Only built-in kinds may be put back under the old check.
DELETE FROM retired_assets WHERE kind NOT IN ('fileset', 'protected_vm');
ALTER TABLE retired_assets ADD CONSTRAINT retired_assets_kind_check CHECK (kind IN ('fileset', 'protected_vm'));
