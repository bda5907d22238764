package smb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	smb2 "github.com/cloudsoda/go-smb2"
	"github.com/cloudsoda/sddl"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"

	"github.com/havenbackup/terraform-provider-haven/engine/nas"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func config(sb *testparts.Samba, share string) Config {
	return Config{Address: sb.Address, Share: share, User: sb.User, Password: sb.Password, Domain: sb.Workgroup}
}

func dial(t testing.TB, sb *testparts.Samba, share string) nas.Share {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Dial(ctx, config(sb, share))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func writeFile(t testing.TB, s nas.Share, p string, data []byte) {
	t.Helper()
	f, err := s.Create(context.Background(), p)
	if err != nil {
		t.Fatalf("Create %s: %v", p, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatalf("WriteAt %s: %v", p, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("Close %s: %v", p, err)
	}
}

func readFile(t testing.TB, s nas.Share, p string) []byte {
	t.Helper()
	f, err := s.Open(context.Background(), p)
	if err != nil {
		t.Fatalf("Open %s: %v", p, err)
	}
	defer f.Close()
	var out []byte
	buf := make([]byte, 300<<10)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		out = append(out, buf[:n]...)
		off += int64(n)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("ReadAt %s at %d: %v", p, off, err)
		}
	}
}

func stat(t testing.TB, s nas.Share, p string) nas.Info {
	t.Helper()
	i, err := s.Stat(context.Background(), p)
	if err != nil {
		t.Fatalf("Stat %s: %v", p, err)
	}
	return i
}

func entry(t testing.TB, s nas.Share, dir, name string) nas.Info {
	t.Helper()
	infos, err := s.ReadDir(context.Background(), dir)
	if err != nil {
		t.Fatalf("ReadDir %q: %v", dir, err)
	}
	for _, i := range infos {
		if i.Name == name {
			return i
		}
	}
	t.Fatalf("ReadDir %q has no %s", dir, name)
	return nas.Info{}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ seed ^ byte(i>>13)
	}
	return b
}

