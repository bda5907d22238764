-- +goose Up
-- Protected assets. A file server's agent credential is a token row
-- (role 'agent'); only the hash of its one-time activation token is kept.
CREATE TABLE file_servers (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL UNIQUE,
    spec              jsonb NOT NULL,
    sealed_secret     bytea,
    version           bigint NOT NULL DEFAULT 1,
    idempotency_key   text UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    activation_hash   bytea UNIQUE,
    agent_token_id    uuid,
    agent_last_seen   timestamptz
);

CREATE TABLE filesets (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check CHECK (role IN ('admin', 'operator', 'group_admin', 'read_only', 'agent'));

-- Jobs as users see them; River rows carry their execution.
CREATE TABLE jobs (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind         text NOT NULL,
    state        text NOT NULL DEFAULT 'queued',
    asset_id     uuid,
    storage_id   uuid,
    trigger      text,
    backup_type  text,
    slot         timestamptz,
    params       jsonb NOT NULL DEFAULT '{}',
    progress     jsonb NOT NULL DEFAULT '{}',
    warnings     text[] NOT NULL DEFAULT '{}',
    error        text NOT NULL DEFAULT '',
    point_id     uuid,
    attempt      integer NOT NULL DEFAULT 0,
    river_job_id bigint,
    -- agent jobs: the file server whose agent runs it, what it was handed
    -- (session, parent root, restore target), which agent process claimed
    -- it, and the error it reported
    agent_fs         uuid,
    dispatch         jsonb,
    dispatched_at    timestamptz,
    claimed_instance text,
    agent_error      text,
    new_bytes        bigint NOT NULL DEFAULT 0,
    stored_bytes     bigint NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz
);
-- One backup per asset per schedule slot, whichever replica schedules it.
CREATE UNIQUE INDEX jobs_one_per_slot ON jobs (asset_id, slot) WHERE kind = 'backup' AND slot IS NOT NULL;
CREATE INDEX jobs_by_asset ON jobs (asset_id, created_at DESC);
CREATE INDEX jobs_by_created ON jobs (created_at DESC, id);
CREATE INDEX jobs_dispatched ON jobs (agent_fs) WHERE dispatched_at IS NOT NULL AND state = 'running';

-- The recovery-point catalog.
CREATE TABLE points (
    id            uuid PRIMARY KEY,
    asset_id      uuid NOT NULL,
    storage_id    uuid NOT NULL,
    kind          text NOT NULL,
    parent_id     uuid,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz NOT NULL DEFAULT now(),
    logical_bytes bigint NOT NULL DEFAULT 0,
    new_bytes     bigint NOT NULL DEFAULT 0,
    stored_bytes  bigint NOT NULL DEFAULT 0,
    files         bigint NOT NULL DEFAULT 0,
    job_id        uuid,
    deleted_at    timestamptz
);
CREATE INDEX points_by_asset ON points (asset_id, completed_at DESC);

-- How far the schedule reconciler has looked for each asset.
CREATE TABLE schedule_marks (
    asset_id        uuid PRIMARY KEY,
    evaluated_until timestamptz NOT NULL
);

-- +goose Down
DROP TABLE schedule_marks;
DROP TABLE points;
DROP TABLE jobs;
ALTER TABLE api_tokens DROP CONSTRAINT api_tokens_role_check;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_role_check CHECK (role IN ('admin', 'operator', 'group_admin', 'read_only'));
DROP TABLE filesets;
DROP TABLE file_servers;
