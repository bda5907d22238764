package store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/storetest"
)

// faults wraps a real store and injects failures: queued errors per operation,
// Puts that read part of the body before failing, Get bodies that break
// midway, and Lists that break after some objects. It counts the calls.
type faults struct {
	store.Store

	mu      sync.Mutex
	calls   map[string]int
	pending map[string][]error
	// putConsume is how much a failing Put reads from its body first, so a
	// retry only works if the body is rewound.
	putConsume int64
	// The next brokenBodies Get bodies fail transiently after breakAfter bytes.
	brokenBodies int
	breakAfter   int64
	// The next brokenLists Lists fail transiently after listAfter objects.
	brokenLists int
	listAfter   int
	// gets records the range of every Get call.
	gets [][2]int64
}

var errBroken = errors.New("connection reset (injected)")

func newFaults(s store.Store) *faults {
	return &faults{Store: s, calls: map[string]int{}, pending: map[string][]error{}}
}

// failNext queues errors for the next calls of op.
func (f *faults) failNext(op string, errs ...error) *faults {
	f.pending[op] = append(f.pending[op], errs...)
	return f
}

func (f *faults) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// call counts a call of op and returns the error to inject, if any.
func (f *faults) call(op string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if q := f.pending[op]; len(q) > 0 {
		f.pending[op] = q[1:]
		return q[0]
	}
	return nil
}

func (f *faults) Put(ctx context.Context, name string, r io.Reader, size int64, opts store.PutOptions) error {
	if err := f.call("put"); err != nil {
		_, _ = io.CopyN(io.Discard, r, f.putConsume)
		return err
	}
	return f.Store.Put(ctx, name, r, size, opts)
}

func (f *faults) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	f.mu.Lock()
	f.gets = append(f.gets, [2]int64{offset, length})
	f.mu.Unlock()
	if err := f.call("get"); err != nil {
		return nil, err
	}
	rc, err := f.Store.Get(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.brokenBodies > 0 {
		f.brokenBodies--
		return &breakingBody{ReadCloser: rc, left: f.breakAfter}, nil
	}
	return rc, nil
}

type breakingBody struct {
	io.ReadCloser
	left int64
}

func (b *breakingBody) Read(p []byte) (int, error) {
	if b.left == 0 {
		return 0, store.Transient(errBroken)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

func (f *faults) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := f.call("stat"); err != nil {
		return store.ObjectInfo{}, err
	}
	return f.Store.Stat(ctx, name)
}

func (f *faults) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if err := f.call("list"); err != nil {
		return err
	}
	f.mu.Lock()
	broken := f.brokenLists > 0
	if broken {
		f.brokenLists--
	}
	f.mu.Unlock()
	if !broken {
		return f.Store.List(ctx, prefix, fn)
	}
	seen := 0
	return f.Store.List(ctx, prefix, func(oi store.ObjectInfo) error {
		if seen == f.listAfter {
			return store.Transient(errBroken)
		}
		seen++
		return fn(oi)
	})
}

func (f *faults) Delete(ctx context.Context, name string) error {
	if err := f.call("delete"); err != nil {
		return err
	}
	return f.Store.Delete(ctx, name)
}

// classFaults adds storage classes, remembered in memory, to faults.
type classFaults struct {
	*faults
	classes map[string]store.Class
}

func (c *classFaults) SetClass(_ context.Context, name string, class store.Class) error {
	if err := c.call("setclass"); err != nil {
		return err
	}
	c.classes[name] = class
	return nil
}

// fast retries without noticeable waits.
var fast = store.RetryPolicy{MaxAttempts: 5, InitialDelay: time.Microsecond, MaxDelay: 10 * time.Microsecond}

func TestRetryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.WithRetry(newFS(t), fast) })
}

