-- +goose Up
-- DR plans: protected VMs replicated to an AWS target's EBS snapshots and
-- how a failover launches them. The spec holds the plan as the API takes
-- it, with references resolved to ids.
CREATE TABLE dr_plans (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    spec            jsonb NOT NULL,
    sealed_secret   bytea,
    version         bigint NOT NULL DEFAULT 1,
    idempotency_key text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Each disk's copy in EBS. A completed snapshot is recorded here only once
-- AWS reports it completed; the copy it replaces is marked superseded in
-- the same transaction, and its row goes only after its snapshot has been
-- deleted, so a crash at any step leaves the snapshot to delete on record.
CREATE TABLE dr_copies (
    plan_id         uuid NOT NULL REFERENCES dr_plans (id) ON DELETE CASCADE,
    protected_vm_id uuid NOT NULL,
    disk_key        integer NOT NULL,
    snapshot_id     text NOT NULL,
    point_id        uuid NOT NULL,
    point_time      timestamptz NOT NULL,
    disk_manifest   text NOT NULL,
    volume_gib      bigint NOT NULL,
    block_size      integer NOT NULL,
    copied_at       timestamptz NOT NULL DEFAULT now(),
    superseded_at   timestamptz,
    PRIMARY KEY (plan_id, protected_vm_id, disk_key, snapshot_id)
);
CREATE UNIQUE INDEX dr_copies_current ON dr_copies (plan_id, protected_vm_id, disk_key) WHERE superseded_at IS NULL;

-- Per VM of a plan: the instance type a failover launches ('auto' picked
-- at the last replication, with the reason).
CREATE TABLE dr_vm_state (
    plan_id              uuid NOT NULL REFERENCES dr_plans (id) ON DELETE CASCADE,
    protected_vm_id      uuid NOT NULL,
    instance_type        text NOT NULL DEFAULT '',
    instance_type_reason text NOT NULL DEFAULT '',
    PRIMARY KEY (plan_id, protected_vm_id)
);

-- Snapshots AWS put in the error state, per disk point: the next try uses
-- a client token with the count, so it starts a new snapshot rather than
-- finding the failed one again.
CREATE TABLE dr_snapshot_failures (
    plan_id         uuid NOT NULL REFERENCES dr_plans (id) ON DELETE CASCADE,
    protected_vm_id uuid NOT NULL,
    disk_key        integer NOT NULL,
    point_id        uuid NOT NULL,
    failures        integer NOT NULL DEFAULT 0,
    PRIMARY KEY (plan_id, protected_vm_id, disk_key, point_id)
);

-- +goose Down
DROP TABLE dr_snapshot_failures;
DROP TABLE dr_vm_state;
DROP TABLE dr_copies;
DROP TABLE dr_plans;
