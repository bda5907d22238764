package files_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// browseTree writes the tree the browsing tests read: a few directories
// and small files, a file spanning hundreds of chunks, a sparse file, a
// hardlink, and a name that is not UTF-8. Every time is fixed, so that a
// second capture of an unchanged entry records it identically.
func browseTree(t *testing.T, dir string) {
	t.Helper()
	for _, p := range []string{"docs/a.txt", "docs/b.txt", "docs/sub/c.txt", "docs/sub/deep/d.pdf", "notes.txt"} {
		must(t, os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, p), []byte("content of "+p), 0o644))
	}
	randomFile(t, filepath.Join(dir, "big.bin"), 3<<20, 7, 0o600, time.Unix(1_650_000_000, 0))
	f, err := os.Create(filepath.Join(dir, "sparse.img"))
	must(t, err)
	f.WriteAt([]byte("head"), 0)
	f.WriteAt([]byte("tail"), 2<<20)
	must(t, f.Close())
	must(t, os.Link(filepath.Join(dir, "notes.txt"), filepath.Join(dir, "hard")))
	must(t, os.WriteFile(filepath.Join(dir, "x_\xff.txt"), []byte("not utf-8"), 0o644))
	settle(t, dir)
}

// settle gives every entry below dir (and dir) one fixed time.
func settle(t *testing.T, dir string) {
	t.Helper()
	ts := time.Unix(1_700_000_000, 0)
	filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		must(t, err)
		must(t, os.Chtimes(p, ts, ts))
		return nil
	})
}

// browsePoint is the fixture most browsing tests start from: a
// repository holding one point ("p1") of browseTree, with the tree's
// directory and the point's root.
func browsePoint(t *testing.T) (*repotest.Env, string, format.ID) {
	t.Helper()
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	browseTree(t, src)
	return env, src, capturePoint(t, env.Repo, src, "p1")
}

func capturePoint(t *testing.T, r *repo.Repository, src, pointID string) format.ID {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewWriter(ctx, "")
	must(t, err)
	root, _, err := files.Capture(ctx, w, r, files.CaptureOptions{Paths: []string{src}, Params: smallParams})
	must(t, err)
	must(t, w.Commit(ctx, pointID, root))
	return root
}

func manifestPath(t *testing.T, abs string) string {
	t.Helper()
	p, err := files.ManifestPath(abs)
	must(t, err)
	return p
}

func names(entries []files.Entry, under string) []string {
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimPrefix(e.Path, under+"/"))
	}
	return out
}

func TestListDirectoryRecursiveAndPaged(t *testing.T) {
	env, src, root := browsePoint(t)
	ctx := context.Background()
	dir := manifestPath(t, src)

	got, more, err := files.List(ctx, env.Repo, root, files.ListOptions{Dir: dir})
	must(t, err)
	want := []string{"big.bin", "docs", "hard", "notes.txt", "sparse.img", "x_\xff.txt"}
	if !slices.Equal(names(got, dir), want) || more {
		t.Errorf("children of %s: %q (more %v), want %q", src, names(got, dir), more, want)
	}
	for _, e := range got {
		if e.Path == dir+"/x_\xff.txt" && files.ShowPath(e.Path) != `"`+src+`/x_\xff.txt"` {
			t.Errorf("a name that is not UTF-8 shows as %s, want it Go-quoted", files.ShowPath(e.Path))
		}
		if e.Path == dir+"/big.bin" && (e.Type != files.TypeFile || e.Size != 3<<20 || e.Mode != 0o600) {
			t.Errorf("big.bin listed as %+v", e)
		}
	}

	all, more, err := files.List(ctx, env.Repo, root, files.ListOptions{Dir: dir + "/docs", Recursive: true})
	must(t, err)
	want = []string{"a.txt", "b.txt", "sub", "sub/c.txt", "sub/deep", "sub/deep/d.pdf"}
	if !slices.Equal(names(all, dir+"/docs"), want) || more {
		t.Errorf("below docs: %q (more %v), want %q", names(all, dir+"/docs"), more, want)
	}

	// Pages of two, each after the last one's final path, add up to the
	// whole listing.
	var paged []files.Entry
	after := ""
	for pages := 0; ; pages++ {
		page, more, err := files.List(ctx, env.Repo, root, files.ListOptions{Dir: dir + "/docs", Recursive: true, After: after, Limit: 2})
		must(t, err)
		if len(page) > 2 || pages > 3 {
			t.Fatalf("page %d: %d entries (limit 2), %d pages", pages, len(page), pages+1)
		}
		paged = append(paged, page...)
		if !more {
			break
		}
		after = page[len(page)-1].Path
	}
	if !slices.Equal(names(paged, dir+"/docs"), want) {
		t.Errorf("paged listing: %q, want %q", names(paged, dir+"/docs"), want)
	}

	one, _, err := files.List(ctx, env.Repo, root, files.ListOptions{Dir: dir + "/notes.txt"})
	must(t, err)
	if len(one) != 1 || one[0].Path != dir+"/notes.txt" {
		t.Errorf("listing a file: %+v", one)
	}
	if _, _, err := files.List(ctx, env.Repo, root, files.ListOptions{Dir: dir + "/docs/nothing"}); !errors.Is(err, files.ErrNoSuchPath) {
		t.Errorf("listing a missing path: %v, want ErrNoSuchPath", err)
	}
}