// A tree written through the share reads back through it and lands on the
// server's disk; ReadDir describes every entry with its type, size, times,
// file id and descriptor.
func TestTreeRoundTrip(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	if s.Protocol() != nas.SMB {
		t.Fatalf("Protocol() = %q", s.Protocol())
	}

	for _, d := range []string{"a", "a/b", "a"} { // the second "a" exists already
		if err := s.Mkdir(ctx, d); err != nil {
			t.Fatalf("Mkdir %s: %v", d, err)
		}
	}
	big := pattern(3<<20+12345, 1) // over go-smb2's 1 MiB per request
	files := map[string][]byte{"top.txt": []byte("top"), "a/empty": nil, "a/b/big.bin": big}
	for p, data := range files {
		writeFile(t, s, p, data)
	}
	if err := s.Mkdir(ctx, "top.txt"); err == nil {
		t.Fatalf("Mkdir over a file succeeded")
	}

	root, err := s.ReadDir(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range root {
		names = append(names, i.Name+":"+i.Type)
	}
	slices.Sort(names)
	if want := []string{"a:dir", "top.txt:file"}; !slices.Equal(names, want) {
		t.Fatalf("ReadDir root = %v, want %v", names, want)
	}
	if r := stat(t, s, ""); r.Name != "" || r.Type != nas.TypeDir || r.SD == nil || r.FileID == 0 {
		t.Errorf("Stat of the root = %+v", r)
	}
	ids := map[uint64]string{}
	for dir, want := range map[string]map[string]int64{"": {"a": 0, "top.txt": 3}, "a": {"b": 0, "empty": 0}, "a/b": {"big.bin": int64(len(big))}} {
		infos, err := s.ReadDir(ctx, dir)
		if err != nil {
			t.Fatalf("ReadDir %q: %v", dir, err)
		}
		if len(infos) != len(want) {
			t.Fatalf("ReadDir %q = %d entries, want %d", dir, len(infos), len(want))
		}
		for _, i := range infos {
			size, ok := want[i.Name]
			if !ok || i.Size != size {
				t.Errorf("ReadDir %q: %s size %d, want %d (listed: %v)", dir, i.Name, i.Size, size, ok)
			}
			if i.MtimeNs == 0 || i.CtimeNs == 0 || i.AtimeNs == 0 || i.BtimeNs == 0 {
				t.Errorf("%s/%s: a time is 0: %+v", dir, i.Name, i)
			}
			if d := time.Since(time.Unix(0, i.MtimeNs)); d < 0 || d > time.Hour {
				t.Errorf("%s/%s: write time %v is not about now", dir, i.Name, time.Unix(0, i.MtimeNs))
			}
			if i.FileID == 0 || ids[i.FileID] != "" {
				t.Errorf("%s/%s: file id %d is 0 or also %s's", dir, i.Name, i.FileID, ids[i.FileID])
			}
			ids[i.FileID] = i.Name
			if (i.Type == nas.TypeDir) != (i.Attrs&nas.AttrDirectory != 0) {
				t.Errorf("%s/%s: type %s, attributes %#x", dir, i.Name, i.Type, i.Attrs)
			}
			if sd := partsOf(t, i.SD); sd.owner != sb.UserSID || sd.dacl == "" {
				t.Errorf("%s/%s: descriptor %+v, want owner %s and a DACL", dir, i.Name, sd, sb.UserSID)
			}
			// Stat says what ReadDir said.
			st := stat(t, s, filepath.ToSlash(filepath.Join(dir, i.Name)))
			if st.Name != i.Name || st.Type != i.Type || st.Size != i.Size || st.FileID != i.FileID || st.MtimeNs != i.MtimeNs || st.BtimeNs != i.BtimeNs || st.Attrs != i.Attrs || !bytes.Equal(st.SD, i.SD) {
				t.Errorf("Stat %s/%s = %+v, ReadDir said %+v", dir, i.Name, st, i)
			}
		}
	}

	for p, data := range files {
		if got := readFile(t, s, p); !bytes.Equal(got, data) {
			t.Errorf("%s read back %d bytes, wrote %d", p, len(got), len(data))
		}
		local, err := os.ReadFile(filepath.Join(sb.Dir(testparts.SambaShareData), p))
		if err != nil || !bytes.Equal(local, data) {
			t.Errorf("%s on the server's disk: %d bytes, %v; wrote %d", p, len(local), err, len(data))
		}
	}

	// ReadAt past and at the end says io.EOF.
	f, err := s.Open(ctx, "top.txt")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, 1); n != 2 || err != io.EOF || string(buf[:n]) != "op" {
		t.Errorf("ReadAt over the end = %d, %v (%q), want 2, io.EOF", n, err, buf[:n])
	}
	if n, err := f.ReadAt(buf, 3); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v, want 0, io.EOF", n, err)
	}
	f.Close()

	// Create truncates.
	writeFile(t, s, "top.txt", []byte("x"))
	if got := readFile(t, s, "top.txt"); string(got) != "x" {
		t.Errorf("after Create over it: %q", got)
	}

	// Missing entries are fs.ErrNotExist.
	for _, p := range []string{"missing", "a/missing", "missing-dir/x"} {
		if _, err := s.Stat(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Stat %s: %v, want fs.ErrNotExist", p, err)
		}
		if _, err := s.Open(ctx, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open %s: %v, want fs.ErrNotExist", p, err)
		}
		if err := s.Remove(ctx, p); err != nil {
			t.Errorf("Remove of missing %s: %v", p, err)
		}
	}
	if _, err := s.ReadDir(ctx, "missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadDir missing: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Open(ctx, "a"); err == nil {
		t.Errorf("Open of a directory succeeded")
	}

	// Rename replaces the file at its target.
	writeFile(t, s, "a/from", []byte("new"))
	writeFile(t, s, "a/to", []byte("old content"))
	if err := s.Rename(ctx, "a/from", "a/to"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	if got := readFile(t, s, "a/to"); string(got) != "new" {
		t.Errorf("after Rename, a/to = %q", got)
	}
	if _, err := s.Stat(ctx, "a/from"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a/from after Rename: %v", err)
	}

	// Remove: a file, then again, then an empty directory.
	for _, p := range []string{"a/to", "a/to", "a/empty", "a/b/big.bin", "a/b"} {
		if err := s.Remove(ctx, p); err != nil {
			t.Fatalf("Remove %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(sb.Dir(testparts.SambaShareData), "a", "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a/b still on disk: %v", err)
	}
	if err := s.Remove(ctx, "a"); err != nil {
		t.Errorf("Remove of the emptied a: %v", err)
	}

	// Free is the file system's available space, as the server sees it.
	free, err := s.Free(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(sb.Dir(testparts.SambaShareData), &st); err != nil {
		t.Fatal(err)
	}
	local := st.Bavail * uint64(st.Bsize)
	if free == 0 || free > local+local/20+64<<20 || free < local-local/20-64<<20 {
		t.Errorf("Free = %d, the file system has %d available", free, local)
	}
}

// Each kept attribute is set by SetMeta and read back by Stat and ReadDir;
// SetMeta without it clears it again.
func TestAttributes(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	// Samba stores read-only, hidden, system and archive only
	// (SAMBA_ATTRIBUTES_MASK): it drops not-content-indexed.
	const sambaKeeps = nas.AttrReadOnly | nas.AttrHidden | nas.AttrSystem | nas.AttrArchive
	cases := []struct {
		name  string
		attrs uint32
	}{
		{"readonly", nas.AttrReadOnly},
		{"hidden", nas.AttrHidden},
		{"system", nas.AttrSystem},
		{"archive", nas.AttrArchive},
		{"notindexed", nas.AttrNotContentIndexed},
		{"all", nas.AttrsKept},
	}
	for _, c := range cases {
		for _, kind := range []string{nas.TypeFile, nas.TypeDir} {
			p := c.name + "-" + kind
			if kind == nas.TypeDir {
				if err := s.Mkdir(ctx, p); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, s, p, []byte(p))
			}
			// Start from none of them (a new file is archive).
			if err := s.SetMeta(ctx, p, nas.Meta{Type: kind}); err != nil {
				t.Fatalf("SetMeta %s none: %v", p, err)
			}
			if got := stat(t, s, p).Attrs & nas.AttrsKept; got != 0 {
				t.Fatalf("%s: attributes %#x after clearing", p, got)
			}
			if err := s.SetMeta(ctx, p, nas.Meta{Type: kind, Attrs: c.attrs}); err != nil {
				t.Fatalf("SetMeta %s %#x: %v", p, c.attrs, err)
			}
			want := c.attrs & sambaKeeps
			if got := stat(t, s, p).Attrs & nas.AttrsKept; got != want {
				t.Errorf("%s: Stat attributes %#x, want %#x", p, got, want)
			}
			if got := entry(t, s, "", p).Attrs & nas.AttrsKept; got != want {
				t.Errorf("%s: ReadDir attributes %#x, want %#x", p, got, want)
			}
			if got := stat(t, s, p).Type; got != kind {
				t.Errorf("%s: type %s after SetMeta", p, got)
			}
			// Only kept attributes are set: the directory bit of a file
			// is not asked for (the server would refuse it).
			if err := s.SetMeta(ctx, p, nas.Meta{Type: kind, Attrs: c.attrs | nas.AttrDirectory | 0x400}); err != nil {
				t.Errorf("SetMeta %s with unkept attributes: %v", p, err)
			}
			if err := s.SetMeta(ctx, p, nas.Meta{Type: kind}); err != nil {
				t.Fatal(err)
			}
			if got := stat(t, s, p).Attrs & nas.AttrsKept; got != 0 {
				t.Errorf("%s: attributes %#x after clearing them", p, got)
			}
		}
	}

	// A read-only file can be replaced (Create), renamed onto and
	// removed.
	writeFile(t, s, "ro", []byte("old"))
	if err := s.SetMeta(ctx, "ro", nas.Meta{Attrs: nas.AttrReadOnly}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, s, "ro", []byte("replaced"))
	if got := readFile(t, s, "ro"); string(got) != "replaced" {
		t.Errorf("read-only file after Create: %q", got)
	}
	_ = s.SetMeta(ctx, "ro", nas.Meta{Attrs: nas.AttrReadOnly})
	writeFile(t, s, "ro-new", []byte("renamed"))
	if err := s.Rename(ctx, "ro-new", "ro"); err != nil {
		t.Errorf("Rename onto a read-only file: %v", err)
	} else if got := readFile(t, s, "ro"); string(got) != "renamed" {
		t.Errorf("after Rename onto read-only: %q", got)
	}
	_ = s.SetMeta(ctx, "ro", nas.Meta{Attrs: nas.AttrReadOnly})
	if err := s.Remove(ctx, "ro"); err != nil {
		t.Errorf("Remove of a read-only file: %v", err)
	}
	if _, err := s.Stat(ctx, "ro"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("read-only file after Remove: %v", err)
	}
}

// Creation, write and access times set by SetMeta read back to the 100 ns
// of a FILETIME, on files, read-only files and directories; times left 0
// are left alone.
func TestTimes(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	btime := time.Date(2001, 2, 3, 4, 5, 6, 123456700, time.UTC).UnixNano()
	mtime := time.Date(2011, 12, 13, 14, 15, 16, 987654300, time.UTC).UnixNano()
	atime := time.Date(2021, 7, 8, 9, 10, 11, 100, time.UTC).UnixNano()
	writeFile(t, s, "f", []byte("f"))
	writeFile(t, s, "ro", []byte("ro"))
	if err := s.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path  string
		meta  nas.Meta
		attrs uint32
	}{
		{"f", nas.Meta{BtimeNs: btime, MtimeNs: mtime, AtimeNs: atime, Attrs: nas.AttrArchive}, nas.AttrArchive},
		{"ro", nas.Meta{BtimeNs: btime, MtimeNs: mtime, AtimeNs: atime, Attrs: nas.AttrReadOnly | nas.AttrHidden}, nas.AttrReadOnly | nas.AttrHidden},
		{"d", nas.Meta{Type: nas.TypeDir, BtimeNs: btime, MtimeNs: mtime, AtimeNs: atime}, 0},
	} {
		if err := s.SetMeta(ctx, c.path, c.meta); err != nil {
			t.Fatalf("SetMeta %s: %v", c.path, err)
		}
		for _, i := range []nas.Info{stat(t, s, c.path), entry(t, s, "", c.path)} {
			if i.BtimeNs != btime || i.MtimeNs != mtime || i.AtimeNs != atime {
				t.Errorf("%s: times (creation, write, access) %v, %v, %v; want %v, %v, %v", c.path,
					time.Unix(0, i.BtimeNs).UTC(), time.Unix(0, i.MtimeNs).UTC(), time.Unix(0, i.AtimeNs).UTC(),
					time.Unix(0, btime).UTC(), time.Unix(0, mtime).UTC(), time.Unix(0, atime).UTC())
			}
			if i.Attrs&nas.AttrsKept != c.attrs {
				t.Errorf("%s: attributes %#x, want %#x", c.path, i.Attrs&nas.AttrsKept, c.attrs)
			}
		}
	}
	// The write time reaches the server's file system.
	fi, err := os.Stat(filepath.Join(sb.Dir(testparts.SambaShareData), "f"))
	if err != nil || fi.ModTime().UnixNano() != mtime {
		t.Errorf("f's mtime on disk: %v, %v; want %v", fi.ModTime(), err, time.Unix(0, mtime))
	}
	// Zero times leave the times alone.
	if err := s.SetMeta(ctx, "f", nas.Meta{MtimeNs: mtime + 100}); err != nil {
		t.Fatal(err)
	}
	if i := stat(t, s, "f"); i.BtimeNs != btime || i.AtimeNs != atime || i.MtimeNs != mtime+100 {
		t.Errorf("after setting the write time only: %v %v %v", i.BtimeNs, i.MtimeNs, i.AtimeNs)
	}
}

// sdOf builds a self-relative descriptor from SDDL.
func sdOf(t testing.TB, s string) []byte {
	t.Helper()
	sd, err := sddl.FromString(s)
	if err != nil {
		t.Fatalf("SDDL %s: %v", s, err)
	}
	return sd.Binary()
}

func sddlOf(t testing.TB, b []byte) string {
	t.Helper()
	sd, err := sddl.FromBinary(b)
	if err != nil {
		t.Fatalf("descriptor does not parse: %v", err)
	}
	return sd.String()
}

// control is a descriptor's control field without SE_SELF_RELATIVE and
// the *_DEFAULTED bits (which a server computes).
func control(b []byte) uint16 { return binary.LittleEndian.Uint16(b[2:]) &^ 0x802b }

// A DACL with explicit ACEs for a SID, owner and group, set by SetMeta,
// reads back the same (byte for byte from Stat and ReadDir alike), with
// its protected and auto-inherited flags.
func TestDACL(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	writeFile(t, s, "f", []byte("f"))
	if err := s.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	group := "G:" + groupOf(t, s, "f")
	const other = "S-1-5-21-1111111111-2222222222-3333333333-1234" // a SID of no account here
	for _, c := range []struct{ path, sddl string }{
		{"f", "O:" + sb.UserSID + group + "D:P(A;;FA;;;" + sb.UserSID + ")(A;;0x1200a9;;;" + other + ")(D;;WD;;;" + other + ")"},
		{"f", "O:" + sb.UserSID + group + "D:PAI(A;;FA;;;" + sb.UserSID + ")(A;ID;0x1301bf;;;" + other + ")"},
		{"d", "O:" + sb.UserSID + group + "D:P(A;OICI;FA;;;" + sb.UserSID + ")(A;OICIIO;0x1200a9;;;" + other + ")(A;;0x1200a9;;;WD)"},
	} {
		want := sdOf(t, c.sddl)
		if err := s.SetMeta(ctx, c.path, nas.Meta{SD: want, Attrs: nas.AttrArchive}); err != nil {
			t.Fatalf("SetMeta %s %s: %v", c.path, c.sddl, err)
		}
		got := stat(t, s, c.path).SD
		if sddlOf(t, got) != sddlOf(t, want) || control(got) != control(want) {
			t.Errorf("%s: descriptor %s (control %#x), want %s (control %#x)", c.path, sddlOf(t, got), control(got), sddlOf(t, want), control(want))
		}
		if listed := entry(t, s, "", c.path).SD; !bytes.Equal(listed, got) {
			t.Errorf("%s: ReadDir's descriptor %s differs from Stat's %s", c.path, sddlOf(t, listed), sddlOf(t, got))
		}
		// What was read sets again to itself, byte for byte (a restore).
		if err := s.SetMeta(ctx, c.path, nas.Meta{SD: got, Attrs: nas.AttrArchive}); err != nil {
			t.Fatal(err)
		}
		if again := stat(t, s, c.path).SD; !bytes.Equal(again, got) {
			t.Errorf("%s: descriptor set from what was read reads back as %s, not %s", c.path, sddlOf(t, again), sddlOf(t, got))
		}
	}
	// A descriptor with a DACL only leaves the owner alone.
	before := stat(t, s, "f").SD
	if err := s.SetMeta(ctx, "f", nas.Meta{SD: sdOf(t, "D:P(A;;FA;;;"+sb.UserSID+")")}); err != nil {
		t.Fatal(err)
	}
	after, b := partsOf(t, stat(t, s, "f").SD), partsOf(t, before)
	if after.owner != b.owner || after.owner == "" || after.dacl != "P(A;;FA;;;"+sb.UserSID+")" {
		t.Errorf("DACL-only descriptor: now %+v, before %+v", after, b)
	}
	if err := s.SetMeta(ctx, "f", nas.Meta{SD: []byte{1, 0, 4}}); err == nil {
		t.Errorf("SetMeta with a truncated descriptor succeeded")
	}
}

// A DACL that grants the account only reading still lets SetMeta set the
// attributes and times after it: one handle, opened with every right
// first.
func TestSetMetaAfterRestrictiveDACL(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	writeFile(t, s, "f", []byte("f"))
	mtime := time.Date(2015, 1, 2, 3, 4, 5, 600, time.UTC).UnixNano()
	sd := sdOf(t, "D:P(A;;0x1200a9;;;"+sb.UserSID+")") // read and execute
	if err := s.SetMeta(ctx, "f", nas.Meta{SD: sd, MtimeNs: mtime, BtimeNs: mtime, Attrs: nas.AttrHidden}); err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	// The DACL is in force: attributes cannot be written any more.
	if err := s.SetMeta(ctx, "f", nas.Meta{MtimeNs: mtime + 100}); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("SetMeta after the restrictive DACL: %v, want permission denied", err)
	}
	i := stat(t, s, "f")
	if i.MtimeNs != mtime || i.BtimeNs != mtime || i.Attrs&nas.AttrsKept != nas.AttrHidden {
		t.Errorf("times %v %v, attributes %#x; want %v and hidden", time.Unix(0, i.MtimeNs), time.Unix(0, i.BtimeNs), i.Attrs, time.Unix(0, mtime))
	}
	if got := sddlOf(t, i.SD); !strings.Contains(got, "D:P(A;;CCSWWPLORCSY;;;"+sb.UserSID+")") && !strings.Contains(got, "D:P(A;;0x1200a9;;;"+sb.UserSID+")") {
		t.Errorf("descriptor %s", got)
	}
}