func TestRetryPutRewindsBody(t *testing.T) {
	f := newFaults(newFS(t)).failNext("put", store.Transient(errBroken), store.Transient(errBroken), store.Transient(errBroken))
	f.putConsume = 700
	var notes []int
	p := fast
	p.Notify = func(op, name string, attempt int, err error, delay time.Duration) {
		if op != "put" || name != "packs/p" || !errors.Is(err, errBroken) || delay <= 0 {
			t.Errorf("Notify(%q, %q, %d, %v, %v)", op, name, attempt, err, delay)
		}
		notes = append(notes, attempt)
	}
	s := store.WithRetry(f, p)

	data := storetest.Data(1, 1000)
	junk := []byte("header that is not part of the object")
	r := bytes.NewReader(append(slices.Clone(junk), data...))
	if _, err := r.Seek(int64(len(junk)), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "packs/p", r, int64(len(data)), store.PutOptions{}); err != nil {
		t.Fatalf("Put with 3 transient failures: %v", err)
	}
	if n := f.count("put"); n != 4 {
		t.Fatalf("Put was tried %d times, want 4", n)
	}
	if !slices.Equal(notes, []int{1, 2, 3}) {
		t.Fatalf("Notify saw attempts %v, want [1 2 3]", notes)
	}
	if got := storetest.Get(t, s, "packs/p", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("the retried Put stored different data")
	}
}

func TestRetryPutPlainReaderOnce(t *testing.T) {
	f := newFaults(newFS(t)).failNext("put", store.Transient(errBroken))
	s := store.WithRetry(f, fast)
	err := s.Put(t.Context(), "x", struct{ io.Reader }{bytes.NewReader([]byte("data"))}, 4, store.PutOptions{})
	if !errors.Is(err, errBroken) || !store.IsTransient(err) {
		t.Fatalf("Put from a plain reader: got %v, want the transient failure", err)
	}
	if n := f.count("put"); n != 1 {
		t.Fatalf("a Put from a reader that cannot be rewound was tried %d times", n)
	}
}

func TestRetryPermanentNotRetried(t *testing.T) {
	injected := store.Permanent(errors.New("access denied (injected)"))
	f := newFaults(newFS(t))
	s := store.WithRetry(f, fast)
	ctx := t.Context()
	storetest.Put(t, f.Store, "x", []byte("x"))
	ops := map[string]func() error{
		"put":    func() error { return s.Put(ctx, "x", bytes.NewReader([]byte("y")), 1, store.PutOptions{}) },
		"get":    func() error { _, err := s.Get(ctx, "x", 0, -1); return err },
		"stat":   func() error { _, err := s.Stat(ctx, "x"); return err },
		"list":   func() error { return s.List(ctx, "", func(store.ObjectInfo) error { return nil }) },
		"delete": func() error { return s.Delete(ctx, "x") },
	}
	for op, do := range ops {
		f.failNext(op, injected)
		if err := do(); err != injected {
			t.Errorf("%s: got %v, want the permanent error as is", op, err)
		}
		if n := f.count(op); n != 1 {
			t.Errorf("%s with a permanent error was tried %d times", op, n)
		}
	}
	// Not found is permanent too.
	_, err := s.Stat(ctx, "missing")
	storetest.WantNotFound(t, "Stat", err)
	if n := f.count("stat"); n != 2 {
		t.Errorf("Stat of a missing object was tried %d times", n-1)
	}
}

func TestRetryGivesUp(t *testing.T) {
	f := newFaults(newFS(t))
	for range 10 {
		f.failNext("delete", store.Transient(errBroken))
	}
	p := fast
	p.MaxAttempts = 3
	err := store.WithRetry(f, p).Delete(t.Context(), "x")
	if !errors.Is(err, errBroken) || !store.IsTransient(err) {
		t.Fatalf("Delete after running out of attempts: got %v, want the transient failure", err)
	}
	if n := f.count("delete"); n != 3 {
		t.Fatalf("Delete was tried %d times, want 3", n)
	}
}

