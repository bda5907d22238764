-- +goose Up
-- Protected VMs: stored under the name "<vcenter id>/<instance uuid>", so a
-- VM is protected at most once per vCenter whether a user or a selection
-- rule declares it. The guest password is sealed with the master key.
CREATE TABLE protected_vms (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vm_protection_rules (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What a finished job produced besides a point (a restored VM's identity).
ALTER TABLE jobs ADD COLUMN result jsonb;

-- +goose Down
ALTER TABLE jobs DROP COLUMN result;
DROP TABLE vm_protection_rules;
DROP TABLE protected_vms;
