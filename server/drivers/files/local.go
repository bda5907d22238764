package files

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// Local is the driver of filesets on the Haven host itself. Backups and
// restores there are confined to the roots the administrator named at
// start (--local-roots), never the data dir or keys.
type Local struct {
	restorer
}

// NewLocal returns the driver of filesets on the Haven host; hub runs the
// restores of its points onto agents' hosts.
func NewLocal(d *db.DB, localRoots *confine.Roots, hub *Hub) *Local {
	return &Local{restorer{restorePreparer{db: d, localRoots: localRoots}, hub}}
}

func (*Local) Kind() string { return KindLocal }

func (*Local) CheckBackup(context.Context, driver.Backup) error { return nil }

func (*Local) Cleanup(context.Context) error { return nil }

// Backup captures the fileset's include paths into the repository,
// incrementally on the planned parent.
func (l *Local) Backup(ctx context.Context, b driver.Backup) error {
	fs := FilesetOf(b.Asset())
	r, err := b.Repository(ctx)
	if err != nil {
		return err
	}
	w, plan, err := b.Writer(ctx)
	if err != nil {
		return err
	}
	rep := b.Progress()
	started := b.Now()
	root, stats, err := files.Capture(ctx, w, r, files.CaptureOptions{
		Paths: fs.Fileset.IncludePaths, Exclude: fs.Fileset.ExcludeGlobs, Parent: plan.ParentRoot,
		Warn: rep.Warn, Confine: l.localRoots, Totals: true,
		Progress: func(p files.CaptureProgress) {
			rep.Report(ctx, api.JobProgress{FilesDone: p.Files, BytesDone: p.Bytes, FilesTotal: p.FilesTotal, BytesTotal: p.BytesTotal,
				Scanning: p.Scanning, Estimated: p.Estimated}, p.TotalsFinal)
		},
	})
	if err != nil {
		w.Abort(ctx)
		return outsideIsFinal(err)
	}
	return b.Commit(ctx, w, plan, root, driver.PointStats{LogicalBytes: stats.Bytes, Files: stats.Files, Started: started})
}

// outsideIsFinal makes a path outside the allowed roots fail the job for
// good: it stays outside, so a retry would only fail again.
func outsideIsFinal(err error) error {
	if errors.Is(err, confine.ErrOutside) {
		return driver.Failed{Err: err}
	}
	return err
}

// restorer restores file points, to the Haven host itself or through the
// target's agent: a point of either kind may go to a file server of either
// location.
type restorer struct {
	restorePreparer
	hub *Hub
}

func (r restorer) Restore(ctx context.Context, run driver.Restore) error {
	params := run.Params()
	if params.TargetLocation == api.LocationAgent {
		return r.hub.restore(ctx, run, api.JobRestore)
	}
	return r.restoreHere(ctx, run)
}

// restoreHere restores a point onto the Haven host. A retried restore
// resumes: files the interrupted attempt finished are not fetched again.
func (r restorer) restoreHere(ctx context.Context, run driver.Restore) error {
	params, p, j := run.Params(), run.Point(), run.Job()
	for _, d := range restoreDests(params.RestoreRequest, nil) {
		if err := r.localRoots.Check(d.path); err != nil {
			return outsideIsFinal(err)
		}
	}
	if err := checkDestination(targetDir(params.RestoreRequest), p.LogicalBytes); err != nil {
		return driver.Skip{Reason: err.Error()}
	}
	repo, err := run.Repository(ctx)
	if err != nil {
		return err
	}
	root, err := run.Root(ctx)
	if err != nil {
		return err
	}
	rep := run.Progress()
	opts := restoreOptions(params.RestoreRequest)
	opts.Target, opts.Owner, opts.Resume, opts.Warn, opts.Confine = targetDir(params.RestoreRequest), os.Geteuid() == 0, j.Attempt > 1, rep.Warn, r.localRoots
	totals := restoreTotals(params.RestoreRequest, p)
	opts.Progress = func(nfiles, nbytes int64) {
		rep.Report(ctx, totals.with(nfiles, nbytes, false), false)
	}
	st, err := files.Restore(ctx, repo, root, opts)
	if st.Resumed > 0 {
		rep.Note(fmt.Sprintf("resumed: %d files were already restored by an earlier attempt; %d bytes fetched in this attempt", st.Resumed, st.Fetched))
	}
	rep.Report(ctx, totals.with(st.Files, st.Bytes, true), true)
	if errors.Is(err, files.ErrIncomplete) {
		// Each failed entry already reached the warnings through rep.Warn.
		return driver.Failed{Err: err, Point: p.ID}
	}
	return outsideIsFinal(err)
}

// restoreTotal is what a file restore will write, from its point's stats.
// Only a restore of the whole point knows it up front; one narrowed by
// paths or globs leaves it unknown (zero) until its end.
type restoreTotal struct{ files, bytes int64 }

func restoreTotals(req api.RestoreRequest, p api.Point) restoreTotal {
	if len(req.Paths) > 0 || len(req.Include) > 0 || len(req.Exclude) > 0 {
		return restoreTotal{}
	}
	return restoreTotal{files: p.Files, bytes: p.LogicalBytes}
}

// with is the progress of a restore that has written files and bytes; at
// the end, an unknown total becomes what was written.
func (t restoreTotal) with(files, bytes int64, end bool) api.JobProgress {
	if end && t == (restoreTotal{}) {
		t = restoreTotal{files: files, bytes: bytes}
	}
	return api.JobProgress{FilesDone: files, BytesDone: bytes, FilesTotal: t.files, BytesTotal: t.bytes}
}

// RestoreTotals are the files and bytes a restore of a whole point
// writes, as a dispatch records them (zero, unknown, for a restore of
// part of it).
func RestoreTotals(req api.RestoreRequest, p api.Point) (files, bytes int64) {
	t := restoreTotals(req, p)
	return t.files, t.bytes
}