func TestRetryGetResumes(t *testing.T) {
	data := storetest.Data(2, 10000)
	f := newFaults(newFS(t)).failNext("get", store.Transient(errBroken))
	storetest.Put(t, f.Store, "packs/p", data)
	f.brokenBodies, f.breakAfter = 2, 3000
	s := store.WithRetry(f, fast)

	if got := storetest.Get(t, s, "packs/p", 100, 8000); !bytes.Equal(got, data[100:8100]) {
		t.Fatalf("resumed Get returned %d different bytes", len(got))
	}
	want := [][2]int64{{100, 8000}, {100, 8000}, {3100, 5000}, {6100, 2000}}
	if !slices.Equal(f.gets, want) {
		t.Fatalf("Get calls %v, want %v", f.gets, want)
	}

	f.gets = nil
	f.brokenBodies, f.breakAfter = 1, 4000
	if got := storetest.Get(t, s, "packs/p", 500, -1); !bytes.Equal(got, data[500:]) {
		t.Fatalf("resumed Get to the end returned %d different bytes", len(got))
	}
	if want := [][2]int64{{500, -1}, {4500, -1}}; !slices.Equal(f.gets, want) {
		t.Fatalf("Get calls %v, want %v", f.gets, want)
	}
}

func TestRetryGetBodyGivesUp(t *testing.T) {
	f := newFaults(newFS(t))
	storetest.Put(t, f.Store, "p", storetest.Data(3, 100))
	f.brokenBodies, f.breakAfter = 100, 0
	p := fast
	p.MaxAttempts = 4
	rc, err := store.WithRetry(f, p).Get(t.Context(), "p", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, errBroken) || !store.IsTransient(err) {
		t.Fatalf("reading a body that never delivers: got %v, want the transient failure", err)
	}
	if n := f.count("get"); n != 4 {
		t.Fatalf("the body was requested %d times, want 4", n)
	}
}

func TestRetryListResumes(t *testing.T) {
	f := newFaults(newFS(t))
	var names []string
	for i := range 5 {
		n := "packs/" + storetest.ID("0"+string(rune('a'+i)), uint64(i))
		storetest.Put(t, f.Store, n, []byte{byte(i)})
		names = append(names, n)
	}
	f.brokenLists, f.listAfter = 2, 2
	var got []string
	err := store.WithRetry(f, fast).List(t.Context(), "packs/", func(oi store.ObjectInfo) error {
		got = append(got, oi.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, names) {
		t.Fatalf("List with 2 breaks reported %q, want each of %q once", got, names)
	}
	if n := f.count("list"); n != 3 {
		t.Fatalf("List was run %d times, want 3", n)
	}
}

func TestRetryListCallbackErrorNotRetried(t *testing.T) {
	f := newFaults(newFS(t))
	storetest.Put(t, f.Store, "a", []byte("a"))
	mine := store.Transient(errors.New("the caller's own transient trouble"))
	err := store.WithRetry(f, fast).List(t.Context(), "", func(store.ObjectInfo) error { return mine })
	if err != mine {
		t.Fatalf("List returned %v, want the callback's error as is", err)
	}
	if n := f.count("list"); n != 1 {
		t.Fatalf("List was run %d times after its callback failed", n)
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	f := newFaults(newFS(t)).failNext("stat", store.Transient(errBroken))
	ctx, cancel := context.WithCancel(t.Context())
	// The first retry would wait an hour; cancelling as it starts to wait
	// must end the wait.
	p := store.RetryPolicy{MaxAttempts: 3, InitialDelay: time.Hour, Notify: func(string, string, int, error, time.Duration) { cancel() }}
	_, err := store.WithRetry(f, p).Stat(ctx, "x")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errBroken) {
		t.Fatalf("Stat cancelled while waiting: got %v, want both the failure and the cancellation", err)
	}
	if n := f.count("stat"); n != 1 {
		t.Fatalf("Stat was tried %d times", n)
	}
}

func TestRetryClassChanger(t *testing.T) {
	if _, ok := store.WithRetry(newFS(t), fast).(store.ClassChanger); ok {
		t.Fatal("WithRetry of a store without classes claims to change classes")
	}
	c := &classFaults{faults: newFaults(newFS(t)).failNext("setclass", store.Transient(errBroken)), classes: map[string]store.Class{}}
	s := store.WithRetry(c, fast)
	if err := store.SetClass(t.Context(), s, "p", store.ClassCold); err != nil {
		t.Fatalf("SetClass: %v", err)
	}
	if c.count("setclass") != 2 || c.classes["p"] != store.ClassCold {
		t.Fatalf("SetClass was tried %d times, class %v", c.count("setclass"), c.classes["p"])
	}
}