func TestFindMatchesDoublestarGlobs(t *testing.T) {
	env, src, root := browsePoint(t)
	ctx := context.Background()
	dir := manifestPath(t, src)
	for _, c := range []struct {
		patterns []string
		want     []string
	}{
		{[]string{"**/*.pdf"}, []string{"docs/sub/deep/d.pdf"}},
		{[]string{"*.txt"}, []string{"docs/a.txt", "docs/b.txt", "docs/sub/c.txt", "notes.txt", "x_\xff.txt"}},
		{[]string{src + "/docs/*.txt"}, []string{"docs/a.txt", "docs/b.txt"}},
		{[]string{src + "/docs/**/*.{txt,pdf}"}, []string{"docs/a.txt", "docs/b.txt", "docs/sub/c.txt", "docs/sub/deep/d.pdf"}},
		{[]string{"nothing-*"}, nil},
	} {
		got, more, err := files.Find(ctx, env.Repo, root, c.patterns, "", 0)
		must(t, err)
		if !slices.Equal(names(got, dir), c.want) || more {
			t.Errorf("find %q: %q (more %v), want %q", c.patterns, names(got, dir), more, c.want)
		}
	}
	page, more, err := files.Find(ctx, env.Repo, root, []string{"*.txt"}, dir+"/docs/a.txt", 2)
	must(t, err)
	if !slices.Equal(names(page, dir), []string{"docs/b.txt", "docs/sub/c.txt"}) || !more {
		t.Errorf("find page after docs/a.txt: %q (more %v)", names(page, dir), more)
	}
}