// A file made by CreateMeta gets its content, attributes, times and a
// descriptor that denies the account every write through its own handle,
// and reports its size as it closes; over an existing file that denies the
// account WRITE_DAC the create is refused for want of a right, and a
// directory is refused outright.
func TestCreateMeta(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	mc := s.(nas.MetaCreator)
	ctx := context.Background()
	mtime := time.Date(2016, 2, 3, 4, 5, 6, 700, time.UTC).UnixNano()
	btime := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	sd := sdOf(t, "D:P(A;;0x1200a9;;;"+sb.UserSID+")") // read and execute
	data := pattern(3<<20+5, 7)

	f, err := mc.CreateMeta(ctx, "ro", nas.Meta{SD: sd, MtimeNs: mtime, BtimeNs: btime, Attrs: nas.AttrHidden | nas.AttrArchive})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := f.WriteAt(data, 0); err != nil || n != len(data) {
		t.Fatalf("write: %d, %v", n, err)
	}
	size, err := f.Commit()
	if err != nil || size != int64(len(data)) {
		t.Fatalf("Commit = %d, %v; want %d", size, err, len(data))
	}
	if got := readFile(t, s, "ro"); !bytes.Equal(got, data) {
		t.Errorf("content: %d bytes, want %d", len(got), len(data))
	}
	i := stat(t, s, "ro")
	if i.MtimeNs != mtime || i.BtimeNs != btime || i.Attrs&nas.AttrsKept != nas.AttrHidden|nas.AttrArchive {
		t.Errorf("times %v %v, attributes %#x", time.Unix(0, i.MtimeNs), time.Unix(0, i.BtimeNs), i.Attrs)
	}
	if got := sddlOf(t, i.SD); !strings.Contains(got, "D:P(A;;CCSWWPLORCSY;;;"+sb.UserSID+")") && !strings.Contains(got, "D:P(A;;0x1200a9;;;"+sb.UserSID+")") {
		t.Errorf("descriptor %s", got)
	}

	// The descriptor now in force denies WRITE_DAC: refused, as the
	// contract says, for the restore to go the long way.
	if _, err := mc.CreateMeta(ctx, "ro", nas.Meta{SD: sd}); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("CreateMeta over a file that denies WRITE_DAC: %v, want permission denied", err)
	}
	if err := s.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := mc.CreateMeta(ctx, "d", nas.Meta{}); err == nil || !strings.Contains(err.Error(), "it is a directory") {
		t.Errorf("CreateMeta of a directory: %v", err)
	}
	if _, err := s.Create(ctx, "d"); err == nil || !strings.Contains(err.Error(), "it is a directory") {
		t.Errorf("Create of a directory: %v", err)
	}
	if _, err := s.Open(ctx, "d"); err == nil || !strings.Contains(err.Error(), "it is a directory") {
		t.Errorf("Open of a directory: %v", err)
	}

	// Close instead of Commit leaves the content without the metadata.
	f, err = mc.CreateMeta(ctx, "torn", nas.Meta{MtimeNs: mtime})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("half"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if i := stat(t, s, "torn"); i.Size != 4 || i.MtimeNs == mtime {
		t.Errorf("abandoned file: size %d, mtime %v", i.Size, time.Unix(0, i.MtimeNs))
	}

	// Once the share has learned the account from a directory it made, a
	// descriptor that leaves the account every right it still needs is
	// sent with the create; one that does not waits for Commit.
	if d, err := s.(nas.DirMaker).MkdirOpen(ctx, "learn", nil); err != nil || d == nil {
		t.Fatalf("MkdirOpen = %v, %v", d, err)
	} else if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	mine := "O:" + sb.UserSID + "D:P(A;;FA;;;" + sb.UserSID + ")(A;;0x1200a9;;;WD)"
	for _, c := range []struct {
		name, sddl string
		atCreate   bool
	}{{"secd", mine, true}, {"readonly", "D:P(A;;0x1200a9;;;" + sb.UserSID + ")", false}} {
		f, err := mc.CreateMeta(ctx, c.name, nas.Meta{SD: sdOf(t, c.sddl), MtimeNs: mtime, BtimeNs: btime, Attrs: nas.AttrArchive})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.(*metaFile).sdAtCreate; got != c.atCreate {
			t.Errorf("%s: descriptor sent with the create: %v, want %v", c.name, got, c.atCreate)
		}
		if _, err := f.WriteAt(data[:100], 0); err != nil {
			t.Fatal(err)
		}
		if size, err := f.Commit(); err != nil || size != 100 {
			t.Fatalf("%s: Commit = %d, %v", c.name, size, err)
		}
		i := stat(t, s, c.name)
		if i.MtimeNs != mtime || i.BtimeNs != btime || i.Attrs&nas.AttrsKept != nas.AttrArchive {
			t.Errorf("%s: times %v %v, attributes %#x", c.name, time.Unix(0, i.MtimeNs), time.Unix(0, i.BtimeNs), i.Attrs)
		}
		if got, want := partsOf(t, i.SD).dacl, partsOf(t, sdOf(t, c.sddl)).dacl; got != want && !strings.Contains(got, "CCSWWPLORCSY") {
			t.Errorf("%s: DACL %s, want %s", c.name, got, want)
		}
	}
}

