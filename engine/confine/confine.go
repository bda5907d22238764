// Package confine keeps file system access inside named directory trees
// and out of others, whatever symlinks and ".." say: a path is judged by
// where it really leads, and a denied file is recognized by its identity
// (device and inode), so a symlink, bind mount or hard link to it is
// refused as well.
package confine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrOutside is wrapped by every refusal.
var ErrOutside = errors.New("outside the allowed roots")

// Roots are the trees access is confined to (Allow) and the trees it never
// reaches (Deny), which win over Allow. The zero value allows nothing.
type Roots struct {
	allow []string // resolved
	deny  []string // resolved
	ids   map[fileID]string
	// hint is appended to refusals: how an administrator widens the roots.
	hint string
}

type fileID struct{ dev, ino uint64 }

// New resolves the roots (they need not exist yet: the part that exists is
// resolved). hint says in refusals where the roots come from (a flag, say).
func New(allow, deny []string, hint string) (*Roots, error) {
	r := &Roots{ids: map[fileID]string{}, hint: hint}
	for _, group := range []struct {
		in  []string
		out *[]string
	}{{allow, &r.allow}, {deny, &r.deny}} {
		for _, p := range group.in {
			if p == "" {
				continue
			}
			if !filepath.IsAbs(p) {
				return nil, fmt.Errorf("%q is not an absolute path", p)
			}
			rp, err := Resolve(p)
			if err != nil {
				return nil, err
			}
			*group.out = append(*group.out, rp)
		}
	}
	for _, d := range r.deny {
		if info, err := os.Stat(d); err == nil {
			if id, ok := idOf(info); ok {
				r.ids[id] = d
			}
		}
	}
	return r, nil
}

// SplitList splits a comma-separated list of roots (a flag's value),
// dropping empty items.
func SplitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Resolve cleans p and resolves the symlinks of its longest existing
// prefix; the part that does not exist yet is kept as written.
func Resolve(p string) (string, error) {
	p = filepath.Clean(p)
	existing, rest := p, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", err
	}
	return filepath.Join(real, rest), nil
}

// within reports whether p is root or below it.
func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

// Check refuses a path that leads outside the allowed roots or into a
// denied tree. Every symlink on the way is followed, the last one too.
func (r *Roots) Check(p string) error {
	rp, err := Resolve(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return r.check(p, rp)
}

// CheckEntry is Check for a path about to be replaced or created: its
// directory is resolved, its last element is not (the entry itself is
// removed and written anew, never followed).
func (r *Roots) CheckEntry(p string) error {
	p = filepath.Clean(p)
	dir, err := Resolve(filepath.Dir(p))
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return r.check(p, filepath.Join(dir, filepath.Base(p)))
}

func (r *Roots) check(p, rp string) error {
	for _, d := range r.deny {
		if within(rp, d) {
			return fmt.Errorf("%s leads into %s, which Haven never reads or writes: %w", p, d, ErrOutside)
		}
	}
	if info, err := os.Stat(rp); err == nil {
		if id, ok := idOf(info); ok && r.ids[id] != "" {
			return fmt.Errorf("%s is %s, which Haven never reads or writes: %w", p, r.ids[id], ErrOutside)
		}
	}
	for _, a := range r.allow {
		if within(rp, a) {
			return nil
		}
	}
	if len(r.allow) == 0 {
		return fmt.Errorf("%s: no roots are allowed%s: %w", p, r.hint, ErrOutside)
	}
	return fmt.Errorf("%s is not under %s%s: %w", p, strings.Join(r.allow, ", "), r.hint, ErrOutside)
}

// Above reports whether an allowed root lies strictly below p (p is one of
// the directories a walk or a restore passes on its way to a root).
func (r *Roots) Above(p string) bool {
	rp, err := Resolve(p)
	if err != nil {
		return false
	}
	for _, a := range r.allow {
		if a != rp && within(a, rp) {
			return true
		}
	}
	return false
}

// Denied reports whether info (from lstat or stat) is one of the denied
// files or directories themselves, under whatever name it was reached.
func (r *Roots) Denied(info fs.FileInfo) bool {
	id, ok := idOf(info)
	return ok && r.ids[id] != ""
}
