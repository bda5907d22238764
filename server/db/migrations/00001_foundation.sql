-- +goose Up
-- Objects keep their writable settings as JSON (the API's spec types), so
-- that adding a setting needs no migration; only what is queried or must be
-- unique gets a column.
CREATE TABLE storages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    -- secret credentials sealed with the server's master key; never returned
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE backup_policies (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    role        text NOT NULL CHECK (role IN ('admin', 'operator', 'group_admin', 'read_only')),
    groups      text[] NOT NULL DEFAULT '{}',
    -- SHA-256 of the bearer secret: secrets are 256-bit random, so a fast
    -- hash is enough and lets every request be checked with one index probe.
    secret_hash bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);

-- +goose Down
DROP TABLE api_tokens;
DROP TABLE backup_policies;
DROP TABLE storages;