// A directory made by MkdirOpen stays open while entries are made in it,
// and its metadata, times included, is set through the handle at the end;
// one that exists already is no error and no handle.
func TestMkdirOpen(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	dm := s.(nas.DirMaker)
	ctx := context.Background()
	d, err := dm.MkdirOpen(ctx, "d", nil)
	if err != nil || d == nil {
		t.Fatalf("MkdirOpen = %v, %v", d, err)
	}
	writeFile(t, s, "d/child", []byte("c"))
	if err := s.Mkdir(ctx, "d/sub"); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2014, 5, 6, 7, 8, 9, 100, time.UTC).UnixNano()
	sd := sdOf(t, "D:P(A;OICI;FA;;;"+sb.UserSID+")(A;OICI;0x1200a9;;;WD)")
	if err := d.SetMetaClose(nas.Meta{Type: nas.TypeDir, MtimeNs: mtime, BtimeNs: mtime, Attrs: nas.AttrHidden, SD: sd}); err != nil {
		t.Fatal(err)
	}
	i := stat(t, s, "d")
	if i.Type != nas.TypeDir || i.MtimeNs != mtime || i.BtimeNs != mtime || i.Attrs&nas.AttrsKept != nas.AttrHidden {
		t.Errorf("directory after SetMetaClose: %+v", i)
	}
	if got := partsOf(t, i.SD).dacl; got != "P(A;OICI;FA;;;"+sb.UserSID+")(A;OICI;CCSWWPLORCSY;;;WD)" && got != "P(A;OICI;FA;;;"+sb.UserSID+")(A;OICI;0x1200a9;;;WD)" {
		t.Errorf("DACL %s", got)
	}
	if d, err := dm.MkdirOpen(ctx, "d", nil); d != nil || err != nil {
		t.Errorf("MkdirOpen of an existing directory = %v, %v; want no handle, no error", d, err)
	}
	if d, err := dm.MkdirOpen(ctx, "d/child", nil); d != nil || err == nil {
		t.Errorf("MkdirOpen over a file = %v, %v; want an error", d, err)
	}
}

