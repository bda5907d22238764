//go:build linux || darwin

package pgembed

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// runUser is the unprivileged account postgres runs as when haven is root;
// initdb and postgres both refuse to run as root.
type runUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32 // supplementary groups, so dropping root keeps the user's own memberships
}

// resolveRunUser picks the account: name if given, else "postgres" (the
// distribution packages' account), else "nobody".
func resolveRunUser(name string) (*runUser, error) {
	var u *user.User
	var err error
	if name != "" {
		u, err = user.Lookup(name)
		if err != nil {
			if _, numErr := strconv.Atoi(name); numErr == nil {
				u, err = user.LookupId(name)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("HAVEN_PG_USER=%s: %w", name, err)
		}
	} else {
		for _, n := range []string{"postgres", "nobody"} {
			if u, err = user.Lookup(n); err == nil {
				break
			}
		}
		if err != nil {
			return nil, errors.New("running as root, but there is neither a postgres nor a nobody user to run PostgreSQL as: create one or set HAVEN_PG_USER")
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s has non-numeric uid %q", u.Username, u.Uid)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s has non-numeric gid %q", u.Username, u.Gid)
	}
	if uid == 0 {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root (user %s has uid 0): set HAVEN_PG_USER to an unprivileged user", u.Username)
	}
	ru := &runUser{name: u.Username, uid: uint32(uid), gid: uint32(gid)}
	ids, _ := u.GroupIds()
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			ru.groups = append(ru.groups, uint32(g))
		}
	}
	return ru, nil
}

func (u *runUser) inGroup(gid uint32) bool {
	if gid == u.gid {
		return true
	}
	for _, g := range u.groups {
		if g == gid {
			return true
		}
	}
	return false
}

// ensureTraversable makes every ancestor of dir searchable by u. Root can
// create the cluster anywhere, e.g. under /root (0700) or a test's temp dir
// (0700), but postgres running as u must be able to reach it. Only o+x is
// added: that lets u pass through without being able to list anything.
func ensureTraversable(dir string, u *runUser, log *slog.Logger) error {
	paths := ancestors(dir)
	// A symlinked ancestor means the kernel also walks the link's target.
	if resolved, err := filepath.EvalSymlinks(dir); err == nil && resolved != dir {
		paths = append(paths, ancestors(resolved)...)
	}
	seen := map[string]bool{}
	for _, p := range paths {
		if seen[p] {
			continue
		}
		seen[p] = true
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		perm := fi.Mode().Perm()
		// Permission classes are exclusive: the owner is judged by the
		// owner bits only, a group member by the group bits only.
		switch {
		case st.Uid == u.uid:
			if perm&0o100 == 0 {
				return fmt.Errorf("directory %s is owned by %s but not searchable by it: chmod u+x it", p, u.name)
			}
			continue
		case u.inGroup(st.Gid):
			if perm&0o010 == 0 {
				return fmt.Errorf("directory %s belongs to a group of %s but is not group-searchable: chmod g+x it", p, u.name)
			}
			continue
		case perm&0o001 != 0:
			continue
		}
		mode := fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) | 0o001
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("make %s traversable for user %s: %w", p, u.name, err)
		}
		log.Warn("added execute permission for others on a directory so PostgreSQL's user can reach its cluster",
			"dir", p, "old_mode", fmt.Sprintf("%04o", perm), "new_mode", fmt.Sprintf("%04o", mode.Perm()), "user", u.name)
	}
	return nil
}

// ancestors lists the directories above dir, outermost first.
func ancestors(dir string) []string {
	var out []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		out = append([]string{p}, out...)
		if p == filepath.Dir(p) {
			return out
		}
	}
}

// chownTree gives the whole cluster directory to u. It runs on every start, so
// a cluster created under another HAVEN_PG_USER, or files root created, are
// brought back in line.
func chownTree(dir string, u *runUser) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// A running orphan may delete files under us.
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == u.uid && st.Gid == u.gid {
			return nil
		}
		if err := os.Lchown(p, int(u.uid), int(u.gid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	})
}

func currentUserName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}
