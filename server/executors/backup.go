package executors

import (
	"context"
	"errors"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/schedule"
)

// Backup runs a backup job: the asset's driver checks it, then captures
// under the asset's lock (never two backups of one asset at once, on any
// replica) and commits the point. A scheduled run that cannot start within
// its slot's window is skipped, and so is a backup of an asset deleted
// after it was queued. A backup waits while its storage is being
// imported (waitForImport).
func (e *Engine) Backup(ctx context.Context, j *api.Job) error {
	a, err := e.drivers.Load(ctx, j.AssetID)
	if err != nil {
		return err
	}
	if a.Retired {
		return driver.Skip{Reason: "the asset was deleted after this backup was queued"}
	}
	if j.Trigger == api.TriggerScheduled && j.Slot != nil {
		deadline := schedule.Deadline(&a.Policy.PolicySpec, schedule.Slot{At: *j.Slot, Type: j.BackupType})
		if now := e.jobs.Now(); now.After(deadline) {
			return driver.Skipf("could not start within the policy's window: slot %s, deadline %s, now %s",
				j.Slot.Format(time.RFC3339), deadline.Format(time.RFC3339), now.Format(time.RFC3339))
		}
	}
	if _, err := e.waitForImport(ctx, a.StorageID, "backup"); err != nil {
		return err
	}
	d, err := e.drivers.For(a.Kind)
	if err != nil {
		return err
	}
	b := &backupRun{e: e, job: j, asset: a, progress: e.jobs.Progress(j.ID)}
	if err := d.CheckBackup(ctx, b); err != nil {
		return err
	}
	release, err := driver.LockAsset(ctx, e.jobs.Locks(), j.AssetID)
	if err != nil {
		return err
	}
	defer release()
	return d.Backup(ctx, b)
}

// backupRun is a backup attempt as its driver sees it (driver.Backup).
type backupRun struct {
	e        *Engine
	job      *api.Job
	asset    *driver.Asset
	progress driver.Progress
}

func (b *backupRun) Job() *api.Job             { return b.job }
func (b *backupRun) Asset() *driver.Asset      { return b.asset }
func (b *backupRun) Progress() driver.Progress { return b.progress }
func (b *backupRun) Now() time.Time            { return b.e.jobs.Now() }

func (b *backupRun) Repository(ctx context.Context) (*repo.Repository, error) {
	return b.e.repos.Open(ctx, b.asset.StorageID, b.e.repos.UploadLimiter(b.job, &b.asset.Policy))
}

func (b *backupRun) Plan(ctx context.Context) (driver.Plan, error) {
	r, err := b.Repository(ctx)
	if err != nil {
		return driver.Plan{}, err
	}
	latest, err := b.e.db.LatestPoint(ctx, b.job.AssetID)
	if errors.Is(err, db.ErrNotFound) {
		return driver.Plan{Kind: api.BackupFull}, nil
	}
	if err != nil {
		return driver.Plan{}, err
	}
	// A scheduled full slot, or a backup now that asked for a full one.
	if b.job.BackupType == api.BackupFull {
		return driver.Plan{Kind: api.BackupFull}, nil
	}
	root, err := r.Root(ctx, latest.ID)
	if err != nil {
		// The catalog has it but the repository lost it: start afresh.
		b.e.log.Warn("parent point has no root; running a full backup", "point_id", latest.ID, "error", err.Error())
		return driver.Plan{Kind: api.BackupFull}, nil
	}
	return driver.Plan{Kind: api.BackupIncremental, ParentPoint: latest.ID, ParentRoot: root}, nil
}

func (b *backupRun) Writer(ctx context.Context) (*repo.Writer, driver.Plan, error) {
	r, err := b.Repository(ctx)
	if err != nil {
		return nil, driver.Plan{}, err
	}
	plan, err := b.Plan(ctx)
	if err != nil {
		return nil, plan, err
	}
	w, err := r.NewWriter(ctx, plan.ParentPoint)
	if errors.Is(err, repo.ErrParentGone) {
		plan = driver.Plan{Kind: api.BackupFull}
		w, err = r.NewWriter(ctx, "")
	}
	return w, plan, err
}

func (b *backupRun) Commit(ctx context.Context, w *repo.Writer, plan driver.Plan, root format.ID, st driver.PointStats) error {
	return b.e.jobs.Commit(ctx, b.job, w, b.asset.StorageID, plan, root, st, b.progress)
}

func (b *backupRun) Queue(ctx context.Context, n db.NewJob) error {
	_, _, err := b.e.jobs.Enqueue(ctx, n)
	return err
}