func saclPresent(sd []byte) bool {
	return binary.LittleEndian.Uint16(sd[2:])&seSACLPresent != 0 && binary.LittleEndian.Uint32(sd[12:]) != 0
}

// Without SeSecurityPrivilege SACL() says why not and descriptors are read
// and set without SACLs; with it a SACL with an audit ACE round-trips.
func TestSACL(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	writeFile(t, s, "f", []byte("f"))
	withSACL := "O:" + sb.UserSID + "D:P(A;;FA;;;" + sb.UserSID + ")S:P(AU;SAFA;FA;;;WD)"

	ok, why := s.SACL()
	if ok || !strings.Contains(why, "SeSecurityPrivilege") || !strings.Contains(why, "net sam rights grant "+sb.User+" SeSecurityPrivilege") {
		t.Fatalf("SACL() without the privilege = %v, %q", ok, why)
	}
	if sd := stat(t, s, "f").SD; sd == nil || saclPresent(sd) {
		t.Fatalf("Stat without the privilege: descriptor %v", sd)
	}
	if sd := entry(t, s, "", "f").SD; sd == nil || saclPresent(sd) {
		t.Fatalf("ReadDir without the privilege: descriptor %v", sd)
	}
	// A descriptor with a SACL is set without it.
	if err := s.SetMeta(ctx, "f", nas.Meta{SD: sdOf(t, withSACL)}); err != nil {
		t.Fatalf("SetMeta of a descriptor with a SACL, without the privilege: %v", err)
	}
	if got := sddlOf(t, stat(t, s, "f").SD); got != sddlOf(t, sdOf(t, "O:"+sb.UserSID+"G:"+groupOf(t, s, "f")+"D:P(A;;FA;;;"+sb.UserSID+")")) {
		t.Errorf("descriptor after SetMeta without the privilege: %s", got)
	}

	sb.GrantPrivilege("SeSecurityPrivilege")
	p := dial(t, sb, testparts.SambaShareData)
	if ok, why := p.SACL(); !ok || why != "" {
		t.Fatalf("SACL() with the privilege = %v, %q", ok, why)
	}
	if err := p.SetMeta(ctx, "f", nas.Meta{SD: sdOf(t, withSACL)}); err != nil {
		t.Fatalf("SetMeta with a SACL: %v", err)
	}
	for _, sd := range [][]byte{stat(t, p, "f").SD, entry(t, p, "", "f").SD} {
		if got := partsOf(t, sd); got.sacl != "P(AU;SAFA;FA;;;WD)" || got.dacl != "P(A;;FA;;;"+sb.UserSID+")" {
			t.Errorf("descriptor with the privilege: %+v, want SACL P(AU;SAFA;FA;;;WD)", got)
		}
	}
	// The share without the privilege still reads the descriptor, without
	// its SACL.
	if sd := stat(t, s, "f").SD; saclPresent(sd) {
		t.Errorf("a session without the privilege read the SACL")
	}
}

