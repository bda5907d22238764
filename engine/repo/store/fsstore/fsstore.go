// Package fsstore is a store.Store on a local (or mounted) filesystem.
//
// Layout: the object "a/b/c" is the file <root>/a/b/c, except that an object
// whose last element is a long lowercase hex id ("packs/3fa9c0...", at least
// 16 characters of [0-9a-f]) goes one directory deeper, named after the id's
// first two characters: <root>/packs/3f/3fa9c0... With one pack per few tens of
// MiB a repository holds millions of packs; fanning them out keeps every
// directory small enough for the filesystem and for tools to cope.
//
// Writes go to a temporary file (named ".tmp-*", which no valid object name can
// be) in the target directory, which is fsynced and then renamed into place, and
// the directory is fsynced too, so a crash leaves either the old object or the
// new one, never a torn file. Objects of 1 MiB and more (packs) are written
// with direct I/O (O_DIRECT) on Linux where the filesystem takes it, and
// through the page cache everywhere else (see direct.go).
//
// Filesystem limits: a name cannot be both an object and a directory of other
// objects ("a" and "a/b"), and this includes fan-out directories: "packs/3f"
// cannot coexist with "packs/3fa9c0...". Such a Put fails with a permanent error.
// The store has no storage classes: PutOptions.Class is ignored, objects report
// store.ClassWarm, and it does not implement store.ClassChanger.
package fsstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

const (
	// tempPrefix starts with '.', which store.ValidateName refuses as the start of
	// an element, so temporary files can never be mistaken for objects.
	tempPrefix = ".tmp-"
	// fanoutMinLen is long enough that ordinary names ("config", "index-1")
	// are never fanned out, and short enough for every content id Haven uses.
	fanoutMinLen = 16
	dirMode      = 0o700
)

// Store is a filesystem store rooted at a directory.
type Store struct {
	root   string
	direct directIO
	// directBytes counts the bytes written with direct I/O, for tests.
	directBytes atomic.Int64
}

var _ store.Store = (*Store)(nil)

// New returns a store rooted at root, which must be an absolute path. The
// directory is created (with its parents) if it does not exist.
func New(root string) (*Store, error) {
	if !filepath.IsAbs(root) {
		return nil, store.Permanent(fmt.Errorf("fsstore: root %q is not an absolute path", root))
	}
	root = filepath.Clean(root)
	if err := os.MkdirAll(root, dirMode); err != nil {
		return nil, classify(fmt.Sprintf("fsstore: create root %s", root), err, false)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, classify(fmt.Sprintf("fsstore: open root %s", root), err, false)
	}
	if !fi.IsDir() {
		return nil, store.Permanent(fmt.Errorf("fsstore: root %s is not a directory", root))
	}
	return &Store{root: root, direct: defaultDirectIO()}, nil
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

// path returns the file that holds the object name.
func (s *Store) path(name string) string {
	dir, base := path.Split(name)
	if fanned(base) {
		return filepath.Join(s.root, filepath.FromSlash(dir), base[:2], base)
	}
	return filepath.Join(s.root, filepath.FromSlash(name))
}

// fanned reports whether an object whose last element is base lives in a
// fan-out directory.
func fanned(base string) bool {
	if len(base) < fanoutMinLen {
		return false
	}
	for i := 0; i < len(base); i++ {
		if !lowerHex(base[i]) {
			return false
		}
	}
	return true
}

// isFanDir reports whether a directory name has the form of a fan-out directory.
func isFanDir(name string) bool {
	return len(name) == 2 && lowerHex(name[0]) && lowerHex(name[1])
}

func lowerHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
}

func opMsg(op, name string) string {
	return fmt.Sprintf("fsstore: %s %q", op, name)
}

func notFound(op, name string) error {
	return store.Permanent(fmt.Errorf("%s: %w", opMsg(op, name), store.ErrNotFound))
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64, _ store.PutOptions) (err error) {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if size < 0 {
		return store.Permanent(fmt.Errorf("%s: negative size %d", opMsg("put", name), size))
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", opMsg("put", name), err)
	}
	p := s.path(name)
	dir := filepath.Dir(p)
	if err := s.ensureDir(dir); err != nil {
		return classify(opMsg("put", name), err, false)
	}
	f, err := os.CreateTemp(dir, tempPrefix+"*")
	if err != nil {
		return classify(opMsg("put", name), err, false)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	src := &sourceReader{ctx: ctx, r: r}
	n, direct, ok, err := s.direct.writeDirect(f, src, size)
	s.directBytes.Add(direct)
	if !ok {
		n, err = io.Copy(f, io.LimitReader(src, size))
	}
	if src.err != nil {
		err = fmt.Errorf("%s: reading the data: %w", opMsg("put", name), src.err)
		if !store.IsClassified(err) {
			err = store.Permanent(err)
		}
		return err
	}
	if err != nil {
		return classify(opMsg("put", name), err, false)
	}
	if n < size {
		return store.Permanent(fmt.Errorf("%s: the data ended after %d of %d bytes: %w", opMsg("put", name), n, size, io.ErrUnexpectedEOF))
	}
	if err := f.Sync(); err != nil {
		return classify(opMsg("put", name), err, false)
	}
	if err := f.Close(); err != nil {
		return classify(opMsg("put", name), err, false)
	}
	if err := os.Rename(tmp, p); err != nil {
		return classify(opMsg("put", name), err, false)
	}
	if err := syncDir(dir); err != nil {
		return classify(opMsg("put", name), err, false)
	}
	return nil
}

// sourceReader remembers the error of the caller's reader, so that Put can tell
// a failing source from a failing disk, and stops reading once ctx is done.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (sr *sourceReader) Read(p []byte) (int, error) {
	if err := sr.ctx.Err(); err != nil {
		sr.err = err
		return 0, err
	}
	n, err := sr.r.Read(p)
	if err != nil && err != io.EOF {
		sr.err = err
	}
	return n, err
}

