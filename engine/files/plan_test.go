package files_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// restoredFiles lists the files and directories below dir.
func restoredFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	}))
	return out
}

func TestRestoreIncludeAndExcludeGlobs(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	browseTree(t, src)
	must(t, os.Mkdir(filepath.Join(src, "bin"), 0o755)) // nothing in it matches
	must(t, os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("tool"), 0o755))
	root := capturePoint(t, env.Repo, src, "p1")
	ctx := context.Background()
	dst := t.TempDir()
	_, err := files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst, Paths: []string{src},
		Include: []string{"**/*.txt", src + "/docs/sub"}, Exclude: []string{"**/deep", "b.txt"}})
	must(t, err)
	got := restoredFiles(t, filepath.Join(dst, src))
	// docs/sub is included whole, less what the excludes take; the
	// directories on the way to a match come along, no others.
	want := []string{"docs", "docs/a.txt", "docs/sub", "docs/sub/c.txt", "notes.txt", "x_\xff.txt"}
	if !slices.Equal(got, want) {
		t.Errorf("restored %q, want %q", got, want)
	}
	// The directories on the way have the point's metadata.
	for _, d := range []string{".", "docs", "docs/sub"} {
		want, err := os.Stat(filepath.Join(src, d))
		must(t, err)
		got, err := os.Stat(filepath.Join(dst, src, d))
		if err != nil || got.Mode() != want.Mode() || !got.ModTime().Equal(want.ModTime()) {
			t.Errorf("restored directory %s: %v %v (%v), want %v %v", d, got.Mode(), got.ModTime(), err, want.Mode(), want.ModTime())
		}
	}
	if _, err := files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst, Include: []string{"[bad"}}); err == nil {
		t.Error("a restore with an invalid glob ran")
	}
}

func TestPlanRestoreWritesNothing(t *testing.T) {
	env, src, root := browsePoint(t)
	ctx := context.Background()

	// The target already holds docs/a.txt (other bytes) and docs/b.txt.
	dst := t.TempDir()
	docs := filepath.Join(dst, src, "docs")
	must(t, os.MkdirAll(docs, 0o755))
	must(t, os.WriteFile(filepath.Join(docs, "a.txt"), []byte("mine"), 0o644))
	must(t, os.WriteFile(filepath.Join(docs, "b.txt"), []byte("mine too"), 0o644))
	before := fingerprint(t, dst)

	sizes := map[string]int64{}
	for _, n := range []string{"docs/a.txt", "docs/b.txt", "docs/sub/c.txt", "docs/sub/deep/d.pdf"} {
		fi, err := os.Stat(filepath.Join(src, n))
		must(t, err)
		sizes[n] = fi.Size()
	}
	for _, c := range []struct {
		conflict string
		existing string // what a.txt and b.txt get
		bytes    int64
	}{
		{files.ConflictOverwrite, files.PlanOverwrite, sizes["docs/a.txt"] + sizes["docs/b.txt"]},
		{files.ConflictSkip, files.PlanSkip, 0},
		{files.ConflictRename, files.PlanRename, sizes["docs/a.txt"] + sizes["docs/b.txt"]},
	} {
		plan, err := files.PlanRestore(ctx, env.Repo, root, files.RestoreOptions{Target: dst, Paths: []string{src + "/docs"}, Conflict: c.conflict}, 0)
		must(t, err)
		var got []string
		for _, it := range plan.Items {
			got = append(got, it.Action+" "+strings.TrimPrefix(it.Path, src+"/"))
			if it.Action == files.PlanRename && !strings.HasSuffix(it.Dest, ".restored-1") {
				t.Errorf("%s: renamed to %s", it.Path, it.Dest)
			}
		}
		want := []string{c.existing + " docs/a.txt", c.existing + " docs/b.txt", "write docs/sub", "write docs/sub/c.txt",
			"write docs/sub/deep", "write docs/sub/deep/d.pdf"}
		if !slices.Equal(got, want) {
			t.Errorf("%s: plan %q, want %q", c.conflict, got, want)
		}
		if wantBytes := c.bytes + sizes["docs/sub/c.txt"] + sizes["docs/sub/deep/d.pdf"]; plan.Bytes != wantBytes || plan.Writes != 4 {
			t.Errorf("%s: %d bytes in %d writes, want %d in 4", c.conflict, plan.Bytes, plan.Writes, wantBytes)
		}
	}
	diffFingerprints(t, before, fingerprint(t, dst))

	// Against the point alone: everything selected is a write, and the
	// page of items is bounded while the counts are not (the source
	// directory, docs, docs/sub and five .txt files).
	plan, err := files.PlanRestore(ctx, env.Repo, root, files.RestoreOptions{Paths: []string{src}, Include: []string{"*.txt"}}, 2)
	must(t, err)
	if plan.Writes != 8 || plan.Overwrites != 0 || len(plan.Items) != 2 || !plan.Truncated || plan.Items[0].Dest != "" {
		t.Errorf("plan against the point: %+v", plan)
	}
}
