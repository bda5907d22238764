package fsstore

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/storetest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t) })
}

func TestNew(t *testing.T) {
	if _, err := New("relative/dir"); err == nil || store.IsTransient(err) {
		t.Fatalf("New with a relative root: got %v, want a permanent error", err)
	}
	root := filepath.Join(t.TempDir(), "a", "b", "c")
	s, err := New(root + "/")
	if err != nil {
		t.Fatalf("New with a missing root: %v", err)
	}
	if s.Root() != root {
		t.Fatalf("Root() = %q, want %q", s.Root(), root)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		t.Fatalf("New did not create the root: %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(file); err == nil {
		t.Fatal("New on a regular file succeeded")
	}
}

// files returns the paths of all regular files under root, relative and
// slash-separated.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestFanOutLayout(t *testing.T) {
	s := newStore(t)
	id := storetest.ID("3f", 1)
	objects := map[string]string{
		"packs/" + id:                  "packs/3f/" + id,
		"config":                       "config",
		"packs/short":                  "packs/short",
		"packs/ABCDEF0123456789ABCDEF": "packs/ABCDEF0123456789ABCDEF", // not lowercase hex
		"packs/0123456789abcde":        "packs/0123456789abcde",        // 15 characters: too short
		"packs/0123456789abcdef":       "packs/01/0123456789abcdef",
		"x/3f/" + id:                   "x/3f/3f/" + id,
		"haven-probe/" + id[:32]:       "haven-probe/3f/" + id[:32],
	}
	var logical, physical []string
	for name, file := range objects {
		storetest.Put(t, s, name, []byte(name))
		logical = append(logical, name)
		physical = append(physical, file)
	}
	slices.Sort(logical)
	slices.Sort(physical)
	if got := files(t, s.Root()); !slices.Equal(got, physical) {
		t.Fatalf("files on disk:\n got %q\nwant %q", got, physical)
	}
	if got := storetest.Names(t, s, ""); !slices.Equal(got, logical) {
		t.Fatalf("List does not invert the fan-out:\n got %q\nwant %q", got, logical)
	}
	for name := range objects {
		if got := storetest.Get(t, s, name, 0, -1); string(got) != name {
			t.Fatalf("Get(%q) = %q", name, got)
		}
	}
}

func TestFailedPutLeavesNothing(t *testing.T) {
	s := newStore(t)
	name := "packs/" + storetest.ID("ab", 2)
	boom := errors.New("disk image read error")
	err := s.Put(t.Context(), name, &storetest.FailingReader{N: 100 << 10, Err: boom}, 1<<20, store.PutOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("Put from a failing reader: got %v", err)
	}
	_, err = s.Stat(t.Context(), name)
	storetest.WantNotFound(t, "Stat after a failed Put", err)
	if got := files(t, s.Root()); len(got) != 0 {
		t.Fatalf("a failed Put left files behind: %q", got)
	}

	// A short reader must not replace an existing object either.
	storetest.Put(t, s, name, []byte("complete"))
	if err := s.Put(t.Context(), name, bytes.NewReader([]byte("tr")), 8, store.PutOptions{}); err == nil {
		t.Fatal("short Put succeeded")
	}
	if got := storetest.Get(t, s, name, 0, -1); string(got) != "complete" {
		t.Fatalf("a failed Put changed the object to %q", got)
	}
	if got := files(t, s.Root()); len(got) != 1 {
		t.Fatalf("a failed overwrite left files behind: %q", got)
	}
}

func TestListSkipsForeignFiles(t *testing.T) {
	s := newStore(t)
	id := storetest.ID("3f", 3)
	storetest.Put(t, s, "packs/"+id, []byte("pack"))
	storetest.Put(t, s, "config", []byte("config"))
	root := s.Root()
	for _, p := range []string{
		".tmp-123",                          // a temporary file of an interrupted Put
		"packs/3f/.tmp-456",                 // the same in a fan-out directory
		"packs/" + id[:2] + "x/y z",         // a name the store never writes
		"packs/" + storetest.ID("ab", 4),    // a fanned id outside its fan-out directory
		"packs/3f/" + storetest.ID("cd", 5), // a fanned id in the wrong fan-out directory
	} {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"config", "packs/" + id}
	if got := storetest.Names(t, s, ""); !slices.Equal(got, want) {
		t.Fatalf("List:\n got %q\nwant %q", got, want)
	}
}

