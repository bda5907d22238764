// Package storetest is the conformance suite of the store.Store contract. Every
// store implementation runs it against a real backend, so that the engine can
// rely on the contract rather than on one backend's habits.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// LargeSize is the size of the suite's large objects. Stores that switch to a
// different upload method for large objects (S3 multipart) must switch below it.
const LargeSize = 20 << 20

// Run runs the conformance suite. newStore must return a new, empty store each
// time it is called; the subtests run in parallel, so it is called concurrently.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, s store.Store)
	}{
		{"PutGet", testPutGet},
		{"GetRange", testGetRange},
		{"Overwrite", testOverwrite},
		{"Empty", testEmpty},
		{"Missing", testMissing},
		{"List", testList},
		{"ListStops", testListStops},
		{"Delete", testDelete},
		{"InvalidNames", testInvalidNames},
		{"ShortData", testShortData},
		{"ReaderError", testReaderError},
		{"Large", testLarge},
		{"Concurrent", testConcurrent},
		{"Cancelled", testCancelled},
		{"Probe", testProbe},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t, newStore(t))
		})
	}
}

// Data returns n pseudo-random bytes determined by seed.
func Data(seed uint64, n int) []byte {
	b := make([]byte, n)
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	_, _ = rand.NewChaCha8(key).Read(b)
	return b
}

// ID returns a pack-style id (64 lowercase hex digits) that starts with lead.
func ID(lead string, seed uint64) string {
	return (lead + fmt.Sprintf("%x", Data(seed, 32)))[:64]
}

// Put stores data under name and fails the test on error.
func Put(t testing.TB, s store.Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), name, bytes.NewReader(data), int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
	}
}

// Get reads a range of name and fails the test on error.
func Get(t testing.TB, s store.Store, name string, offset, length int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), name, offset, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", name, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading Get(%q, %d, %d): %v", name, offset, length, err)
	}
	return b
}

// Names lists the names under prefix and fails the test on error.
func Names(t testing.TB, s store.Store, prefix string) []string {
	t.Helper()
	var names []string
	if err := s.List(t.Context(), prefix, func(oi store.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return names
}

// WantNotFound fails the test unless err is a permanent ErrNotFound.
func WantNotFound(t testing.TB, what string, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: got error %v, want one matching ErrNotFound", what, err)
	}
	if store.IsTransient(err) {
		t.Fatalf("%s: ErrNotFound error %v is marked transient", what, err)
	}
}

func testPutGet(t *testing.T, s store.Store) {
	data := Data(1, 1000)
	name := "packs/" + ID("3f", 1)
	Put(t, s, name, data)
	if got := Get(t, s, name, 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes, not the %d bytes put", len(got), len(data))
	}
	info, err := s.Stat(t.Context(), name)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Name != name || info.Size != int64(len(data)) || info.Class != store.ClassWarm {
		t.Fatalf("Stat = %+v, want name %q, size %d, class warm", info, name, len(data))
	}
	if age := time.Since(info.ModTime); age < -time.Hour || age > time.Hour {
		t.Fatalf("Stat ModTime %v is not about now", info.ModTime)
	}
}

func testGetRange(t *testing.T, s store.Store) {
	data := Data(2, 1000)
	name := "manifests/m1"
	Put(t, s, name, data)
	for _, tc := range []struct {
		offset, length int64
		want           []byte
	}{
		{0, 10, data[:10]},
		{0, -1, data},
		{100, 200, data[100:300]},
		{100, -1, data[100:]},
		{999, 1, data[999:]},
		{990, 100, data[990:]}, // cut at the end
		{5, 0, nil},
		{1000, -1, nil},
		{1000, 10, nil},
	} {
		got := Get(t, s, name, tc.offset, tc.length)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("Get(%d, %d) returned %d bytes, want %d", tc.offset, tc.length, len(got), len(tc.want))
		}
	}
	for _, tc := range []struct{ offset, length int64 }{{1001, 1}, {1001, -1}, {-1, 5}, {5000, 10}} {
		rc, err := s.Get(t.Context(), name, tc.offset, tc.length)
		if err == nil {
			rc.Close()
			t.Errorf("Get(%d, %d) succeeded, want ErrInvalidRange", tc.offset, tc.length)
			continue
		}
		if !errors.Is(err, store.ErrInvalidRange) || store.IsTransient(err) {
			t.Errorf("Get(%d, %d): got %v, want a permanent ErrInvalidRange", tc.offset, tc.length, err)
		}
	}
}