func TestDiffAddedRemovedChanged(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	browseTree(t, src)
	ctx := context.Background()
	first := capturePoint(t, env.Repo, src, "p1")

	must(t, os.WriteFile(filepath.Join(src, "docs/b.txt"), []byte("content of docs/b.txX"), 0o644)) // same size, new bytes
	must(t, os.Chmod(filepath.Join(src, "docs/a.txt"), 0o600))
	must(t, os.Remove(filepath.Join(src, "docs/sub/c.txt")))
	must(t, os.WriteFile(filepath.Join(src, "docs/new.txt"), []byte("new"), 0o644))
	settle(t, src) // directories keep their times: only the files differ
	second := capturePoint(t, env.Repo, src, "p2")

	dir := manifestPath(t, src)
	got, more, err := files.Diff(ctx, env.Repo, first, second, "", 0)
	must(t, err)
	var desc []string
	for _, c := range got {
		if !strings.HasPrefix(c.Path(), dir+"/") {
			continue // the directories above the source, which others write into
		}
		desc = append(desc, c.Kind+" "+strings.TrimPrefix(c.Path(), dir+"/"))
	}
	want := []string{"changed docs/a.txt", "changed docs/b.txt", "added docs/new.txt", "removed docs/sub/c.txt"}
	if !slices.Equal(desc, want) || more {
		t.Errorf("diff: %q (more %v), want %q", desc, more, want)
	}
	for _, c := range got {
		if c.Kind == files.Changed && (c.From == nil || c.To == nil) || c.Kind == files.Added && c.To == nil || c.Kind == files.Removed && c.From == nil {
			t.Errorf("%s %s lacks a side: %+v", c.Kind, c.Path(), c)
		}
	}
	page, more, err := files.Diff(ctx, env.Repo, first, second, dir+"/docs/b.txt", 1)
	must(t, err)
	if len(page) != 1 || page[0].Path() != dir+"/docs/new.txt" || !more {
		t.Errorf("diff page after docs/b.txt: %+v (more %v)", page, more)
	}
	if same, _, err := files.Diff(ctx, env.Repo, second, second, "", 0); err != nil || len(same) != 0 {
		t.Errorf("a point against itself: %+v %v", same, err)
	}
}

func TestWriteContentIsByteIdentical(t *testing.T) {
	env, src, root := browsePoint(t)
	ctx := context.Background()
	dir := manifestPath(t, src)

	for _, name := range []string{"big.bin", "sparse.img", "hard", "x_\xff.txt", "docs/sub/deep/d.pdf"} {
		e, err := files.Lookup(ctx, env.Repo, root, dir+"/"+name)
		must(t, err)
		var buf bytes.Buffer
		n, err := files.WriteContent(ctx, env.Repo, e, &buf)
		must(t, err)
		want, _ := os.ReadFile(filepath.Join(src, name))
		if n != int64(len(want)) || !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("%s: %d bytes read back, not the %d of the file", name, n, len(want))
		}
		if name == "big.bin" && len(e.Chunks) < 300 {
			t.Errorf("big.bin has %d chunks; the test wants it to span several load batches", len(e.Chunks))
		}
	}

	docs, err := files.Lookup(ctx, env.Repo, root, dir+"/docs")
	must(t, err)
	if _, err := files.WriteContent(ctx, env.Repo, docs, &bytes.Buffer{}); !errors.Is(err, files.ErrNotAFile) {
		t.Errorf("content of a directory: %v, want ErrNotAFile", err)
	}
	// Bytes that are not the chunk the manifest names never reach the
	// writer's output as the file.
	big, err := files.Lookup(ctx, env.Repo, root, dir+"/big.bin")
	must(t, err)
	bad := &meddlingSource{Source: env.Repo, k: 40, meddle: func(b []byte) ([]byte, error) {
		b = bytes.Clone(b)
		b[0] ^= 1
		return b, nil
	}}
	if _, err := files.WriteContent(ctx, bad, big, &bytes.Buffer{}); !errors.Is(err, files.ErrWrongBytes) {
		t.Errorf("content through a source that alters a chunk: %v, want ErrWrongBytes", err)
	}
}

func TestExcludeGlobsMatchAcrossDirectories(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	for _, p := range []string{"a/build/out.o", "a/b/build/x.o", "a/keep.c", "a/lib.a", "build/top.o"} {
		must(t, os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(src, p), []byte(p), 0o644))
	}
	ctx := context.Background()
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	// "**" crosses directories, "{o,a}" is a choice.
	root, _, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{Paths: []string{src},
		Exclude: []string{src + "/a/**/build", "*.{o,a}"}, Params: smallParams})
	must(t, err)
	must(t, w.Commit(ctx, "p", root))
	dir := manifestPath(t, src)
	got, _, err := files.List(ctx, env.Repo, root, files.ListOptions{Dir: dir, Recursive: true})
	must(t, err)
	want := []string{"a", "a/b", "a/keep.c", "build"}
	if !slices.Equal(names(got, dir), want) {
		t.Errorf("captured %q, want %q", names(got, dir), want)
	}
}
