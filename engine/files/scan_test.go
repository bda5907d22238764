package files_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestCaptureTotalsMatchWhatItTakes: the scan beside a capture counts
// exactly the files and bytes the capture takes (its excludes, a hardlink
// once, no symlinks or sparse holes beyond the files' sizes), its totals
// only grow, the one report with ScanFinished is the first with final
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
		if p.ScanFinished {
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
