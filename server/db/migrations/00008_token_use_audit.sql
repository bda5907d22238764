-- +goose Up
-- When a token last authenticated a request. It is written at most once per
-- throttle interval per token, so busy clients do not cost a write each.
ALTER TABLE api_tokens ADD COLUMN last_used_at timestamptz;

-- The audit log: one row per API write (every non-GET request), whether it
-- succeeded or was refused. It names the caller, the route pattern and the
-- object, never a request body, so no secret can land here.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_id    uuid,
    token_name  text NOT NULL DEFAULT '',
    role        text NOT NULL DEFAULT '',
    method      text NOT NULL,
    route       text NOT NULL,
    object_id   text NOT NULL DEFAULT '',
    remote_addr text NOT NULL,
    status      integer NOT NULL,
    request_id  text NOT NULL
);
CREATE INDEX audit_log_token ON audit_log (token_id, id);
CREATE INDEX audit_log_object ON audit_log (object_id, id) WHERE object_id <> '';

-- +goose Down
DROP TABLE audit_log;
ALTER TABLE api_tokens DROP COLUMN last_used_at;
