package files_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// randomName is 1 to 24 bytes drawn from every value but '/' and NUL.
func randomName(rng *rand.Rand) string {
	for {
		b := make([]byte, 1+rng.IntN(24))
		for i := range b {
			b[i] = byte(1 + rng.IntN(255))
			if b[i] == '/' {
				b[i] = 0xff
			}
		}
		if s := string(b); s != "." && s != ".." {
			return s
		}
	}
}

// xattrsWork reports whether dir's filesystem takes user.* xattrs.
func xattrsWork(t *testing.T, dir string) bool {
	p := filepath.Join(dir, "probe")
	must(t, os.WriteFile(p, nil, 0o600))
	defer os.Remove(p)
	err := unix.Setxattr(p, "user.probe", []byte("1"), 0)
	if err != nil {
		t.Logf("no user xattrs on this filesystem (%v): names and targets only", err)
	}
	return err == nil
}

// byteTree describes a tree by raw names: every entry's type, content or
// link target, and user xattrs, all as bytes.
func byteTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(rel string)
	walk = func(rel string) {
		entries, err := os.ReadDir(filepath.Join(dir, rel))
		must(t, err)
		for _, e := range entries {
			p := filepath.Join(dir, rel, e.Name())
			key := rel + "/" + e.Name()
			var desc string
			switch {
			case e.Type()&os.ModeSymlink != 0:
				target, err := os.Readlink(p)
				must(t, err)
				desc = "symlink " + target
			case e.IsDir():
				desc = "dir"
				walk(key)
			default:
				data, err := os.ReadFile(p)
				must(t, err)
				fi, err := os.Lstat(p)
				must(t, err)
				desc = fmt.Sprintf("file %s nlink=%d", data, fi.Sys().(*syscall.Stat_t).Nlink)
			}
			if size, err := unix.Llistxattr(p, nil); err == nil && size > 0 {
				buf := make([]byte, size)
				size, _ = unix.Llistxattr(p, buf)
				names := strings.Split(strings.TrimSuffix(string(buf[:size]), "\x00"), "\x00")
				slices.Sort(names)
				for _, n := range names {
					val := make([]byte, 256)
					k, err := unix.Lgetxattr(p, n, val)
					must(t, err)
					desc += fmt.Sprintf(" xattr[%q]=%q", n, val[:k])
				}
			}
			out[key] = desc
		}
	}
	walk("")
	return out
}

// TestNamesAreBytes backs up random names, symlink targets and xattr
// names over every byte value but '/' and NUL, and checks the restore
// byte for byte: nothing replaced by U+FFFD, no two names collapsed.
func TestNamesAreBytes(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			src := t.TempDir()
			withXattrs := xattrsWork(t, src)
			dirs := []string{src}
			// The reported pair: one byte apart, neither valid UTF-8.
			must(t, os.WriteFile(filepath.Join(src, "x_\xff.txt"), []byte("ff"), 0o644))
			must(t, os.WriteFile(filepath.Join(src, "x_\xfe.txt"), []byte("fe"), 0o644))
			for i := range 40 {
				p := filepath.Join(dirs[rng.IntN(len(dirs))], randomName(rng))
				if _, err := os.Lstat(p); err == nil {
					continue
				}
				switch rng.IntN(4) {
				case 0:
					must(t, os.Mkdir(p, 0o755))
					dirs = append(dirs, p)
				case 1:
					// A target of any bytes but NUL ('/' included).
					target := randomName(rng) + "/" + randomName(rng)
					must(t, os.Symlink(target, p))
				default:
					must(t, os.WriteFile(p, []byte(fmt.Sprintf("content %d", i)), 0o644))
					if withXattrs {
						must(t, unix.Setxattr(p, "user."+randomName(rng), []byte{byte(i), 0xff, 0}, 0))
					}
				}
			}
			// A hardlink under a random name (its manifest target is the
			// first name, which is not UTF-8 either).
			must(t, os.Link(filepath.Join(src, "x_\xff.txt"), filepath.Join(dirs[rng.IntN(len(dirs))], "\x80"+randomName(rng))))
			want := byteTree(t, src)
			root, _ := backup(t, env.Repo, src, "", format.ID{}, fmt.Sprint("names", seed))
			dst := t.TempDir()
			_, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst})
			must(t, err)
			got := byteTree(t, filepath.Join(dst, src))
			for p, w := range want {
				if g := got[p]; g != w {
					t.Errorf("%q:\n  want %q\n  got  %q", p, w, g)
				}
			}
			for p := range got {
				if _, ok := want[p]; !ok {
					t.Errorf("%q: restored but not in the source", p)
				}
			}

			// A restore of one such name, selected the way warnings show it.
			one := filepath.Join(src, "x_\xff.txt")
			sel := files.ShowPath(strings.TrimPrefix(one, "/"))
			if !strings.HasPrefix(sel, `"`) {
				t.Fatalf("ShowPath(%q) = %s: want it quoted", one, sel)
			}
			dst = t.TempDir()
			_, err = files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst, Paths: []string{sel}})
			must(t, err)
			if b, err := os.ReadFile(filepath.Join(dst, one)); err != nil || string(b) != "ff" {
				t.Errorf("selected %s: %q, %v", sel, b, err)
			}
			if _, err := os.Lstat(filepath.Join(dst, src, "x_\xfe.txt")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the sibling x_\\xfe.txt was restored too (%v)", err)
			}
		})
	}
}

// TestManifestEntryEncoding pins the manifest line format: text names as
// before, others as base64 "_raw" fields, and lines written before raw
// fields existed still read.
func TestManifestEntryEncoding(t *testing.T) {
	old := `{"path":"srv/data/report.txt","type":"symlink","mode":511,"uid":0,"gid":0,"mtime_ns":1,` +
		`"target":"../b","xattrs":{"user.tag":"dmFs"}}`
	var e files.Entry
	must(t, json.Unmarshal([]byte(old), &e))
	if e.Path != "srv/data/report.txt" || e.Target != "../b" || string(e.Xattrs["user.tag"]) != "val" || e.Mode != 511 {
		t.Errorf("old entry decoded as %+v", e)
	}

	in := files.Entry{Path: "d/x_\xff.txt", Type: files.TypeSymlink, Target: "t\xfe", MtimeNs: 5,
		Xattrs: map[string][]byte{"user.\xfd": []byte("a"), "user.ok": []byte("b")}}
	b, err := json.Marshal(in)
	must(t, err)
	if bytes.Contains(b, []byte(`"path"`)) || !bytes.Contains(b, []byte(`"path_raw"`)) || !bytes.Contains(b, []byte(`"xattrs":{"user.ok"`)) {
		t.Errorf("encoded as %s", b)
	}
	var out files.Entry
	must(t, json.Unmarshal(b, &out))
	if out.Path != in.Path || out.Target != in.Target || len(out.Xattrs) != 2 || string(out.Xattrs["user.\xfd"]) != "a" || out.MtimeNs != 5 {
		t.Errorf("round trip: %+v", out)
	}
	// Text names stay text, byte for byte what they were before.
	b, err = json.Marshal(files.Entry{Path: "a", Type: files.TypeFile, Mode: 0o644})
	must(t, err)
	if want := `{"path":"a","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":0}`; string(b) != want {
		t.Errorf("text entry encoded as %s, want %s", b, want)
	}
}
