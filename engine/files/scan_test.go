package files_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestCaptureTotalsMatchWhatItTakes: the scan beside a capture counts
// exactly the files and bytes the capture takes (its excludes, a hardlink
// once, no symlinks or sparse holes beyond the files' sizes), its totals
// only grow, the one report with TotalsFinal is the first with final
// totals, and Progress is never called twice at once.
func TestCaptureTotalsMatchWhatItTakes(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	ctx := context.Background()
	src := t.TempDir()
	makeTree(t, src, 4)
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	var (
		inFlight, overlaps atomic.Int32
		reports            []files.CaptureProgress
	)
	_, stats, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{Paths: []string{src}, Exclude: []string{"**/sparse-1.img"},
		Params: smallParams, Totals: true,
		Progress: func(p files.CaptureProgress) {
			if inFlight.Add(1) > 1 {
				overlaps.Add(1)
			}
			reports = append(reports, p)
			inFlight.Add(-1)
		}})
	must(t, err)
	w.Abort(ctx)
	if overlaps.Load() > 0 {
		t.Errorf("Progress was called %d times while another call ran", overlaps.Load())
	}
	finished := 0
	var last files.CaptureProgress
	for i, p := range reports {
		if p.FilesTotal < last.FilesTotal || p.BytesTotal < last.BytesTotal {
			t.Errorf("report %d: totals shrank from %d files, %d bytes to %d, %d", i, last.FilesTotal, last.BytesTotal, p.FilesTotal, p.BytesTotal)
		}
		if p.TotalsFinal {
			finished++
			if p.Scanning || p.FilesTotal != stats.Files || p.BytesTotal != stats.Bytes {
				t.Errorf("the scan finished with %+v; the capture took %d files, %d bytes", p, stats.Files, stats.Bytes)
			}
		}
		if !p.Scanning && finished == 0 {
			t.Errorf("report %d is final before the scan finished: %+v", i, p)
		}
		last = p
	}
	// The scan of a small tree ends long before its capture does.
	if finished != 1 || stats.Files == 0 {
		t.Fatalf("%d reports said the scan finished (want 1) for a capture of %d files", finished, stats.Files)
	}
}

// TestCaptureWithParentEstimatesTotals: a capture with a parent does not
// scan. Its reports carry the parent point's totals as an estimate until
// its walk has seen the whole selection; then one report has the exact
// totals of what it takes (here more than the parent held), and every
// later one keeps them.
func TestCaptureWithParentEstimatesTotals(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	ctx := context.Background()
	src := t.TempDir()
	makeTree(t, src, 5)
	parent, parentStats := backup(t, env.Repo, src, "", format.ID{}, "p1")
	// More entries than the capture's queues hold with one worker, so
	// that the walk cannot end before the first reports.
	const added = 300
	var addedBytes int64
	for i := range added {
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("added-%03d", i)), bytes.Repeat([]byte{byte(i)}, i), 0o640))
		addedBytes += int64(i)
	}

	w, err := env.Repo.NewWriter(ctx, "p1")
	must(t, err)
	var reports []files.CaptureProgress
	_, stats, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{Paths: []string{src}, Parent: parent,
		Params: smallParams, Totals: true, Workers: 1,
		Progress: func(p files.CaptureProgress) { reports = append(reports, p) }})
	must(t, err)
	w.Abort(ctx)
	if stats.Files != parentStats.Files+added || stats.Bytes != parentStats.Bytes+addedBytes {
		t.Fatalf("the capture took %d files, %d bytes; want the parent's %d, %d and the %d added", stats.Files, stats.Bytes, parentStats.Files, parentStats.Bytes, added)
	}
	final := -1
	for i, p := range reports {
		if p.Scanning {
			t.Errorf("report %d says a scan runs: %+v", i, p)
		}
		switch {
		case p.TotalsFinal:
			if final >= 0 {
				t.Errorf("reports %d and %d both say the totals became final", final, i)
			}
			final = i
			fallthrough
		case final >= 0:
			if p.Estimated || p.FilesTotal != stats.Files || p.BytesTotal != stats.Bytes {
				t.Errorf("report %d, with final totals: %+v; the capture took %d files, %d bytes", i, p, stats.Files, stats.Bytes)
			}
		default:
			if !p.Estimated || p.FilesTotal != parentStats.Files || p.BytesTotal != parentStats.Bytes {
				t.Errorf("report %d, before the walk ended: %+v; want the parent's %d files, %d bytes, estimated", i, p, parentStats.Files, parentStats.Bytes)
			}
		}
	}
	if final <= 0 {
		t.Fatalf("want estimated reports and then one with final totals; got %d reports, the final at %d", len(reports), final)
	}
}
