package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// ProbePrefix is where Probe writes its objects.
const ProbePrefix = "haven-probe/"

// probeSize is small enough to be cheap everywhere, and random so that a backend
// returning stale or foreign data cannot pass.
const probeSize = 4096

// Probe steps, as reported in ProbeError.Step.
const (
	ProbeWrite  = "write"
	ProbeRead   = "read"
	ProbeVerify = "verify"
	ProbeDelete = "delete"
)

// ProbeError says which step of Probe failed. It wraps the store's error, so
// IsTransient, ErrNotFound and the backend's own error types still apply.
type ProbeError struct {
	Step string // ProbeWrite, ProbeRead, ProbeVerify or ProbeDelete
	Name string // the probe object's name
	Err  error
}

func (e *ProbeError) Error() string {
	return fmt.Sprintf("storage probe failed to %s object %s: %v", e.Step, e.Name, e.Err)
}

func (e *ProbeError) Unwrap() error { return e.Err }

// Probe proves that s works end to end: it writes a small random object under
// ProbePrefix with a unique name, reads it back and compares the bytes, deletes
// it, and checks that it is gone. On failure it returns a *ProbeError naming the
// step, and removes the probe object if it may have been written.
func Probe(ctx context.Context, s Store) error {
	var id [16]byte
	data := make([]byte, probeSize)
	// crypto/rand.Read never fails (it aborts the program instead).
	_, _ = rand.Read(id[:])
	_, _ = rand.Read(data)
	name := ProbePrefix + hex.EncodeToString(id[:])
	fail := func(step string, err error) error { return &ProbeError{Step: step, Name: name, Err: err} }

	if err := s.Put(ctx, name, bytes.NewReader(data), int64(len(data)), PutOptions{}); err != nil {
		// A failed Put may still have stored the object (the reply got lost).
		cleanupProbe(ctx, s, name)
		return fail(ProbeWrite, err)
	}
	got, err := readAll(ctx, s, name)
	if err != nil {
		cleanupProbe(ctx, s, name)
		return fail(ProbeRead, err)
	}
	if !bytes.Equal(got, data) {
		cleanupProbe(ctx, s, name)
		return fail(ProbeVerify, Permanent(fmt.Errorf("read back %d bytes that differ from the %d bytes written", len(got), len(data))))
	}
	if err := s.Delete(ctx, name); err != nil {
		return fail(ProbeDelete, err)
	}
	switch _, err := s.Stat(ctx, name); {
	case err == nil:
		return fail(ProbeDelete, Permanent(errors.New("the object still exists after it was deleted")))
	case !errors.Is(err, ErrNotFound):
		return fail(ProbeDelete, fmt.Errorf("checking that the object is gone: %w", err))
	}
	return nil
}

func readAll(ctx context.Context, s Store, name string) ([]byte, error) {
	rc, err := s.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// cleanupProbe deletes a probe object on a best-effort basis, even if ctx has
// just been cancelled, so that failed probes do not litter the store.
func cleanupProbe(ctx context.Context, s Store, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = s.Delete(ctx, name)
}