func testOverwrite(t *testing.T, s store.Store) {
	name := "config"
	Put(t, s, name, Data(3, 500))
	second := Data(4, 300)
	Put(t, s, name, second)
	if got := Get(t, s, name, 0, -1); !bytes.Equal(got, second) {
		t.Fatalf("after overwrite Get returned %d bytes, not the second object's %d", len(got), len(second))
	}
	info, err := s.Stat(t.Context(), name)
	if err != nil || info.Size != int64(len(second)) {
		t.Fatalf("Stat after overwrite = %+v, %v; want size %d", info, err, len(second))
	}
	if names := Names(t, s, ""); !slices.Equal(names, []string{name}) {
		t.Fatalf("List after overwrite = %q, want just %q", names, name)
	}
}

func testEmpty(t *testing.T, s store.Store) {
	name := "locks/empty"
	Put(t, s, name, nil)
	if got := Get(t, s, name, 0, -1); len(got) != 0 {
		t.Fatalf("Get of empty object returned %d bytes", len(got))
	}
	if got := Get(t, s, name, 0, 10); len(got) != 0 {
		t.Fatalf("Get(0, 10) of empty object returned %d bytes", len(got))
	}
	info, err := s.Stat(t.Context(), name)
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat of empty object = %+v, %v", info, err)
	}
}

func testMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	Put(t, s, "packs/other", []byte("x"))
	for _, name := range []string{"packs/missing", "packs/" + ID("ab", 5), "nodir/x", "packs"} {
		_, err := s.Get(ctx, name, 0, -1)
		WantNotFound(t, "Get "+name, err)
		_, err = s.Get(ctx, name, 10, 5)
		WantNotFound(t, "ranged Get "+name, err)
		_, err = s.Get(ctx, name, 0, 0)
		WantNotFound(t, "empty Get "+name, err)
		_, err = s.Stat(ctx, name)
		WantNotFound(t, "Stat "+name, err)
		if err := s.Delete(ctx, name); err != nil {
			t.Errorf("Delete of missing %s: %v", name, err)
		}
	}
}

// listNames mixes plain names with fan-out style ids whose first characters
// collide with plain names and directories, so that a store has to get the
// ordering right however it lays objects out.
func listNames() []string {
	return []string{
		"config",
		"keys/k1",
		"keys/k2",
		"packs/" + ID("3f", 10),
		"packs/" + ID("3f", 11),
		"packs/3f-notes",
		"packs/3f.old",
		"packs/3f/nested",
		"packs/3f/" + ID("3f", 12),
		"packs/3f0",
		"packs/" + ID("ab", 13),
		"packs/" + ID("00", 14),
		"packs/ABCDEF0123456789ABCDEF",
		"packs2/x",
	}
}

