-- +goose Up
-- Database servers (a cluster on an agent's host) and database sets (what
-- is backed up of one, under a policy, into a storage). A server's spec
-- also holds what its agent detected at the last backup ("detected").
CREATE TABLE database_servers (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    -- the database password, sealed with the master key; never returned
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE database_sets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What a database point records besides the common columns
-- (api.DatabasePoint): LSN range, conversion reason, restore points, the
-- verification's result.
ALTER TABLE points ADD COLUMN database jsonb;

-- +goose Down
ALTER TABLE points DROP COLUMN database;
DROP TABLE database_sets;
DROP TABLE database_servers;
