package files

import (
	"context"
	"io/fs"
	"sync"
)

// CaptureProgress is a capture's progress: what it has finished, and the
// totals of the selection: for a full backup as its concurrent scan has
// counted them so far, for a backup with a parent the parent point's
// until the capture's own walk has seen the whole selection.
type CaptureProgress struct {
	// Files and Bytes are the regular files finished and their sizes.
	Files, Bytes int64
	// FilesTotal and BytesTotal are the regular files the capture will
	// take (a hardlinked inode once) and their sizes, as counted so far.
	// Zero without CaptureOptions.Totals.
	FilesTotal, BytesTotal int64
	// Scanning: the scan has not walked the whole selection yet, so the
	// totals are still growing. It stays true if the capture ends first.
	Scanning bool
	// Estimated: the totals are the parent point's, which the selection
	// may have outgrown or shrunk from, until the capture's walk ends. It
	// stays true if the capture ends first.
	Estimated bool
	// TotalsFinal marks the one report made when the totals become
	// exact (the scan or the capture's walk completes): the first with
	// final totals, which a rate-limited reporter should write at once
	// rather than drop.
	TotalsFinal bool
}

// scanPublishEvery is how many scanned entries pass between publications
// of the growing totals.
const scanPublishEvery = 256

// progressTracker joins the capture's finished counts and the totals
// (scanned, or estimated and then walked) and hands them to
// CaptureOptions.Progress, one call at a time.
type progressTracker struct {
	mu sync.Mutex
	fn func(CaptureProgress)
	p  CaptureProgress
}

func newProgressTracker(opts CaptureOptions) *progressTracker {
	return &progressTracker{fn: opts.Progress, p: CaptureProgress{Scanning: opts.Totals}}
}

// done records what the capture has finished and reports it.
func (t *progressTracker) done(files, bytes int64) {
	if t.fn == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Files, t.p.Bytes = files, bytes
	t.fn(t.p)
}

// estimate starts the totals from the parent point's, for a capture that
// does not scan; they ride along with the first done.
func (t *progressTracker) estimate(files, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.FilesTotal, t.p.BytesTotal = files, bytes
	t.p.Scanning, t.p.Estimated = false, true
}

// totals records counted totals; the final ones are reported at once,
// the growing ones ride along with the next done.
func (t *progressTracker) totals(files, bytes int64, final bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.FilesTotal, t.p.BytesTotal = files, bytes
	if !final {
		return
	}
	t.p.Scanning, t.p.Estimated = false, false
	if t.fn != nil {
		t.p.TotalsFinal = true
		t.fn(t.p)
		t.p.TotalsFinal = false
	}
}

// scanTotals walks the capture's selection doing only lstat, and counts
// the regular files it holds and their sizes as the capture will record
// them: a file with several links counts once, at its first path. It
// keeps counts (and the identities of multiply-linked inodes, as the
// capture does), never paths. It stops early, without final totals, when
// ctx ends.
func scanTotals(ctx context.Context, roots []string, opts CaptureOptions, t *progressTracker) {
	var files, bytes, seen int64
	links := map[[2]uint64]struct{}{}
	sel := treeSelection{exclude: opts.Exclude, confine: opts.Confine}
	err := sel.walk(ctx, roots, func(_, _ string, info fs.FileInfo) (bool, error) {
		if seen++; seen%scanPublishEvery == 0 {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			t.totals(files, bytes, false)
		}
		st, ok := statOf(info)
		switch {
		case !ok:
			return false, nil // the capture skips it too
		case info.Mode().IsDir():
			return true, nil
		case !info.Mode().IsRegular():
			return false, nil
		}
		if st.nlink > 1 {
			key := [2]uint64{st.device, st.inode}
			if _, ok := links[key]; ok {
				return false, nil // a hardlink: recorded without content
			}
			links[key] = struct{}{}
		}
		files++
		bytes += info.Size()
		return false, nil
	})
	if err == nil {
		t.totals(files, bytes, true)
	}
}
