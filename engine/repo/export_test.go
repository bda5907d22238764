package repo

import "github.com/havenbackup/terraform-provider-haven/engine/repo/format"

// SetHookBeforeSeal sets hookBeforeSeal for the external tests.
func SetHookBeforeSeal(f func(id format.ID)) { hookBeforeSeal = f }

// PackBuffersInUse and PackBuffersPeak read the repository's pack buffer
// budget for the external tests: buffers in use now, and the most ever in
// use at once.
func PackBuffersInUse(r *Repository) int {
	r.packs.mu.Lock()
	defer r.packs.mu.Unlock()
	return r.packs.inUse
}

func PackBuffersPeak(r *Repository) int {
	r.packs.mu.Lock()
	defer r.packs.mu.Unlock()
	return r.packs.peak
}
