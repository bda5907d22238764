// Package store defines the object store that a Haven repository lives in: a flat
// namespace of immutable-by-convention objects (packs, manifests, keys) addressed by
// slash-separated names.
//
// The contract is deliberately small so that every backend (the local filesystem
// store in fsstore, the S3 store in s3store) can honour it exactly, and so that
// cross-cutting behaviour such as retries lives in wrappers (WithRetry) instead of
// being re-implemented, slightly differently, inside each backend.
package store

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Store is an object store. Implementations are safe for concurrent use.
//
// Names are validated with ValidateName; a name that fails validation is
// rejected with a permanent error matching ErrInvalidName, before the backend is
// contacted.
//
// Every error returned by a Store, including errors returned by Read on a reader
// from Get, is classified: IsTransient reports whether repeating the same call may
// succeed. ErrNotFound is always permanent.
type Store interface {
	// Put stores exactly size bytes read from r under name. The write is atomic:
	// concurrent and later readers see either the previous object (or none) or the
	// whole new one, never a part. An existing object is replaced.
	//
	// If r yields fewer than size bytes, Put fails with a permanent error and
	// nothing is stored. Bytes beyond size are not read. If reading r fails,
	// Put returns that error wrapped, keeping its mark if the caller marked it
	// (see Transient) and marked permanent otherwise.
	//
	// Put may consume r even when it fails. To let a caller (or WithRetry) repeat
	// a failed Put, pass an io.ReadSeeker: it is then read from its position at
	// the time of the call.
	Put(ctx context.Context, name string, r io.Reader, size int64, opts PutOptions) error

	// Get returns a reader for length bytes of the object, starting at offset. A
	// negative length reads to the end. The caller must close the reader.
	//
	// A range that extends past the end of the object is cut at the end: the
	// reader then yields fewer than length bytes. offset must not be negative nor
	// larger than the object's size (offset == size yields nothing); otherwise Get
	// fails with a permanent error matching ErrInvalidRange. A missing object is
	// an error matching ErrNotFound.
	Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error)

	// Stat describes one object. A missing object is an error matching ErrNotFound.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List calls fn for every object whose name starts with prefix, in ascending
	// byte order of names. An empty prefix lists everything. prefix is validated
	// like a name, except that it may be empty or end with "/".
	//
	// If fn returns an error, List stops and returns that error unchanged. Objects
	// put or deleted while List runs may or may not be reported.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object. A missing object is not an error, so that
	// deleting is idempotent and safe to repeat.
	Delete(ctx context.Context, name string) error
}

// ClassChanger is implemented by stores that keep objects in several storage
// classes and can move an existing object between them. Use SetClass rather than
// a type assertion, so that stores without classes give a clear error.
type ClassChanger interface {
	// SetClass moves the object to class. Moving an object to the class it is
	// already in does nothing. A missing object is an error matching ErrNotFound.
	SetClass(ctx context.Context, name string, class Class) error
}

// SetClass moves an object of s to class. If s has no storage classes, it fails
// with a permanent error matching ErrUnsupported.
func SetClass(ctx context.Context, s Store, name string, class Class) error {
	cc, ok := s.(ClassChanger)
	if !ok {
		return Permanent(fmt.Errorf("store: set class of %q: %w: this store has no storage classes", name, ErrUnsupported))
	}
	return cc.SetClass(ctx, name, class)
}

// PutOptions are the options of Store.Put.
type PutOptions struct {
	// Class is the storage class for the new object. Stores without storage
	// classes ignore it.
	Class Class
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name string
	Size int64
	// Class is the object's storage class. Stores without storage classes report
	// ClassWarm.
	Class Class
	// ModTime is when the object was last written, as recorded by the backend.
	// Garbage collection uses it to leave young objects alone during its grace
	// period.
	ModTime time.Time
}

// Class is a storage class, that is the tier an object is stored in. Its zero
// value is ClassWarm.
type Class uint8

const (
	// ClassWarm is the backend's standard class: readable at once (S3 Standard).
	ClassWarm Class = iota
	// ClassCold is the backend's archive class: cheap to keep, but objects may
	// need a restore before they can be read (for example S3 Glacier).
	ClassCold
)

func (c Class) String() string {
	switch c {
	case ClassWarm:
		return "warm"
	case ClassCold:
		return "cold"
	default:
		return fmt.Sprintf("Class(%d)", uint8(c))
	}
}

// Valid reports whether c is one of the defined classes.
func (c Class) Valid() bool {
	return c == ClassWarm || c == ClassCold
}