func testList(t *testing.T, s store.Store) {
	names := listNames()
	for i, n := range names {
		Put(t, s, n, Data(uint64(100+i), 10+i))
	}
	sorted := slices.Clone(names)
	slices.Sort(sorted)

	sizes := map[string]int64{}
	if err := s.List(t.Context(), "", func(oi store.ObjectInfo) error {
		sizes[oi.Name] = oi.Size
		if oi.Class != store.ClassWarm {
			t.Errorf("List reports %s in class %v, want warm", oi.Name, oi.Class)
		}
		return nil
	}); err != nil {
		t.Fatalf("List: %v", err)
	}
	for i, n := range names {
		if sizes[n] != int64(10+i) {
			t.Errorf("List reports size %d for %s, want %d", sizes[n], n, 10+i)
		}
	}

	for _, prefix := range []string{"", "packs/", "packs", "packs/3f", "packs/3f/", "packs/3f-", "packs/3fa", "keys/", "k", "nope/", "packs/3f/nested", "config"} {
		var want []string
		for _, n := range sorted {
			if strings.HasPrefix(n, prefix) {
				want = append(want, n)
			}
		}
		if got := Names(t, s, prefix); !slices.Equal(got, want) {
			t.Errorf("List(%q):\n got %q\nwant %q", prefix, got, want)
		}
	}
}

func testListStops(t *testing.T, s store.Store) {
	for i := range 3 {
		Put(t, s, fmt.Sprintf("idx/%d", i), []byte("x"))
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(t.Context(), "idx/", func(store.ObjectInfo) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("List with failing fn returned %v after %d calls, want the fn's error after 1", err, calls)
	}
}

func testDelete(t *testing.T, s store.Store) {
	a, b := "packs/"+ID("cd", 20), "packs/"+ID("cd", 21)
	Put(t, s, a, []byte("a"))
	Put(t, s, b, []byte("b"))
	if err := s.Delete(t.Context(), a); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Stat(t.Context(), a)
	WantNotFound(t, "Stat after Delete", err)
	if names := Names(t, s, ""); !slices.Equal(names, []string{b}) {
		t.Fatalf("List after Delete = %q, want %q", names, []string{b})
	}
	if err := s.Delete(t.Context(), a); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

func testInvalidNames(t *testing.T, s store.Store) {
	ctx := t.Context()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrInvalidName) || store.IsTransient(err) {
			t.Errorf("%s: got %v, want a permanent ErrInvalidName", what, err)
		}
	}
	for _, name := range []string{"", "/abs", "a/../b", "..", ".", "a/./b", "a//b", "a/", ".hidden", "packs/.tmp-1", "a b", "a\\b", "ä", "a\x00b", strings.Repeat("a", store.MaxNameLen+1)} {
		check(fmt.Sprintf("Put(%q)", name), s.Put(ctx, name, bytes.NewReader([]byte("x")), 1, store.PutOptions{}))
		_, err := s.Get(ctx, name, 0, -1)
		check(fmt.Sprintf("Get(%q)", name), err)
		_, err = s.Stat(ctx, name)
		check(fmt.Sprintf("Stat(%q)", name), err)
		check(fmt.Sprintf("Delete(%q)", name), s.Delete(ctx, name))
	}
	for _, prefix := range []string{"/", "/x", "../", "a//", "a/../b", ".tmp"} {
		check(fmt.Sprintf("List(%q)", prefix), s.List(ctx, prefix, func(store.ObjectInfo) error { return nil }))
	}
	if names := Names(t, s, ""); len(names) != 0 {
		t.Fatalf("invalid puts left objects behind: %q", names)
	}
}

func testShortData(t *testing.T, s store.Store) {
	name := "packs/short"
	err := s.Put(t.Context(), name, bytes.NewReader(make([]byte, 50)), 100, store.PutOptions{})
	if err == nil || store.IsTransient(err) {
		t.Fatalf("Put of 50 bytes announced as 100: got %v, want a permanent error", err)
	}
	_, err = s.Stat(t.Context(), name)
	WantNotFound(t, "Stat after a short Put", err)
	if err := s.Put(t.Context(), name, bytes.NewReader(nil), -1, store.PutOptions{}); err == nil || store.IsTransient(err) {
		t.Fatalf("Put with size -1: got %v, want a permanent error", err)
	}
}

// FailingReader yields N bytes of data and then fails with Err.
type FailingReader struct {
	N   int
	Err error
}

