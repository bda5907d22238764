package files_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// captureWith backs up src with opts (Paths and Params filled in) and
// commits the point as name.
func captureWith(t *testing.T, env *repotest.Env, name, src string, opts files.CaptureOptions) (format.ID, files.CaptureStats) {
	t.Helper()
	ctx := context.Background()
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	opts.Paths, opts.Params = []string{src}, smallParams
	root, stats, err := files.Capture(ctx, w, env.Repo, opts)
	must(t, err)
	must(t, w.Commit(ctx, name, root))
	return root, stats
}

// TestFuzzyKeepsWhatWasRead backs up, with Fuzzy, a file that is appended
// to after every read of it: the capture keeps the bytes it read, with no
// warning, and records the times seen before the read, so the next
// capture from that point reads the file again instead of reusing it.
func TestFuzzyKeepsWhatWasRead(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "steady.txt"), []byte("steady"), 0o644))
	busy := filepath.Join(src, "busy.dat")
	first := bytes.Repeat([]byte("x"), 4<<20)
	must(t, os.WriteFile(busy, first, 0o644))
	// Old enough times that a same-tick rewrite cannot hide a change.
	old := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(busy, old, old))
	defer files.SetHookBeforeFinalStat(func(p string) {
		if p != busy {
			return
		}
		f, err := os.OpenFile(busy, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			f.Write([]byte("more\n"))
			f.Close()
		}
	})()
	var warnings []string
	warn := func(p string, err error) { warnings = append(warnings, p+": "+err.Error()) }
	root, stats := captureWith(t, env, "p1", src, files.CaptureOptions{Fuzzy: true, Warn: warn})
	if stats.Files != 2 || stats.Warnings != 0 || len(warnings) != 0 {
		t.Fatalf("fuzzy capture: files %d, warnings %v", stats.Files, warnings)
	}
	dst := t.TempDir()
	_, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst})
	must(t, err)
	got, err := os.ReadFile(filepath.Join(dst, busy))
	must(t, err)
	if !bytes.Equal(got, first) {
		t.Fatalf("restored %d bytes, want the %d read", len(got), len(first))
	}
	_, again := captureWith(t, env, "p2", src, files.CaptureOptions{Fuzzy: true, Parent: root, Warn: warn})
	if again.Reused != 1 {
		t.Fatalf("second capture reused %d files, want only steady.txt: busy.dat changed after it was read", again.Reused)
	}
}

// TestFuzzyVanishedFileIsNoWarning removes a file between the walk and its
// read, as a database dropping a table during a backup does: a fuzzy
// capture leaves it out quietly, a plain one warns.
func TestFuzzyVanishedFileIsNoWarning(t *testing.T) {
	for _, fuzzy := range []bool{true, false} {
		env := repotest.New(t, repo.Options{})
		src := t.TempDir()
		must(t, os.WriteFile(filepath.Join(src, "kept"), []byte("kept"), 0o644))
		gone := filepath.Join(src, "dropped")
		must(t, os.WriteFile(gone, []byte("dropped"), 0o644))
		restore := files.SetHookBeforeOpen(func(p string) {
			if p == gone {
				os.Remove(gone)
			}
		})
		var warnings []string
		_, stats := captureWith(t, env, "p", src, files.CaptureOptions{Fuzzy: fuzzy,
			Warn: func(p string, err error) { warnings = append(warnings, p+": "+err.Error()) }})
		restore()
		want := 1
		if fuzzy {
			want = 0
		}
		if len(warnings) != want || stats.Warnings != int64(want) {
			t.Errorf("fuzzy %v: warnings %v (counted %d), want %d", fuzzy, warnings, stats.Warnings, want)
		}
	}
}

// TestReuseBefore takes an unchanged file from the parent only when the
// parent saw its times as older than ReuseBefore.
func TestReuseBefore(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		must(t, os.WriteFile(filepath.Join(src, n), []byte(n), 0o644))
	}
	written := time.Now()
	root, _ := captureWith(t, env, "p1", src, files.CaptureOptions{})
	_, after := captureWith(t, env, "p2", src, files.CaptureOptions{Parent: root, ReuseBefore: written.Add(time.Second)})
	if after.Reused != 3 {
		t.Errorf("ReuseBefore after the files' times: reused %d, want 3", after.Reused)
	}
	_, before := captureWith(t, env, "p3", src, files.CaptureOptions{Parent: root, ReuseBefore: written.Add(-time.Minute)})
	if before.Reused != 0 {
		t.Errorf("ReuseBefore before the files' times: reused %d, want 0 (read again)", before.Reused)
	}
}
