// Package freelist keeps objects for reuse that the garbage collector must
// not take away in the middle of a job, as it takes a sync.Pool's.
//
// Why not sync.Pool: every collection empties a sync.Pool (its victim
// cache one collection later), so during a backup or a restore, which
// collect every few hundred milliseconds, the large buffers pooled there
// were dropped and made again over and over. Fresh memory is not free:
// each new page is a page fault, and on the virtual machines Haven is
// measured on a fault costs about 12 µs, 3 ms per MiB, more than reading
// that MiB from the page cache and hashing it. A List keeps at most Max
// objects, and lets them all go once none has been taken for Idle, so
// that an idle server gives the memory back.
package freelist

import (
	"sync"
	"time"
)

// DefaultIdle is how long a List keeps its objects with none taken.
const DefaultIdle = 30 * time.Second

// List is a bounded free list of objects made by New.
type List[T any] struct {
	// New makes an object when the list is empty.
	New func() T
	// Max bounds the objects kept; more are dropped when put back.
	Max int
	// Idle is how long the objects are kept with none taken (DefaultIdle
	// when 0).
	Idle time.Duration

	mu      sync.Mutex
	free    []T
	release *time.Timer
}

// Get takes an object from the list, or makes one.
func (l *List[T]) Get() T {
	l.mu.Lock()
	if n := len(l.free); n > 0 {
		v := l.free[n-1]
		var zero T
		l.free[n-1] = zero
		l.free = l.free[:n-1]
		l.mu.Unlock()
		return v
	}
	l.mu.Unlock()
	return l.New()
}

// Put gives an object back for reuse.
func (l *List[T]) Put(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) >= l.Max {
		return
	}
	l.free = append(l.free, v)
	idle := l.Idle
	if idle <= 0 {
		idle = DefaultIdle
	}
	if l.release == nil {
		l.release = time.AfterFunc(idle, l.drop)
	} else {
		l.release.Reset(idle)
	}
}

// drop lets every kept object go.
func (l *List[T]) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.free)
	l.free = l.free[:0]
}

// Len is the number of objects kept (for tests).
func (l *List[T]) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.free)
}