func (r *FailingReader) Read(p []byte) (int, error) {
	if r.N == 0 {
		return 0, r.Err
	}
	n := min(len(p), r.N)
	clear(p[:n])
	r.N -= n
	return n, nil
}

func testReaderError(t *testing.T, s store.Store) {
	name := "manifests/broken"
	Put(t, s, name, []byte("old"))
	boom := errors.New("source broke")
	err := s.Put(t.Context(), name, &FailingReader{N: 1000, Err: boom}, 5000, store.PutOptions{})
	if !errors.Is(err, boom) || store.IsTransient(err) {
		t.Fatalf("Put from a failing reader: got %v, want a permanent error wrapping the reader's", err)
	}
	if got := Get(t, s, name, 0, -1); string(got) != "old" {
		t.Fatalf("a failed Put replaced the object: got %q", got)
	}
	// A source that says its failure is transient keeps that mark.
	err = s.Put(t.Context(), name, &FailingReader{N: 10, Err: store.Transient(boom)}, 5000, store.PutOptions{})
	if !errors.Is(err, boom) || !store.IsTransient(err) {
		t.Fatalf("Put from a transiently failing reader: got %v, want a transient error wrapping the reader's", err)
	}
}

// plainReader hides every method but Read, as a network stream would.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

func testLarge(t *testing.T, s store.Store) {
	data := Data(30, LargeSize)
	a := "packs/" + ID("aa", 30)
	b := "packs/" + ID("bb", 31)
	if err := s.Put(t.Context(), a, plainReader{bytes.NewReader(data)}, int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatalf("Put large object from a plain reader: %v", err)
	}
	// A seekable reader is read from its position at the time of the call.
	junk := []byte("not part of the object")
	br := bytes.NewReader(append(slices.Clone(junk), data...))
	if _, err := br.Seek(int64(len(junk)), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), b, br, int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatalf("Put large object from a seekable reader: %v", err)
	}
	for _, name := range []string{a, b} {
		if got := Get(t, s, name, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("large object %s came back different (%d bytes, want %d)", name, len(got), len(data))
		}
		// Ranges around every MiB boundary, where upload parts typically end.
		for off := int64(1 << 20); off < LargeSize; off += 1 << 20 {
			if got := Get(t, s, name, off-7, 13); !bytes.Equal(got, data[off-7:off+6]) {
				t.Fatalf("range at %d of %s came back different", off-7, name)
			}
		}
		info, err := s.Stat(t.Context(), name)
		if err != nil || info.Size != LargeSize {
			t.Fatalf("Stat of large object = %+v, %v", info, err)
		}
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := Data(uint64(40+i), 2000)
			errs[i] = s.Put(t.Context(), "packs/"+ID(fmt.Sprintf("%02x", i), uint64(40+i)), bytes.NewReader(data), int64(len(data)), store.PutOptions{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put %d: %v", i, err)
		}
	}
	if names := Names(t, s, "packs/"); len(names) != n {
		t.Fatalf("List after %d concurrent Puts returned %d names", n, len(names))
	}
}

func testCancelled(t *testing.T, s store.Store) {
	Put(t, s, "config", []byte("x"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: got %v, want context.Canceled", what, err)
		}
	}
	check("Put", s.Put(ctx, "config2", bytes.NewReader([]byte("y")), 1, store.PutOptions{}))
	_, err := s.Get(ctx, "config", 0, -1)
	check("Get", err)
	_, err = s.Stat(ctx, "config")
	check("Stat", err)
	check("List", s.List(ctx, "", func(store.ObjectInfo) error { return nil }))
	check("Delete", s.Delete(ctx, "config"))
	if names := Names(t, s, ""); !slices.Equal(names, []string{"config"}) {
		t.Fatalf("operations with a cancelled context changed the store: %q", names)
	}
}

func testProbe(t *testing.T, s store.Store) {
	if err := store.Probe(t.Context(), s); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if names := Names(t, s, ""); len(names) != 0 {
		t.Fatalf("Probe left objects behind: %q", names)
	}
}
