package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/storetest"
)

func newFS(t *testing.T) *fsstore.Store {
	t.Helper()
	s, err := fsstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestValidateName(t *testing.T) {
	for _, name := range []string{"config", "packs/3fa9c0", "a/b/c.d_e-f", "A9", "x.", "haven-probe/0123"} {
		if err := store.ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v", name, err)
		}
	}
	for _, name := range []string{"", "/a", "a/", "a//b", ".", "..", "a/../b", "./a", ".a", "a/.b", "a b", "a\\b", "a:b", "é", strings.Repeat("x", store.MaxNameLen+1)} {
		err := store.ValidateName(name)
		if !errors.Is(err, store.ErrInvalidName) || store.IsTransient(err) {
			t.Errorf("ValidateName(%q) = %v, want a permanent ErrInvalidName", name, err)
		}
	}
	for _, prefix := range []string{"", "packs/", "packs", "packs/3f", "a/b/"} {
		if err := store.ValidatePrefix(prefix); err != nil {
			t.Errorf("ValidatePrefix(%q) = %v", prefix, err)
		}
	}
	for _, prefix := range []string{"/", "//", "/a", "a//", "../", "a/./", ".x"} {
		if err := store.ValidatePrefix(prefix); !errors.Is(err, store.ErrInvalidName) {
			t.Errorf("ValidatePrefix(%q) = %v, want ErrInvalidName", prefix, err)
		}
	}
}

func TestClassification(t *testing.T) {
	base := fmt.Errorf("wrapped: %w", io.ErrUnexpectedEOF)
	if store.Transient(nil) != nil || store.Permanent(nil) != nil {
		t.Fatal("marking nil must give nil")
	}
	tr := store.Transient(base)
	if !store.IsTransient(tr) || !store.IsClassified(tr) || tr.Error() != base.Error() || !errors.Is(tr, io.ErrUnexpectedEOF) {
		t.Fatalf("Transient(%v) = %v: transient %v", base, tr, store.IsTransient(tr))
	}
	if p := store.Permanent(tr); store.IsTransient(p) || !errors.Is(p, io.ErrUnexpectedEOF) {
		t.Fatal("the outermost mark must win")
	}
	if wrapped := fmt.Errorf("context: %w", tr); !store.IsTransient(wrapped) {
		t.Fatal("a mark must survive wrapping")
	}
	if store.IsTransient(base) || store.IsClassified(base) {
		t.Fatal("an unmarked error must count as permanent and unclassified")
	}
}

func TestClassString(t *testing.T) {
	if store.ClassWarm.String() != "warm" || store.ClassCold.String() != "cold" || !store.ClassCold.Valid() || store.Class(7).Valid() {
		t.Fatal("Class String/Valid are wrong")
	}
	var zero store.PutOptions
	if zero.Class != store.ClassWarm {
		t.Fatal("the zero class must be warm")
	}
}

func TestSetClassUnsupported(t *testing.T) {
	s := newFS(t)
	storetest.Put(t, s, "a", []byte("x"))
	err := store.SetClass(t.Context(), s, "a", store.ClassCold)
	if !errors.Is(err, store.ErrUnsupported) || store.IsTransient(err) {
		t.Fatalf("SetClass on a store without classes: got %v, want a permanent ErrUnsupported", err)
	}
}

// corrupting flips a byte of everything it reads.
type corrupting struct{ store.Store }

func (c corrupting) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	rc, err := c.Store.Get(ctx, name, offset, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 {
		b[len(b)/2] ^= 1
	}
	return io.NopCloser(strings.NewReader(string(b))), nil
}

// undeletable ignores deletes.
type undeletable struct{ store.Store }

func (undeletable) Delete(context.Context, string) error { return nil }

func TestProbeFailures(t *testing.T) {
	injected := errors.New("injected")
	for _, tc := range []struct {
		name      string
		wrap      func(store.Store) store.Store
		step      string
		transient bool
		text      string
		leftover  bool
	}{
		{
			name: "write fails",
			wrap: func(s store.Store) store.Store {
				return newFaults(s).failNext("put", store.Permanent(injected))
			},
			step: store.ProbeWrite, text: "injected",
		},
		{
			name: "read fails transiently",
			wrap: func(s store.Store) store.Store {
				return newFaults(s).failNext("get", store.Transient(injected))
			},
			step: store.ProbeRead, transient: true, text: "injected",
		},
		{
			name: "data comes back different",
			wrap: func(s store.Store) store.Store { return corrupting{s} },
			step: store.ProbeVerify, text: "differ",
		},
		{
			name: "delete fails",
			wrap: func(s store.Store) store.Store {
				return newFaults(s).failNext("delete", store.Permanent(injected))
			},
			step: store.ProbeDelete, text: "injected", leftover: true,
		},
		{
			name: "delete does nothing",
			wrap: func(s store.Store) store.Store { return undeletable{s} },
			step: store.ProbeDelete, text: "still exists", leftover: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFS(t)
			err := store.Probe(t.Context(), tc.wrap(fs))
			var pe *store.ProbeError
			if !errors.As(err, &pe) || pe.Step != tc.step || store.IsTransient(err) != tc.transient || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Probe: got %v (transient %v), want a failure to %s mentioning %q", err, store.IsTransient(err), tc.step, tc.text)
			}
			if !strings.HasPrefix(pe.Name, store.ProbePrefix) || !strings.Contains(err.Error(), pe.Name) {
				t.Fatalf("Probe error %q does not name its object %q", err, pe.Name)
			}
			if left := storetest.Names(t, fs, ""); (len(left) > 0) != tc.leftover {
				t.Fatalf("objects left after the failed probe: %q", left)
			}
		})
	}
}