func groupOf(t testing.TB, s nas.Share, p string) string {
	t.Helper()
	g := partsOf(t, stat(t, s, p).SD).group
	if g == "" {
		t.Fatalf("%s has no group", p)
	}
	return g
}

type sdParts struct{ owner, group, dacl, sacl string }

// partsOf splits a descriptor's SDDL (O:owner G:group D:dacl S:sacl, as
// package sddl writes it) into its parts.
func partsOf(t testing.TB, b []byte) sdParts {
	t.Helper()
	s := sddlOf(t, b)
	var p sdParts
	if i := strings.Index(s, "S:"); i >= 0 {
		s, p.sacl = s[:i], s[i+2:]
	}
	if i := strings.Index(s, "D:"); i >= 0 {
		s, p.dacl = s[:i], s[i+2:]
	}
	if i := strings.Index(s, "G:"); i >= 0 {
		s, p.group = s[:i], s[i+2:]
	}
	p.owner = strings.TrimPrefix(s, "O:")
	return p
}

// Samba creates no symbolic links over SMB2: Symlink says the server
// refused, and it is not a lost connection.
func TestSymlinkRefused(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	err := s.Symlink(context.Background(), "target", "link")
	if err == nil || !strings.Contains(err.Error(), "refused") || nas.IsConnectionLost(err) {
		t.Fatalf("Symlink on Samba: %v", err)
	}
	if _, err := s.Stat(context.Background(), "link"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused link left %v", err)
	}
}

// Dialling fails clearly on bad settings and credentials, never showing
// the password.
func TestDialErrors(t *testing.T) {
	sb := testparts.StartSamba(t)
	ctx := context.Background()
	const secret = "not-the-password-2f8c1a"
	for name, c := range map[string]Config{
		"wrong password": {Address: sb.Address, Share: "data", User: sb.User, Password: secret},
		"unknown user":   {Address: sb.Address, Share: "data", User: "nobody-here", Password: secret},
		"no share":       {Address: sb.Address, Share: "nope", User: sb.User, Password: sb.Password},
		"no credentials": {Address: sb.Address, Share: "data", User: sb.User},
		"bad keytab":     {Address: sb.Address, Share: "data", User: sb.User, Domain: "HAVEN", Keytab: []byte("not a keytab " + secret)},
		"bad address":    {Address: "127.0.0.1:99999", Share: "data", User: sb.User, Password: secret},
		"bad share":      {Address: sb.Address, Share: `a\b`, User: sb.User, Password: secret},
	} {
		s, err := Dial(ctx, c)
		if err == nil {
			s.Close()
			t.Errorf("%s: Dial succeeded", name)
			continue
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), sb.Password) {
			t.Errorf("%s: error shows the password: %v", name, err)
		}
		if nas.IsConnectionLost(err) {
			t.Errorf("%s: %v counts as a lost connection", name, err)
		}
	}
	// A keytab is used to log in to the realm's KDC (here one that is not
	// there), and its key never shows.
	kt := keytab.New()
	if err := kt.AddEntry(sb.User, "HAVEN.TEST", secret, time.Now(), 1, etypeID.AES256_CTS_HMAC_SHA1_96); err != nil {
		t.Fatal(err)
	}
	ktb, err := kt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(ctx, Config{Address: sb.Address, Share: "data", User: sb.User, Keytab: ktb, Realm: "HAVEN.TEST", KDCs: []string{"127.0.0.1:1"}})
	if err == nil || !strings.Contains(err.Error(), "Kerberos login as "+sb.User+"@HAVEN.TEST") || strings.Contains(err.Error(), secret) {
		t.Errorf("Dial with a keytab and no KDC: %v", err)
	}
	if _, err := Dial(ctx, Config{Address: sb.Address, Share: "data", User: sb.User, Keytab: ktb}); err == nil || !strings.Contains(err.Error(), "realm") {
		t.Errorf("Dial with a keytab and no realm: %v", err)
	}

	// A server that is not there is a lost connection: worth waiting for.
	sb.Stop()
	if _, err := Dial(ctx, config(sb, "data")); !nas.IsConnectionLost(err) {
		t.Errorf("Dial to a stopped server: %v, want a lost connection", err)
	}
	if h, a, err := address("nas.example"); err != nil || h != "nas.example" || a != "nas.example:445" {
		t.Errorf("address without port: %q, %q, %v", h, a, err)
	}
	if _, a, _ := address("[fe80::1]"); a != "[fe80::1]:445" {
		t.Errorf("IPv6 address without port = %s", a)
	}
}