func TestPutOverDirectoryIsPermanent(t *testing.T) {
	s := newStore(t)
	storetest.Put(t, s, "a/b", []byte("x"))
	err := s.Put(t.Context(), "a", bytes.NewReader([]byte("y")), 1, store.PutOptions{})
	if err == nil || store.IsTransient(err) {
		t.Fatalf("Put over a directory: got %v, want a permanent error", err)
	}
	err = s.Put(t.Context(), "a/b/c", bytes.NewReader([]byte("y")), 1, store.PutOptions{})
	if err == nil || store.IsTransient(err) {
		t.Fatalf("Put below an object: got %v, want a permanent error", err)
	}
	if err := s.Delete(t.Context(), "a"); err != nil {
		t.Fatalf("Delete of a directory name: %v", err)
	}
	if got := storetest.Names(t, s, ""); !slices.Equal(got, []string{"a/b"}) {
		t.Fatalf("List = %q", got)
	}
}

func TestMissingRootIsNotRecreated(t *testing.T) {
	s := newStore(t)
	if err := os.Remove(s.Root()); err != nil {
		t.Fatal(err)
	}
	err := s.Put(t.Context(), "packs/x", bytes.NewReader([]byte("x")), 1, store.PutOptions{})
	if err == nil || store.IsTransient(err) || !strings.Contains(err.Error(), "mounted") {
		t.Fatalf("Put into a missing root: got %v, want a permanent error about the root", err)
	}
	if _, err := os.Stat(s.Root()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Put recreated the root (stat: %v)", err)
	}
	if got := storetest.Names(t, s, ""); len(got) != 0 {
		t.Fatalf("List of a missing root = %q", got)
	}
}

// TestListOrderRandom puts random names built from elements that collide in
// the fan-out layout, and checks that List returns exactly the stored names in
// ascending order for many prefixes.
func TestListOrderRandom(t *testing.T) {
	elems := []string{"3f", "3f0", "3f-a", "3f.b", "3e", "ab", "x", storetest.ID("3f", 1), storetest.ID("3f", 2), storetest.ID("ab", 3), storetest.ID("3e", 4)}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 10 {
		s := newStore(t)
		var stored []string
		for range 30 {
			parts := make([]string, 1+rng.IntN(3))
			for i := range parts {
				parts[i] = elems[rng.IntN(len(elems))]
			}
			name := strings.Join(parts, "/")
			// Names that clash with a directory of another name cannot be
			// stored on a filesystem; the store refuses them.
			if err := s.Put(t.Context(), name, bytes.NewReader([]byte(name)), int64(len(name)), store.PutOptions{}); err == nil {
				stored = append(stored, name)
			}
		}
		slices.Sort(stored)
		stored = slices.Compact(stored)
		prefixes := []string{""}
		for _, n := range stored {
			for i := 1; i <= len(n); i++ {
				if p := n[:i]; store.ValidatePrefix(p) == nil {
					prefixes = append(prefixes, p)
				}
			}
		}
		for _, prefix := range prefixes {
			var want []string
			for _, n := range stored {
				if strings.HasPrefix(n, prefix) {
					want = append(want, n)
				}
			}
			if got := storetest.Names(t, s, prefix); !slices.Equal(got, want) {
				t.Fatalf("round %d, List(%q):\n got %q\nwant %q", round, prefix, got, want)
			}
		}
	}
}

// BenchmarkPutPack stores pack-sized objects as a backup does (from
// page-aligned memory, as the writer's packs are; through the fsync and
// the rename), one or several at once (repo.Options.Uploads), with
// direct I/O and through the page cache. Writing through the page cache,
// the fsync waited for the kernel's writeback of tens of MiB of dirty
// pages; with direct I/O the data is on the disk when write returns.
func BenchmarkPutPack(b *testing.B) {
	data := store.AlignedBytes(16 << 20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, path := range []string{"direct", "buffered"} {
		for _, atOnce := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/at-once-%d", path, atOnce), func(b *testing.B) {
				s, err := New(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				if path == "buffered" {
					s.direct.minSize = -1
				}
				b.SetBytes(int64(len(data)))
				var next atomic.Int64
				var wg sync.WaitGroup
				for range atOnce {
					wg.Go(func() {
						for k := next.Add(1); k <= int64(b.N); k = next.Add(1) {
							name := fmt.Sprintf("packs/%064x", k)
							if err := s.Put(b.Context(), name, bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
								b.Error(err)
								return
							}
							if err := s.Delete(b.Context(), name); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
		}
	}
}
