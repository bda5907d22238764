-- +goose Up
-- NAS devices (a NAS reached over SMB, NFS or both through the agents of
-- file servers acting as its NAS proxies) and NAS shares (a share or
-- export of one, or a directory inside it, backed up under a policy into
-- a storage). A share's spec also holds its device's group ("group").
CREATE TABLE nas_devices (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    -- the SMB password or keytab (api.NASCredentials), sealed with the
    -- master key; never returned
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nas_shares (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE nas_shares;
DROP TABLE nas_devices;
