package fsstore

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// List implements store.Store.
//
// Names come out in ascending order although the fan-out layout does not sort
// that way on disk ("packs/3f/3fa9..." is stored under "3f", which sorts before
// a plain "packs/3f-x"): each directory is read, sorted by the names its entries
// stand for, and walked in that order. A fan-out directory's objects are merged
// with the directory's other entries that share its two-character prefix, so
// only one directory level (and one fan-out directory) is held in memory at a
// time, not a whole listing of millions of packs.
func (s *Store) List(ctx context.Context, prefix string, fn func(store.ObjectInfo) error) error {
	if err := store.ValidatePrefix(prefix); err != nil {
		return err
	}
	dir, want := path.Split(prefix)
	return s.listDir(ctx, strings.TrimSuffix(dir, "/"), want, prefix, fn)
}

type entryKind uint8

const (
	kindObject entryKind = iota
	kindDir              // a logical directory: recurse
	kindFanDir           // a fan-out directory: merge its objects into this level
)

// listEntry is one entry of a logical directory. key orders entries the way
// their names sort: an object's key is its last element, a directory's key is
// its element followed by "/", because all names inside "x/" sort after "x-1"
// and "x.1" but before "x0".
type listEntry struct {
	key  string
	kind entryKind
	de   fs.DirEntry // for kindObject
}

// listDir lists the logical directory ldir ("" for the root), reporting only
// entries whose element starts with want. prefix is List's argument, for errors.
func (s *Store) listDir(ctx context.Context, ldir, want, prefix string, fn func(store.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", opMsg("list", prefix), err)
	}
	ents, err := readDir(filepath.Join(s.root, filepath.FromSlash(ldir)), prefix)
	if err != nil {
		return err
	}
	var items []listEntry
	for _, de := range ents {
		n := de.Name()
		switch {
		case store.ValidateName(n) != nil:
			// Temporary files and anything else that is not ours.
		case de.IsDir() && isFanDir(n):
			if strings.HasPrefix(n, want) || strings.HasPrefix(want, n) {
				items = append(items, listEntry{key: n, kind: kindFanDir})
			}
		case de.IsDir():
			if strings.HasPrefix(n+"/", want) {
				items = append(items, listEntry{key: n + "/", kind: kindDir})
			}
		case de.Type().IsRegular() && !fanned(n):
			// A fanned-looking file outside a fan-out directory is not an
			// object of this directory; anything else regular is.
			if strings.HasPrefix(n, want) {
				items = append(items, listEntry{key: n, kind: kindObject, de: de})
			}
		}
	}
	sortEntries(items)

	for i := 0; i < len(items); i++ {
		it := items[i]
		if it.kind != kindFanDir {
			if err := s.emit(ctx, ldir, it, prefix, fn); err != nil {
				return err
			}
			continue
		}
		// Entries of this level starting with the fan-out directory's name
		// sort right after it and interleave with its objects.
		j := i + 1
		for j < len(items) && strings.HasPrefix(items[j].key, it.key) {
			j++
		}
		run, err := s.fanDirEntries(ldir, it.key, want, prefix)
		if err != nil {
			return err
		}
		run = append(run, items[i+1:j]...)
		sortEntries(run)
		for _, e := range run {
			if err := s.emit(ctx, ldir, e, prefix, fn); err != nil {
				return err
			}
		}
		i = j - 1
	}
	return nil
}

// fanDirEntries returns the entries that the fan-out directory fd of ldir
// contributes to ldir: its objects and, if it also holds anything else, the
// logical directory of the same name (the name "x/3f/y" lives in "x/3f" too).
func (s *Store) fanDirEntries(ldir, fd, want, prefix string) ([]listEntry, error) {
	ents, err := readDir(filepath.Join(s.root, filepath.FromSlash(ldir), fd), prefix)
	if err != nil {
		return nil, err
	}
	var out []listEntry
	isDir := false
	for _, de := range ents {
		n := de.Name()
		switch {
		case store.ValidateName(n) != nil:
		case de.Type().IsRegular() && fanned(n):
			if strings.HasPrefix(n, fd) && strings.HasPrefix(n, want) {
				out = append(out, listEntry{key: n, kind: kindObject, de: de})
			}
		default:
			isDir = true
		}
	}
	if isDir && strings.HasPrefix(fd+"/", want) {
		out = append(out, listEntry{key: fd + "/", kind: kindDir})
	}
	return out, nil
}

func (s *Store) emit(ctx context.Context, ldir string, e listEntry, prefix string, fn func(store.ObjectInfo) error) error {
	name := path.Join(ldir, strings.TrimSuffix(e.key, "/"))
	if e.kind == kindDir {
		return s.listDir(ctx, name, "", prefix, fn)
	}
	fi, err := e.de.Info()
	if err != nil {
		if isNotExist(err) {
			return nil // deleted since the directory was read
		}
		return classify(opMsg("list", prefix), err, false)
	}
	return fn(objectInfo(name, fi))
}

func sortEntries(es []listEntry) {
	slices.SortFunc(es, func(a, b listEntry) int { return strings.Compare(a.key, b.key) })
}

// readDir reads a directory; one that does not exist (any more) is empty.
func readDir(dir, prefix string) ([]fs.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, classify(opMsg("list", prefix), err, false)
	}
	return ents, nil
}
