-- +goose Up
-- A file server's pending activation token is kept sealed with the master
-- key (beside its hash, which activation looks up), so that asking for a
-- token again while it is unused and unexpired answers with the same one:
-- a Terraform plan after the apply that delivered it does not make it
-- stale, and a retried request leaves one valid token.
ALTER TABLE file_servers
    ADD COLUMN activation_sealed     bytea,
    ADD COLUMN activation_expires_at timestamptz,
-- The hash of the token an agent last activated with, and when: a retried
-- activation whose first answer was lost gets a credential again, as long
-- as the credential made by the first try was never used.
    ADD COLUMN activated_hash        bytea,
    ADD COLUMN activated_at          timestamptz;

-- +goose Down
ALTER TABLE file_servers
    DROP COLUMN activation_sealed,
    DROP COLUMN activation_expires_at,
    DROP COLUMN activated_hash,
    DROP COLUMN activated_at;
