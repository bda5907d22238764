package nfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/havenbackup/terraform-provider-haven/engine/nas"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func dial(t testing.TB, srv *testparts.NFS, export string) nas.Share {
	t.Helper()
	s, err := Dial(t.Context(), Config{
		Address: srv.Address, Export: export,
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), MachineName: "haven-test",
	})
	if err != nil {
		t.Fatalf("dial %s%s: %v", srv.Address, export, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeFile(t testing.TB, s nas.Share, p string, data []byte) {
	t.Helper()
	ctx := context.Background()
	f, err := s.Create(ctx, p)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if n, err := f.WriteAt(data, 0); err != nil || n != len(data) {
		t.Fatalf("write %s: %d of %d bytes, %v", p, n, len(data), err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

func readFile(t testing.TB, s nas.Share, p string, size int) []byte {
	t.Helper()
	f, err := s.Open(context.Background(), p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	buf := make([]byte, size+100)
	n, err := f.ReadAt(buf, 0)
	if err != io.EOF {
		t.Fatalf("read %s: %d bytes, %v (want io.EOF after the end)", p, n, err)
	}
	return buf[:n]
}

func lstat(t testing.TB, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func byName(t testing.TB, infos []nas.Info) map[string]nas.Info {
	t.Helper()
	m := map[string]nas.Info{}
	for _, in := range infos {
		if _, dup := m[in.Name]; dup {
			t.Fatalf("%s listed twice", in.Name)
		}
		m[in.Name] = in
	}
	return m
}

// A tree written through the share is on the server's disk byte for byte,
// and reads back, with each entry described as the server's files are.
func TestTreeRoundTrip(t *testing.T) {
	srv := testparts.StartNFS(t)
	s := dial(t, srv, srv.Export)
	ctx := t.Context()

	for _, d := range []string{"a", "a/b", "a/b/c", "a"} { // "a" twice: Mkdir is idempotent
		if err := s.Mkdir(ctx, d); err != nil {
			t.Fatalf("mkdir %s: %v", d, err)
		}
	}
	big := randomBytes(3<<20+12345, 1) // more than one 1 MiB WRITE
	writeFile(t, s, "a/b/big", big)
	writeFile(t, s, "a/small", []byte("hello"))
	writeFile(t, s, "a/empty", nil)
	if err := s.Symlink(ctx, "b/big", "a/link"); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(srv.Dir, "a/b/big")); !bytes.Equal(got, big) {
		t.Fatalf("a/b/big on the server: %d bytes, not the %d written", len(got), len(big))
	}
	if got := readFile(t, s, "a/b/big", len(big)); !bytes.Equal(got, big) {
		t.Fatalf("a/b/big read back: %d bytes, differs", len(got))
	}
	if got := readFile(t, s, "a/empty", 0); len(got) != 0 {
		t.Fatalf("a/empty read back %d bytes", len(got))
	}

	// Files laid out on the server read back through the share.
	local := randomBytes(1<<20+1, 2)
	if err := os.WriteFile(filepath.Join(srv.Dir, "a/local"), local, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(srv.Dir, "a/local"), filepath.Join(srv.Dir, "a/local2")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(srv.Dir, "a/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, s, "a/local", len(local)); !bytes.Equal(got, local) {
		t.Fatal("a/local read back differs")
	}
	// A read in the middle, across a block boundary, and one past the end.
	f, err := s.Open(ctx, "a/local")
	if err != nil {
		t.Fatal(err)
	}
	mid := make([]byte, 1000)
	if n, err := f.ReadAt(mid, 1<<20-500); n != 501 || err != io.EOF || !bytes.Equal(mid[:n], local[1<<20-500:]) {
		t.Fatalf("read at the end: %d bytes, %v", n, err)
	}
	if n, err := f.ReadAt(mid, 1000); n != len(mid) || err != nil || !bytes.Equal(mid, local[1000:2000]) {
		t.Fatalf("read in the middle: %d bytes, %v", n, err)
	}
	if n, err := f.ReadAt(mid, 5<<20); n != 0 || err != io.EOF {
		t.Fatalf("read past the end: %d bytes, %v", n, err)
	}
	_ = f.Close()

	list, err := s.ReadDir(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, list)
	want := map[string]string{"b": "dir", "small": "file", "empty": "file", "link": "symlink", "local": "file", "local2": "file", "fifo": "fifo"}
	if len(got) != len(want) {
		t.Fatalf("a lists %v, want %v", slices.Sorted(func(yield func(string) bool) {
			for k := range got {
				if !yield(k) {
					return
				}
			}
		}), want)
	}
	for name, typ := range want {
		in, ok := got[name]
		if !ok || in.Type != typ {
			t.Fatalf("a/%s: %+v, want a %s", name, in, typ)
		}
		st := lstat(t, filepath.Join(srv.Dir, "a", name))
		if in.FileID != st.Ino || in.Nlink != uint32(st.Nlink) || in.UID != st.Uid || in.GID != st.Gid ||
			in.Mode != st.Mode&0o7777 || in.MtimeNs != st.Mtim.Nano() {
			t.Fatalf("a/%s: %+v, the server's file: ino %d nlink %d uid %d gid %d mode %o mtime %d", name, in, st.Ino, st.Nlink, st.Uid, st.Gid, st.Mode&0o7777, st.Mtim.Nano())
		}
		if typ == "file" && in.Size != st.Size {
			t.Fatalf("a/%s: size %d, the server's %d", name, in.Size, st.Size)
		}
	}
	if got["local"].Nlink != 2 || got["link"].Target != "b/big" || got["small"].Size != 5 {
		t.Fatalf("nlink %d, target %q, size %d", got["local"].Nlink, got["link"].Target, got["small"].Size)
	}

	// Stat agrees, and says what is missing.
	if in, err := s.Stat(ctx, "a/link"); err != nil || in.Name != "link" || in.Type != "symlink" || in.Target != "b/big" {
		t.Fatalf("stat a/link: %+v, %v", in, err)
	}
	if in, err := s.Stat(ctx, ""); err != nil || in.Type != "dir" {
		t.Fatalf("stat of the root: %+v, %v", in, err)
	}
	if _, err := s.Stat(ctx, "a/nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat a/nothing: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Open(ctx, "a/nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open a/nothing: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.ReadDir(ctx, "nothing/below"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("readdir nothing/below: %v, want fs.ErrNotExist", err)
	}

	// Create truncates.
	writeFile(t, s, "a/small", []byte("xyz-and-more"))
	writeFile(t, s, "a/small", []byte("xyz"))
	if b, _ := os.ReadFile(filepath.Join(srv.Dir, "a/small")); string(b) != "xyz" {
		t.Fatalf("a/small holds %q, want \"xyz\"", b)
	}

	// Rename replaces.
	if err := s.Rename(ctx, "a/small", "a/b/big"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(srv.Dir, "a/b/big")); string(b) != "xyz" {
		t.Fatalf("a/b/big holds %q after the rename", b)
	}
	if _, err := os.Lstat(filepath.Join(srv.Dir, "a/small")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a/small after the rename: %v", err)
	}
	// A directory renamed: the cached handles of its old path go.
	if err := s.Rename(ctx, "a/b", "a/b2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadDir(ctx, "a/b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("readdir a/b after its rename: %v", err)
	}
	if l, err := s.ReadDir(ctx, "a/b2"); err != nil || len(l) != 2 {
		t.Fatalf("readdir a/b2: %+v, %v", l, err)
	}

	// Remove: files, symlinks, empty directories; missing is fine; a
	// directory with something in it is not removed.
	for _, p := range []string{"a/empty", "a/link", "a/fifo", "a/b2/c", "a/nothing", "nothing/below"} {
		if err := s.Remove(ctx, p); err != nil {
			t.Fatalf("remove %s: %v", p, err)
		}
		if _, err := os.Lstat(filepath.Join(srv.Dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s after its removal: %v", p, err)
		}
	}
	if err := s.Remove(ctx, "a/b2"); err == nil {
		t.Fatal("removing a/b2, which holds big, succeeded")
	}
	if _, err := os.Lstat(filepath.Join(srv.Dir, "a/b2/big")); err != nil {
		t.Fatal(err)
	}
	// Mkdir where a file is fails.
	if err := s.Mkdir(ctx, "a/local"); err == nil {
		t.Fatal("mkdir over the file a/local succeeded")
	}
}

// A directory removed and made again behind a share's back leaves the
// share a stale cached handle, which it drops and looks up afresh.
func TestStaleHandle(t *testing.T) {
	srv := testparts.StartNFS(t)
	a, b := dial(t, srv, srv.Export), dial(t, srv, srv.Export)
	ctx := t.Context()
	if err := a.Mkdir(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, a, "x/old", nil)
	if l, err := b.ReadDir(ctx, "x"); err != nil || len(l) != 1 {
		t.Fatalf("x: %+v, %v", l, err)
	}
	for _, p := range []string{"x/old", "x"} {
		if err := a.Remove(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Mkdir(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, a, "x/new", []byte("new"))
	l, err := b.ReadDir(ctx, "x")
	if err != nil || len(l) != 1 || l[0].Name != "new" {
		t.Fatalf("x made again, listed by the other share: %+v, %v", l, err)
	}
	if got := readFile(t, b, "x/new", 3); string(got) != "new" {
		t.Fatalf("x/new: %q", got)
	}
}

// Large directories take several READDIRPLUS calls.
func TestReadDirLarge(t *testing.T) {
	srv := testparts.StartNFS(t)
	const n = 1500
	want := map[string]bool{}
	for i := range n {
		name := fmt.Sprintf("file-with-a-long-name-%05d", i)
		want[name] = true
		if err := os.WriteFile(filepath.Join(srv.Dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := dial(t, srv, srv.Export)
	list, err := s.ReadDir(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, list)
	if len(got) != n {
		t.Fatalf("%d entries listed, want %d", len(got), n)
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Fatalf("%s not listed", name)
		}
	}
}

// Modes with the set-id and sticky bits go to the server and come back.
func TestModes(t *testing.T) {
	srv := testparts.StartNFS(t)
	s := dial(t, srv, srv.Export)
	ctx := t.Context()
	cases := []struct {
		path string
		dir  bool
		mode uint32
	}{
		{"tmp", true, 0o1777},
		{"setgid-dir", true, 0o2755},
		{"setuid", false, 0o4755},
		{"setgid", false, 0o2755},
		{"all", false, 0o7777},
		{"private", false, 0o600},
		{"none", false, 0},
	}
	for _, c := range cases {
		if c.dir {
			if err := s.Mkdir(ctx, c.path); err != nil {
				t.Fatal(err)
			}
		} else {
			writeFile(t, s, c.path, []byte(c.path))
		}
		if err := s.SetMeta(ctx, c.path, nas.Meta{Mode: c.mode, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}); err != nil {
			t.Fatalf("setmeta %s %o: %v", c.path, c.mode, err)
		}
	}
	list, err := s.ReadDir(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, list)
	for _, c := range cases {
		if m := lstat(t, filepath.Join(srv.Dir, c.path)).Mode & 0o7777; m != c.mode {
			t.Errorf("%s on the server: mode %o, want %o", c.path, m, c.mode)
		}
		if got[c.path].Mode != c.mode {
			t.Errorf("%s listed with mode %o, want %o", c.path, got[c.path].Mode, c.mode)
		}
		if in, err := s.Stat(ctx, c.path); err != nil || in.Mode != c.mode {
			t.Errorf("stat %s: mode %o (%v), want %o", c.path, in.Mode, err, c.mode)
		}
	}
}

// Times go to the server to the nanosecond and come back.
func TestTimes(t *testing.T) {
	srv := testparts.StartNFS(t)
	s := dial(t, srv, srv.Export)
	ctx := t.Context()
	if err := s.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, s, "d/f", []byte("data"))
	if err := s.Symlink(ctx, "f", "d/l"); err != nil {
		t.Fatal(err)
	}
	const mtime, atime = int64(1600000000_123456789), int64(1500000000_987654321)
	for i, p := range []string{"d/f", "d/l", "d"} {
		m := nas.Meta{Mode: 0o640, MtimeNs: mtime + int64(i), AtimeNs: atime + int64(i), UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
		switch p {
		case "d/l":
			m.Type = nas.TypeSymlink
		case "d":
			m.Mode = 0o750 // searchable, for the checks below as an ordinary user
		}
		if err := s.SetMeta(ctx, p, m); err != nil {
			t.Fatalf("setmeta %s: %v", p, err)
		}
	}
	for i, p := range []string{"d/f", "d/l", "d"} {
		st := lstat(t, filepath.Join(srv.Dir, p))
		if st.Mtim.Nano() != mtime+int64(i) || st.Atim.Nano() != atime+int64(i) {
			t.Errorf("%s on the server: mtime %d atime %d, want %d and %d", p, st.Mtim.Nano(), st.Atim.Nano(), mtime+int64(i), atime+int64(i))
		}
		in, err := s.Stat(ctx, p)
		if err != nil || in.MtimeNs != mtime+int64(i) {
			t.Errorf("stat %s: mtime %d (%v), want %d", p, in.MtimeNs, err, mtime+int64(i))
		}
	}
	// The symlink's own mode is left alone (and the file it points to too).
	if m := lstat(t, filepath.Join(srv.Dir, "d/f")).Mode & 0o7777; m != 0o640 {
		t.Errorf("d/f: mode %o", m)
	}
	list, err := s.ReadDir(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	if got := byName(t, list); got["f"].MtimeNs != mtime || got["l"].MtimeNs != mtime+1 {
		t.Errorf("listed mtimes %d and %d, want %d and %d", got["f"].MtimeNs, got["l"].MtimeNs, mtime, mtime+1)
	}
	// Times NFSv3 cannot hold are an error, and the mode is set anyway.
	err = s.SetMeta(ctx, "d/f", nas.Meta{Mode: 0o600, MtimeNs: -1e9, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	if err == nil || !strings.Contains(err.Error(), "NFSv3") {
		t.Errorf("setting a time before 1970: %v", err)
	}
	if m := lstat(t, filepath.Join(srv.Dir, "d/f")).Mode & 0o7777; m != 0o600 {
		t.Errorf("d/f: mode %o after a refused time, want 600", m)
	}
}

// The owner changes as root; as anyone else the server refuses it, and the
// error says so while the mode and times are set all the same.
func TestOwner(t *testing.T) {
	srv := testparts.StartNFS(t)
	s := dial(t, srv, srv.Export)
	ctx := t.Context()
	writeFile(t, s, "f", []byte("data"))
	if err := s.Symlink(ctx, "f", "l"); err != nil {
		t.Fatal(err)
	}
	const mtime = int64(1700000000_000000001)
	if os.Getuid() == 0 {
		// Set-id bits survive the chown (which clears them) because the
		// owner is set first.
		if err := s.SetMeta(ctx, "f", nas.Meta{Mode: 0o6755, UID: 1234, GID: 2345, MtimeNs: mtime}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMeta(ctx, "l", nas.Meta{Type: nas.TypeSymlink, UID: 3456, GID: 4567, MtimeNs: mtime}); err != nil {
			t.Fatal(err)
		}
		st := lstat(t, filepath.Join(srv.Dir, "f"))
		if st.Uid != 1234 || st.Gid != 2345 || st.Mode&0o7777 != 0o6755 || st.Mtim.Nano() != mtime {
			t.Fatalf("f on the server: %d:%d mode %o mtime %d", st.Uid, st.Gid, st.Mode&0o7777, st.Mtim.Nano())
		}
		if st := lstat(t, filepath.Join(srv.Dir, "l")); st.Uid != 3456 || st.Gid != 4567 {
			t.Fatalf("l on the server: %d:%d (its target's owner changed instead?)", st.Uid, st.Gid)
		}
		in, err := s.Stat(ctx, "f")
		if err != nil || in.UID != 1234 || in.GID != 2345 || in.Mode != 0o6755 {
			t.Fatalf("stat f: %+v, %v", in, err)
		}
		return
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	err := s.SetMeta(ctx, "f", nas.Meta{Mode: 0o751, UID: uid + 1, GID: gid, MtimeNs: mtime})
	if !errors.Is(err, fs.ErrPermission) || !errors.Is(err, ErrOwner) || nas.IsConnectionLost(err) {
		t.Fatalf("chown as uid %d: %v, want the owner refused (fs.ErrPermission and ErrOwner)", uid, err)
	}
	st := lstat(t, filepath.Join(srv.Dir, "f"))
	if st.Uid != uid || st.Mode&0o7777 != 0o751 || st.Mtim.Nano() != mtime {
		t.Fatalf("f on the server: uid %d mode %o mtime %d; the mode and time must be set despite the owner", st.Uid, st.Mode&0o7777, st.Mtim.Nano())
	}
	// The owner it has already is no change to ask for.
	if err := s.SetMeta(ctx, "f", nas.Meta{Mode: 0o644, UID: uid, GID: gid}); err != nil {
		t.Fatalf("setmeta with the present owner: %v", err)
	}
}

func TestSymlinks(t *testing.T) {
	srv := testparts.StartNFS(t)
	s := dial(t, srv, srv.Export)
	ctx := t.Context()
	targets := map[string]string{
		"rel":      "../elsewhere/file",
		"abs":      "/etc/passwd",
		"dangling": "does-not-exist",
		"spaces":   "a name with spaces and ünïcode",
	}
	for name, target := range targets {
		if err := s.Symlink(ctx, target, name); err != nil {
			t.Fatalf("symlink %s: %v", name, err)
		}
	}
	list, err := s.ReadDir(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, list)
	for name, target := range targets {
		if local, err := os.Readlink(filepath.Join(srv.Dir, name)); err != nil || local != target {
			t.Errorf("%s on the server: %q (%v), want %q", name, local, err, target)
		}
		if got[name].Type != nas.TypeSymlink || got[name].Target != target || got[name].Size != int64(len(target)) {
			t.Errorf("%s listed as %+v, want a symlink to %q", name, got[name], target)
		}
	}
	writeFile(t, s, "file", nil)
	if err := s.Symlink(ctx, "x", "file"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("symlink over a file: %v, want fs.ErrExist", err)
	}
}

// A second export is a second share.
func TestOtherExport(t *testing.T) {
	srv := testparts.StartNFS(t)
	if err := os.WriteFile(filepath.Join(srv.OtherDir, "only-here"), []byte("other"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := dial(t, srv, srv.OtherExport)
	data := dial(t, srv, srv.Export)
	if got := readFile(t, other, "only-here", 5); string(got) != "other" {
		t.Fatalf("only-here on %s: %q", srv.OtherExport, got)
	}
	if _, err := data.Stat(t.Context(), "only-here"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("only-here on %s: %v, want fs.ErrNotExist", srv.Export, err)
	}
	_, err := Dial(t.Context(), Config{Address: srv.Address, Export: "/nope"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("mounting /nope: %v, want fs.ErrNotExist", err)
	}
	free, err := data.Free(t.Context())
	var st unix.Statfs_t
	if serr := unix.Statfs(srv.Dir, &st); serr != nil {
		t.Fatal(serr)
	}
	avail := st.Bavail * uint64(st.Bsize)
	if err != nil || free == 0 || free > avail+64<<20 || free+64<<20 < avail {
		t.Fatalf("free: %d (%v); statfs says %d", free, err, avail)
	}
	if ok, why := data.SACL(); ok || why == "" || data.Protocol() != nas.NFS {
		t.Fatalf("SACL() = %v, %q; protocol %q", ok, why, data.Protocol())
	}
}

// A server that goes away mid-read: the read fails with
// nas.ErrConnectionLost, the share stays broken, and once the server is
// back a new share reads the file whole.
func TestConnectionLost(t *testing.T) {
	srv := testparts.StartNFS(t)
	data := randomBytes(8<<20, 3)
	if err := os.WriteFile(filepath.Join(srv.Dir, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := dial(t, srv, srv.Export)
	ctx := t.Context()
	f, err := s.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	var readErr error
	reads := 0
	for off := int64(0); off < int64(len(data)); off += int64(len(buf)) {
		if reads == 2 {
			srv.Stop()
		}
		if _, readErr = f.ReadAt(buf, off); readErr != nil {
			break
		}
		reads++
	}
	if reads != 2 || !nas.IsConnectionLost(readErr) {
		t.Fatalf("after %d reads: %v, want nas.ErrConnectionLost on the third", reads, readErr)
	}
	// The share stays broken, whatever is asked of it.
	if _, err := s.Stat(ctx, "big"); !nas.IsConnectionLost(err) {
		t.Fatalf("stat on the broken share: %v", err)
	}
	// While the server is away, dialing fails as a lost connection too (so
	// a restore waits and tries again).
	if _, err := Dial(ctx, Config{Address: srv.Address, Export: srv.Export}); !nas.IsConnectionLost(err) {
		t.Fatalf("dial while the server is down: %v", err)
	}
	srv.Start()
	s2 := dial(t, srv, srv.Export)
	if got := readFile(t, s2, "big", len(data)); !bytes.Equal(got, data) {
		t.Fatal("big read after the restart differs")
	}
	// Writes on a new share work, and the handles of before the restart
	// still do on the server (as a real server's survive a reboot).
	writeFile(t, s2, "after", []byte("after"))
	if b, _ := os.ReadFile(filepath.Join(srv.Dir, "after")); string(b) != "after" {
		t.Fatalf("after: %q", b)
	}
}

// A server that stops answering without closing the connection is a lost
// connection once the timeout passes.
func TestTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }() // reads, never answers
		}
	}()
	start := time.Now()
	_, err = Dial(t.Context(), Config{Address: ln.Addr().String(), Export: "/x", Timeout: 300 * time.Millisecond})
	if !nas.IsConnectionLost(err) || !strings.Contains(err.Error(), "no reply") {
		t.Fatalf("dial of a silent server: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("gave up after %s", d)
	}
}

// A write verifier that changes between WRITEs (or at COMMIT) means the
// server restarted and may have lost them: the file counts as lost.
func TestVerifierChange(t *testing.T) {
	f := &file{path: "f"}
	if err := f.sameVerifier([8]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := f.sameVerifier([8]byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := f.sameVerifier([8]byte{2}); !nas.IsConnectionLost(err) {
		t.Fatalf("a changed verifier: %v", err)
	}
}

// Eight workers write, list and read files at once through one share.
func TestConcurrent(t *testing.T) {
	srv := testparts.StartNFS(t)
	s := dial(t, srv, srv.Export)
	ctx := t.Context()
	if err := s.Mkdir(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				data := randomBytes(2<<20+w*1000, uint64(10+w))
				p := fmt.Sprintf("w/f%d", w)
				f, err := s.Create(ctx, p)
				if err != nil {
					return err
				}
				// Pieces out of order, as a restore's windows may come.
				const piece = 256 << 10
				for off := (len(data) / piece) * piece; off >= 0; off -= piece {
					end := min(off+piece, len(data))
					if _, err := f.WriteAt(data[off:end], int64(off)); err != nil {
						return err
					}
				}
				if err := f.Close(); err != nil {
					return err
				}
				if err := s.SetMeta(ctx, p, nas.Meta{Mode: 0o640 | uint32(w), UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), MtimeNs: int64(w + 1)}); err != nil {
					return err
				}
				if _, err := s.ReadDir(ctx, "w"); err != nil {
					return err
				}
				r, err := s.Open(ctx, p)
				if err != nil {
					return err
				}
				defer r.Close()
				got := make([]byte, len(data))
				if n, err := r.ReadAt(got, 0); n != len(data) || (err != nil && err != io.EOF) {
					return fmt.Errorf("%s: read %d bytes, %v", p, n, err)
				}
				if !bytes.Equal(got, data) {
					return fmt.Errorf("%s read back differs", p)
				}
				if local, _ := os.ReadFile(filepath.Join(srv.Dir, p)); !bytes.Equal(local, data) {
					return fmt.Errorf("%s on the server differs", p)
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list, err := s.ReadDir(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range list {
		var w int
		fmt.Sscanf(in.Name, "f%d", &w)
		if in.Mode != 0o640|uint32(w) || in.MtimeNs != int64(w+1) {
			t.Errorf("%s: mode %o mtime %d", in.Name, in.Mode, in.MtimeNs)
		}
	}
}

// ReservedPort connects from ports below 1024, which only root (or
// CAP_NET_BIND_SERVICE) may bind.
func TestReservedPort(t *testing.T) {
	srv := testparts.StartNFS(t)
	before := len(srv.Clients())
	s, err := Dial(t.Context(), Config{Address: srv.Address, Export: srv.Export, ReservedPort: true})
	if os.Getuid() != 0 {
		if err == nil || !strings.Contains(err.Error(), "CAP_NET_BIND_SERVICE") {
			t.Fatalf("a reserved port as uid %d: %v, want the capability named", os.Getuid(), err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clients := srv.Clients()[before:]
	if len(clients) < 2 {
		t.Fatalf("%d connections", len(clients))
	}
	for _, a := range clients {
		if p := a.(*net.TCPAddr).Port; p >= 1024 {
			t.Fatalf("a connection from port %d", p)
		}
	}
	if _, err := s.Stat(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkParallelRead reads 8 files of 4 MiB at once, over 1 and 4
// connections.
func BenchmarkParallelRead(b *testing.B) {
	srv := testparts.StartNFS(b)
	for i := range 8 {
		if err := os.WriteFile(filepath.Join(srv.Dir, fmt.Sprint(i)), randomBytes(4<<20, uint64(i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			s, err := Dial(b.Context(), Config{Address: srv.Address, Export: srv.Export, Connections: conns})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetBytes(8 * 4 << 20)
			for b.Loop() {
				var wg sync.WaitGroup
				for i := range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						f, err := s.Open(context.Background(), fmt.Sprint(i))
						if err != nil {
							b.Error(err)
							return
						}
						buf := make([]byte, 1<<20)
						for off := int64(0); off < 4<<20; off += 1 << 20 {
							if _, err := f.ReadAt(buf, off); err != nil && err != io.EOF {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
			}
		})
	}
}
