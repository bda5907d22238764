-- +goose Up
-- A protected asset that was deleted while recovery points may still name
-- it. The row is written in the transaction that deletes the asset, and
-- holds what its points need to be listed, restored and retained without
-- it: the asset's stored spec as it was, its display name, the backup
-- policy it was under then (retention keeps running with it), and for a
-- fileset the file server it came from (whose OS decides compatible
-- restore targets). Rows are kept after the last point expired, for the
-- record, like expired point rows.
CREATE TABLE retired_assets (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('fileset', 'protected_vm')),
    name        text NOT NULL,
    spec        jsonb NOT NULL,
    policy      jsonb,
    file_server jsonb,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE retired_assets;
