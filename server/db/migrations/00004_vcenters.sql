-- +goose Up
CREATE TABLE vcenters (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    -- the vCenter password, sealed with the master key; never returned
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE vcenters;
