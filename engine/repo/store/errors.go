package store

import (
	"errors"
)

var (
	// ErrNotFound matches errors about an object that does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidName matches errors about a name or prefix that ValidateName or
	// ValidatePrefix rejects.
	ErrInvalidName = errors.New("invalid object name")
	// ErrInvalidRange matches errors about a Get range that starts outside the
	// object.
	ErrInvalidRange = errors.New("invalid range")
	// ErrUnsupported matches errors about an operation that a store cannot do.
	ErrUnsupported = errors.New("not supported")
)

// classified marks an error as transient or permanent without changing its text,
// so that classification never gets in the way of errors.Is, errors.As or the
// message shown to a user.
type classified struct {
	err       error
	transient bool
}

func (e *classified) Error() string { return e.err.Error() }
func (e *classified) Unwrap() error { return e.err }

// Transient marks err as transient: repeating the operation may succeed (a
// timeout, a throttled request, a 5xx, a reset connection). Transient(nil) is nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, transient: true}
}

// Permanent marks err as permanent: repeating the operation unchanged will fail
// again (a missing object, a denied access, a bad name, a missing bucket).
// Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, transient: false}
}

// IsTransient reports whether err is worth retrying. The outermost mark in err's
// chain decides, so a caller can reclassify an error by marking it again. An
// error without any mark is permanent: an unknown failure is not retried blindly.
func IsTransient(err error) bool {
	var c *classified
	if errors.As(err, &c) {
		return c.transient
	}
	return false
}

// IsClassified reports whether err carries a Transient or Permanent mark.
func IsClassified(err error) bool {
	var c *classified
	return errors.As(err, &c)
}