// Paths are share-relative and clean.
func TestPaths(t *testing.T) {
	for p, want := range map[string]string{"": "", ".": "", "a": "a", "a/b c/d": `a\b c\d`} {
		if got, err := name(p); err != nil || got != want {
			t.Errorf("name(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	for _, p := range []string{"/a", "a/../b", "..", "a//b", `a\b`, "a/"} {
		if _, err := name(p); err == nil {
			t.Errorf("name(%q) accepted", p)
		}
	}
}

// When the server goes away during reads, the reads (and every call after
// them) fail with nas.ErrConnectionLost; a new Dial works once it is back.
func TestConnectionLost(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	data := pattern(8<<20, 3)
	writeFile(t, s, "big", data)
	f, err := s.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	reading := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for i := 0; ; i++ {
			if i == 4 {
				close(reading)
			}
			if _, err := f.ReadAt(buf, int64(i*len(buf))%int64(len(data))); err != nil {
				errc <- err
				return
			}
		}
	}()
	<-reading
	sb.Stop()
	select {
	case err := <-errc:
		if !errors.Is(err, nas.ErrConnectionLost) {
			t.Fatalf("read while the server stopped: %v, want nas.ErrConnectionLost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("reads went on for 30 s after the server stopped")
	}
	if _, err := s.ReadDir(ctx, ""); !errors.Is(err, nas.ErrConnectionLost) {
		t.Errorf("ReadDir after the loss: %v", err)
	}
	if _, err := s.Stat(ctx, "big"); !errors.Is(err, nas.ErrConnectionLost) {
		t.Errorf("Stat after the loss: %v", err)
	}
	if err := s.SetMeta(ctx, "big", nas.Meta{}); !errors.Is(err, nas.ErrConnectionLost) {
		t.Errorf("SetMeta after the loss: %v", err)
	}
	if _, err := f.ReadAt(make([]byte, 10), 0); !errors.Is(err, nas.ErrConnectionLost) {
		t.Errorf("ReadAt after the loss: %v", err)
	}
	if _, err := s.Create(ctx, "new"); !errors.Is(err, nas.ErrConnectionLost) {
		t.Errorf("Create after the loss: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a share whose connection dropped: %v", err)
	}

	sb.Start()
	s2 := dial(t, sb, testparts.SambaShareData)
	if got := readFile(t, s2, "big"); !bytes.Equal(got, data) {
		t.Errorf("after reconnecting, big reads back %d bytes", len(got))
	}
}

// One share serves 8 goroutines at once (run with -race): each writes,
// reads back, lists and sets metadata of its own files, and all read one
// open file concurrently.
func TestConcurrent(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	shared := pattern(2<<20, 9)
	writeFile(t, s, "shared", shared)
	sf, err := s.Open(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			dir := fmt.Sprintf("g%d", g)
			if err := s.Mkdir(ctx, dir); err != nil {
				errs <- err
				return
			}
			for i := range 5 {
				p := fmt.Sprintf("%s/f%d", dir, i)
				data := pattern(100<<10+g*1000+i, byte(g*16+i))
				f, err := s.Create(ctx, p)
				if err != nil {
					errs <- err
					return
				}
				// Written in two halves, out of order.
				half := len(data) / 2
				if _, err := f.WriteAt(data[half:], int64(half)); err != nil {
					errs <- err
				}
				if _, err := f.WriteAt(data[:half], 0); err != nil {
					errs <- err
				}
				if err := f.Close(); err != nil {
					errs <- err
				}
				mtime := time.Date(2020, 1, 1, 0, 0, g, i*100, time.UTC).UnixNano()
				if err := s.SetMeta(ctx, p, nas.Meta{MtimeNs: mtime, Attrs: nas.AttrArchive}); err != nil {
					errs <- err
				}
				rf, err := s.Open(ctx, p)
				if err != nil {
					errs <- err
					return
				}
				got := make([]byte, len(data))
				if n, err := rf.ReadAt(got, 0); err != nil && err != io.EOF || n != len(data) || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("%s read back %d bytes (%v), differing", p, n, err)
				}
				rf.Close()
				if i, err := s.Stat(ctx, p); err != nil || i.MtimeNs != mtime {
					errs <- fmt.Errorf("%s: Stat %v, write time %d want %d", p, err, i.MtimeNs, mtime)
				}
				// The shared file, at an offset of this goroutine's own.
				off := int64((g*5 + i) * 37 * 1024)
				buf := make([]byte, 64<<10)
				if n, err := sf.ReadAt(buf, off); err != nil || !bytes.Equal(buf[:n], shared[off:off+int64(n)]) {
					errs <- fmt.Errorf("shared at %d: %d bytes, %v", off, n, err)
				}
			}
			infos, err := s.ReadDir(ctx, dir)
			if err != nil || len(infos) != 5 {
				errs <- fmt.Errorf("ReadDir %s: %d entries, %v", dir, len(infos), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// BenchmarkReadDir compares reading a directory of 1000 files with their
// descriptors as ReadDir does (security queries compounded with the
// listing) with a query per entry; the numbers are in ReadDir's comment.
func BenchmarkReadDir(b *testing.B) {
	sb := testparts.StartSamba(b)
	s := dial(b, sb, testparts.SambaShareData)
	ctx := context.Background()
	if err := s.Mkdir(ctx, "many"); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		writeFile(b, s, fmt.Sprintf("many/file-%04d", i), []byte{byte(i)})
	}
	b.Run("compounded", func(b *testing.B) {
		for b.Loop() {
			infos, err := s.ReadDir(ctx, "many")
			if err != nil || len(infos) != 1000 || infos[999].SD == nil {
				b.Fatalf("ReadDir: %d entries, %v", len(infos), err)
			}
		}
	})
	b.Run("per-entry", func(b *testing.B) {
		tree := s.(*share).tc(ctx)
		for b.Loop() {
			fis, err := tree.ReadDir("many")
			if err != nil || len(fis) != 1000 {
				b.Fatalf("ReadDir: %d entries, %v", len(fis), err)
			}
			for _, fi := range fis {
				f, err := tree.OpenMeta(`many\`+fi.Name(), smb2.AccessReadControl)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := f.SecurityInfoRaw(sdInfo); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		}
	})
}

// An entry whose descriptor the compounded query did not bring (on Windows,
// a symbolic link: the query's open stops at it) has it read on its own;
// one that is gone by then is left out.
func TestReadDirDescriptorFallback(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	for _, p := range []string{"a", "b", "c"} {
		writeFile(t, s, p, []byte(p))
	}
	sh := s.(*share)
	tc := sh.tc(ctx)
	entries, err := tc.ReadDirPlus("", sdInfo)
	if err != nil || len(entries) != 3 {
		t.Fatalf("ReadDirPlus: %d entries, %v", len(entries), err)
	}
	want := map[string][]byte{}
	for i := range entries {
		want[entries[i].Name()] = entries[i].RawSecurityDescriptor
		if entries[i].Name() != "a" {
			entries[i].RawSecurityDescriptor, entries[i].Err = nil, errors.New("STATUS_STOPPED_ON_SYMLINK, say")
		}
	}
	if err := s.Remove(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	infos, err := sh.infos(tc, "", "", entries, sdInfo)
	if err != nil {
		t.Fatalf("infos: %v", err)
	}
	var names []string
	for _, i := range infos {
		names = append(names, i.Name)
		if want[i.Name] == nil || !bytes.Equal(i.SD, want[i.Name]) {
			t.Errorf("%s: descriptor %x, want %x", i.Name, i.SD, want[i.Name])
		}
	}
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Errorf("entries %v, want a and b (c is gone)", names)
	}
}

// Errors are sorted by what a caller does about them.
func TestWrap(t *testing.T) {
	for _, c := range []struct {
		err                  error
		lost, missing, right bool
	}{
		{&smb2.TransportError{Err: io.EOF}, true, false, false},
		{&os.PathError{Op: "open", Path: `a\b`, Err: &smb2.TransportError{Err: syscall.ECONNRESET}}, true, false, false},
		{&smb2.ResponseError{Code: statusNetworkNameDeleted}, true, false, false},
		{&smb2.ResponseError{Code: statusUserSessionDeleted}, true, false, false},
		{net.ErrClosed, true, false, false},
		{&os.PathError{Op: "open", Path: "x", Err: os.ErrNotExist}, false, true, false},
		{&smb2.ResponseError{Code: statusNoSuchFile}, false, true, false},
		{os.ErrPermission, false, false, true},
		{&smb2.ResponseError{Code: statusInvalidOwner}, false, false, true},
		{&smb2.ResponseError{Code: statusPrivilegeNotHeld}, false, false, true},
		{&smb2.ResponseError{Code: 0xC0000043}, false, false, false}, // sharing violation
	} {
		err := wrap("open", "a/b", c.err)
		if errors.Is(err, nas.ErrConnectionLost) != c.lost || errors.Is(err, fs.ErrNotExist) != c.missing || errors.Is(err, fs.ErrPermission) != c.right {
			t.Errorf("wrap(%v) = %v: lost %v, missing %v, refused %v; want %v, %v, %v", c.err, err,
				errors.Is(err, nas.ErrConnectionLost), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission), c.lost, c.missing, c.right)
		}
		if !strings.HasPrefix(err.Error(), "smb: open a/b: ") || strings.Contains(err.Error(), `a\b`) {
			t.Errorf("wrap(%v) = %q", c.err, err)
		}
	}
	if wrap("open", "x", nil) != nil {
		t.Errorf("wrap(nil) is not nil")
	}
}

// TestListingBesideOpens lists a directory over and over while eight
// goroutines open, read and describe its files, as a capture does: no call
// may fail. (With the listings' compounded requests on the same connection
// as the opens, Samba refused a few opens with STATUS_INVALID_PARAMETER.)
func TestListingBesideOpens(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	if err := s.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	for i := range 48 {
		writeFile(t, s, fmt.Sprintf("d/f%02d", i), pattern(64<<10, byte(i)))
	}
	stop := make(chan struct{})
	listed := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				listed <- nil
				return
			default:
			}
			if _, err := s.ReadDir(ctx, "d"); err != nil {
				listed <- err
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8*48)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < 4*48; i += 8 {
				p := fmt.Sprintf("d/f%02d", i%48)
				if _, err := s.Stat(ctx, p); err != nil {
					errs <- err
					continue
				}
				f, err := s.Open(ctx, p)
				if err != nil {
					errs <- err
					continue
				}
				if _, err := f.ReadAt(make([]byte, 64<<10), 0); err != nil {
					errs <- err
				}
				f.Close()
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-listed; err != nil {
		t.Fatalf("listing: %v", err)
	}
	close(errs)
	for err := range errs {
		t.Errorf("beside a listing: %v", err)
	}
}

// TestStatBesideLargeReads stats files while eight goroutines read 1 MiB
// at a time, which holds most of a session's credits: no stat may fail.
// (go-smb2 used to send a stat with fewer credits than its answer's size
// needed, and Samba refused it with STATUS_INVALID_PARAMETER.)
func TestStatBesideLargeReads(t *testing.T) {
	sb := testparts.StartSamba(t)
	s := dial(t, sb, testparts.SambaShareData)
	ctx := context.Background()
	for i := range 8 {
		writeFile(t, s, fmt.Sprintf("big%d", i), pattern(8<<20, byte(i)))
	}
	var (
		wg   sync.WaitGroup
		errs = make(chan error, 1000)
		done = make(chan struct{})
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for round := range 3 {
				f, err := s.Open(ctx, fmt.Sprintf("big%d", (g+round)%8))
				if err != nil {
					errs <- err
					return
				}
				for off := int64(0); off < 8<<20; off += 1 << 20 {
					if _, err := f.ReadAt(buf, off); err != nil {
						errs <- err
					}
				}
				f.Close()
			}
		}()
	}
	var stats sync.WaitGroup
	for g := range 2 {
		stats.Add(1)
		go func() {
			defer stats.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.Stat(ctx, fmt.Sprintf("big%d", (g+i)%8)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	stats.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("beside large reads: %v", err)
	}
}
