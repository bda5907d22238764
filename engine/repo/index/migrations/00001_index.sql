-- +goose Up
-- The repository's chunk index and its GC bookkeeping. repo_id is the
-- storage's id: one repository per storage.
CREATE TABLE repo_packs (
    repo_id    text NOT NULL,
    pack_id    bytea NOT NULL,
    size       bigint NOT NULL,
    chunks     integer NOT NULL,
    class      smallint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- a pack is recorded, owned by its writer's session, before it is
    -- uploaded; pending stays true until its chunks are indexed. GC removes
    -- pending packs only once their session is dead, so an upload in
    -- flight is never mistaken for an orphan.
    pending    boolean NOT NULL DEFAULT false,
    session_id uuid,
    -- set when no indexed chunk points into the pack any more; the object
    -- is deleted from the store once retired_at is older than the grace
    -- period, so restores that located chunks just before can still read
    retired_at timestamptz,
    PRIMARY KEY (repo_id, pack_id)
);

CREATE TABLE repo_chunks (
    repo_id     text NOT NULL,
    chunk_id    bytea NOT NULL,
    type        smallint NOT NULL,
    pack_id     bytea NOT NULL,
    pack_offset bigint NOT NULL,
    length      integer NOT NULL,
    raw_length  integer NOT NULL,
    -- last time a backup deduplicated against (or stored) this chunk; GC
    -- never sweeps a chunk touched after its cutoff
    touched_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repo_id, chunk_id)
);
CREATE INDEX repo_chunks_pack ON repo_chunks (repo_id, pack_id);

-- Committed recovery-point roots: what GC marks from.
CREATE TABLE repo_roots (
    repo_id    text NOT NULL,
    point_id   text NOT NULL,
    root_id    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (repo_id, point_id)
);

-- Backups in flight. A live session protects what it touched since it
-- started and the root it builds on.
CREATE TABLE repo_sessions (
    session_id     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repo_id        text NOT NULL,
    parent_point   text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    heartbeat_at   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE repo_sessions;
DROP TABLE repo_roots;
DROP TABLE repo_chunks;
DROP TABLE repo_packs;
