-- +goose Up
-- AWS targets: an account and region that DR recovers VMs into. The spec
-- also holds how the last check went (account id, status).
CREATE TABLE aws_targets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    -- the secret access key, sealed with the master key; never returned
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE aws_targets;
