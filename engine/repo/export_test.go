package repo

import "github.com/havenbackup/terraform-provider-haven/engine/repo/format"

// SetHookBeforeSeal sets hookBeforeSeal for the external tests.
func SetHookBeforeSeal(f func(id format.ID)) { hookBeforeSeal = f }
