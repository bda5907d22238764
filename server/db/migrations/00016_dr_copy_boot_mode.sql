-- +goose Up
-- The EC2 boot mode of a copy's VM (uefi for EFI firmware, legacy-bios
-- otherwise), taken from the point's configuration when the copy is
-- made, so that a failover need not read the point again.
ALTER TABLE dr_copies ADD COLUMN boot_mode text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE dr_copies DROP COLUMN boot_mode;
