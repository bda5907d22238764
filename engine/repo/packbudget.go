package repo

import (
	"context"
	"sync"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// DefaultPackBuffers is the process's budget of pack buffers (each
// PackSize plus an eighth, 18 MiB at the default size), shared by every
// writer of every repository: one pack being filled for each of two
// backups at once and one being uploaded, or one filled and up to
// Options.Uploads uploaded for a single backup. Each buffer costs its size
// in resident memory. With 4, the benchmark's two concurrent backups (a
// tree and a disk image) were 1% faster, within the machine's noise, and
// their peak RSS 20 MiB higher (about 225 against 205 MiB at scale 1,
// 245 against 225 at scale 2).
const DefaultPackBuffers = 3

// processPackBuffers is the budget of every repository that does not ask
// for its own (Options.PackBuffers), so that the memory of concurrent
// backups stays bounded however many jobs and storages a server runs.
var processPackBuffers = newPackBudget(DefaultPackBuffers)

// packBudget bounds the pack buffers in use by its writers, and keeps the
// free ones for reuse (not in a sync.Pool: a GC in the middle of a backup
// would drop buffers that are needed again a moment later, and touching
// fresh ones is most of a backup's page faults; nor can a pool's buffer
// put by one P always be taken by another).
//
// A buffer is in use from the moment a writer opens a pack in it until
// that pack's upload has ended (stored or failed) or the writer let go of
// it unshipped (Abort, a failed ship). Each writer has at most one open
// pack, and every one of its closed packs is uploading or waiting for one
// of the writer's upload slots, which only its own uploads free. The
// contract that makes this deadlock-free:
//
//   - uploads never wait for a buffer, so every buffer held by a closed
//     pack comes back without anyone else's help;
//   - a writer asks for a buffer only when it has no open pack, and waits
//     only while the budget is spent and it holds a closed pack: one of its
//     own uploads ending then wakes it;
//   - a writer that holds no buffer at all is never made to wait (nothing
//     of its own would wake it, and the buffers of other writers' open packs
//     come back only when those writers go on): it takes one over the budget.
//
// So at most limit buffers are in use, plus at most one for each writer
// beyond the first that found the budget spent while holding none: with W
// writers at once, never more than limit + W − 1.
type packBudget struct {
	limit int

	mu    sync.Mutex
	inUse int
	// peak is the most buffers ever in use at once (for tests).
	peak int
	free [][]byte
	// changed is closed and replaced whenever a buffer comes back, to wake
	// the writers waiting for one.
	changed chan struct{}
	// release lets the free buffers go once none has been in use for
	// idleRelease, so that an idle server gives their memory back while a
	// backup soon after another still finds them.
	release *time.Timer
}

// idleRelease is how long free pack buffers are kept with none in use.
const idleRelease = 30 * time.Second

func newPackBudget(limit int) *packBudget {
	return &packBudget{limit: max(limit, 1), changed: make(chan struct{})}
}

// bufferHolder is a writer's account with its budget.
type bufferHolder struct {
	// held counts the writer's buffers in use: its open pack's and its
	// closed packs'. Guarded by the budget's mu.
	held int
}

// take returns an empty buffer with at least capacity bytes of room for
// holder, which has no open pack, waiting while the budget is spent and
// holder has a closed pack whose upload will give one back.
func (b *packBudget) take(ctx context.Context, holder *bufferHolder, capacity int) ([]byte, error) {
	b.mu.Lock()
	for b.inUse >= b.limit && holder.held > 0 {
		wake := b.changed
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		b.mu.Lock()
	}
	b.inUse++
	b.peak = max(b.peak, b.inUse)
	holder.held++
	var buf []byte
	if n := len(b.free); n > 0 {
		buf = b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
	}
	b.mu.Unlock()
	if cap(buf) < capacity {
		// A repository with larger packs than the last user's: the small
		// buffer goes, and the count stays.
		buf = newPackBuffer(capacity)
	}
	return buf[:0], nil
}

// give returns a buffer holder took, once nothing reads or writes it.
func (b *packBudget) give(holder *bufferHolder, buf []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inUse--
	holder.held--
	// Buffers beyond the budget (taken over it by a writer holding none)
	// are let go rather than kept.
	if len(b.free) < b.limit-b.inUse {
		b.free = append(b.free, buf[:0])
	}
	if b.inUse == 0 {
		if b.release == nil {
			b.release = time.AfterFunc(idleRelease, b.releaseIdle)
		} else {
			b.release.Reset(idleRelease)
		}
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// releaseIdle lets the free buffers go if none is in use.
func (b *packBudget) releaseIdle() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inUse == 0 {
		clear(b.free)
		b.free = b.free[:0]
	}
}

// newPackBuffer allocates the memory of one pack: every pack buffer comes
// from here. It is page-aligned, so that a filesystem store writes the
// pack with direct I/O straight from it, without copying it.
func newPackBuffer(capacity int) []byte {
	return store.AlignedBytes(capacity)[:0]
}
