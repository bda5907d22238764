package freelist_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// TestListKeepsObjectsThroughCollections: what was put back is what the
// next Get returns, even after garbage collections (which empty a
// sync.Pool); it makes new objects only when empty, keeps at most Max,
// and lets them all go once idle.
func TestListKeepsObjectsThroughCollections(t *testing.T) {
	made := 0
	l := &freelist.List[*[]byte]{New: func() *[]byte { made++; b := make([]byte, 1<<20); return &b }, Max: 2, Idle: 200 * time.Millisecond}
	a, b, c := l.Get(), l.Get(), l.Get()
	if made != 3 {
		t.Fatalf("three Gets from an empty list made %d objects, want 3", made)
	}
	l.Put(a)
	l.Put(b)
	l.Put(c) // over Max: dropped
	if n := l.Len(); n != 2 {
		t.Fatalf("kept %d objects after three Puts, want Max = 2", n)
	}
	runtime.GC()
	runtime.GC()
	got := l.Get()
	if got != b {
		t.Errorf("Get after two collections returned a different object than the last kept one")
	}
	if got2 := l.Get(); got2 != a {
		t.Errorf("the second Get did not return the first object kept")
	}
	if made != 3 {
		t.Errorf("Gets from a list holding objects made %d new ones", made-3)
	}
	l.Put(got)
	deadline := time.Now().Add(5 * time.Second)
	for l.Len() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := l.Len(); n != 0 {
		t.Errorf("still kept %d objects after being idle for longer than Idle", n)
	}
	l.Get()
	if made != 4 {
		t.Errorf("a Get after the idle release made %d objects in all, want 4", made)
	}
}