// ensureDir creates dir and its missing parents below the root, fsyncing each
// parent so that the new directory entries survive a crash along with the file
// renamed into them. It never recreates the root itself: a missing root usually
// means an unmounted disk, and writing into the bare mount point would hide the
// data from the real one.
func (s *Store) ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errNotDir}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if dir == s.root {
		return fmt.Errorf("the store's root directory %s is missing (is its disk mounted?): %w", s.root, err)
	}
	parent := filepath.Dir(dir)
	if err := s.ensureDir(parent); err != nil {
		return err
	}
	if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, name string, offset, length int64) (io.ReadCloser, error) {
	if err := store.ValidateName(name); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, store.Permanent(fmt.Errorf("%s: %w: negative offset %d", opMsg("get", name), store.ErrInvalidRange, offset))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", opMsg("get", name), err)
	}
	f, err := os.Open(s.path(name))
	if err != nil {
		return nil, classify(opMsg("get", name), err, true)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, classify(opMsg("get", name), err, true)
	}
	if !fi.Mode().IsRegular() {
		_ = f.Close()
		return nil, notFound("get", name)
	}
	size := fi.Size()
	if offset > size {
		_ = f.Close()
		return nil, store.Permanent(fmt.Errorf("%s: %w: offset %d is beyond the end of the %d-byte object", opMsg("get", name), store.ErrInvalidRange, offset, size))
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			_ = f.Close()
			return nil, classify(opMsg("get", name), err, false)
		}
	}
	return &fileReader{f: f, r: io.LimitReader(f, n), name: name}, nil
}

// fileReader classifies read errors like every other store error.
type fileReader struct {
	f    *os.File
	r    io.Reader
	name string
}

func (fr *fileReader) Read(p []byte) (int, error) {
	n, err := fr.r.Read(p)
	if err != nil && err != io.EOF {
		err = classify(opMsg("read", fr.name), err, false)
	}
	return n, err
}

func (fr *fileReader) Close() error { return fr.f.Close() }

// Stat implements store.Store.
func (s *Store) Stat(ctx context.Context, name string) (store.ObjectInfo, error) {
	if err := store.ValidateName(name); err != nil {
		return store.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.ObjectInfo{}, fmt.Errorf("%s: %w", opMsg("stat", name), err)
	}
	fi, err := os.Stat(s.path(name))
	if err != nil {
		return store.ObjectInfo{}, classify(opMsg("stat", name), err, true)
	}
	if !fi.Mode().IsRegular() {
		return store.ObjectInfo{}, notFound("stat", name)
	}
	return objectInfo(name, fi), nil
}

func objectInfo(name string, fi fs.FileInfo) store.ObjectInfo {
	return store.ObjectInfo{Name: name, Size: fi.Size(), Class: store.ClassWarm, ModTime: fi.ModTime()}
}

// Delete implements store.Store. Directories left empty are kept: removing them
// would race with a concurrent Put into the same directory, and a fan-out level
// holds at most 256 of them.
//
// The directory is not fsynced: if a crash undoes a deletion, the object is
// merely garbage again, and the next garbage collection removes it.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", opMsg("delete", name), err)
	}
	p := s.path(name)
	fi, err := os.Lstat(p)
	if err != nil {
		if isNotExist(err) {
			return nil
		}
		return classify(opMsg("delete", name), err, false)
	}
	if !fi.Mode().IsRegular() {
		// Not an object (a directory of other objects): nothing to delete.
		return nil
	}
	if err := os.Remove(p); err != nil && !isNotExist(err) {
		return classify(opMsg("delete", name), err, false)
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, errNotDir)
}

// classify turns an os error into a classified store error. notFoundIsMissing
// says whether a missing file means a missing object (Get, Stat) or something
// else that went wrong (Put into a vanished root).
func classify(msg string, err error, notFoundIsMissing bool) error {
	switch {
	case isNotExist(err) && notFoundIsMissing:
		return store.Permanent(fmt.Errorf("%s: %w", msg, store.ErrNotFound))
	case isNoSpace(err):
		return store.Permanent(fmt.Errorf("%s: the file system is full or the disk quota is used up: %w", msg, err))
	case errors.Is(err, fs.ErrPermission) || isReadOnly(err):
		return store.Permanent(fmt.Errorf("%s: permission denied, check the ownership and mode of the store directory and that it is mounted read-write: %w", msg, err))
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", msg, err)
	case isTransientErrno(err):
		return store.Transient(fmt.Errorf("%s: %w", msg, err))
	default:
		return store.Permanent(fmt.Errorf("%s: %w", msg, err))
	}
}
