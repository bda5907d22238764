package jobs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/schedule"
)

// progressReporter writes a job's progress at most once a second.
type progressReporter struct {
	s        *Service
	jobID    string
	mu       sync.Mutex
	last     time.Time
	warnings []string
}

func (p *progressReporter) progress(ctx context.Context, pr api.JobProgress, force bool) {
	p.mu.Lock()
	if !force && time.Since(p.last) < time.Second {
		p.mu.Unlock()
		return
	}
	p.last = time.Now()
	p.mu.Unlock()
	_ = p.s.db.SetProgress(context.WithoutCancel(ctx), p.jobID, pr)
	p.flushWarnings(ctx)
}

// flushWarnings writes the warnings not yet written, for a job that ends
// without a last progress report (a failure).
func (p *progressReporter) flushWarnings(ctx context.Context) {
	p.mu.Lock()
	warnings := p.warnings
	p.warnings = nil
	p.mu.Unlock()
	_ = p.s.db.AddWarnings(context.WithoutCancel(ctx), p.jobID, warnings)
}

// note records a warning that is not about one path.
func (p *progressReporter) note(msg string) {
	p.mu.Lock()
	p.warnings = append(p.warnings, msg)
	p.mu.Unlock()
}

func (p *progressReporter) warn(path string, err error) {
	p.mu.Lock()
	p.warnings = append(p.warnings, fmt.Sprintf("%s: %v", path, err))
	p.mu.Unlock()
}

// runBackup backs up a fileset on the server host (agent file servers are
// handed to their agent).
func (s *Service) runBackup(ctx context.Context, j *api.Job) error {
	a, err := s.loadAsset(ctx, j.AssetID)
	if err != nil {
		return err
	}
	if a.retired {
		return skipError{"the asset was deleted after this backup was queued"}
	}
	if j.Trigger == api.TriggerScheduled && j.Slot != nil {
		deadline := schedule.Deadline(&a.policy.PolicySpec, schedule.Slot{At: *j.Slot, Type: j.BackupType})
		if now := s.cfg.Now(); now.After(deadline) {
			return skipError{fmt.Sprintf("could not start within the policy's window: slot %s, deadline %s, now %s",
				j.Slot.Format(time.RFC3339), deadline.Format(time.RFC3339), now.Format(time.RFC3339))}
		}
	}
	release, err := s.assetLock(ctx, j.AssetID)
	if err != nil {
		return err
	}
	defer release()

	if a.vm != nil {
		return s.runVMBackup(ctx, j, a)
	}
	if a.server.Location == api.LocationAgent {
		return s.agents.runBackup(ctx, j, a)
	}
	r, err := s.openRepo(ctx, a.storageID, s.uploadLimiter(j, &a.policy))
	if err != nil {
		return err
	}
	w, plan, err := s.backupWriter(ctx, j, r)
	if err != nil {
		return err
	}
	rep := &progressReporter{s: s, jobID: j.ID}
	started := s.cfg.Now()
	root, stats, err := files.Capture(ctx, w, r, files.CaptureOptions{
		Paths: a.fileset.IncludePaths, Exclude: a.fileset.ExcludeGlobs, Parent: plan.parentRoot,
		Warn: rep.warn, Confine: s.cfg.LocalRoots,
		Progress: func(nfiles, nbytes int64) {
			rep.progress(ctx, api.JobProgress{FilesDone: nfiles, BytesDone: nbytes}, false)
		},
	})
	if err != nil {
		w.Abort(ctx)
		return err
	}
	return s.commitPoint(ctx, j, w, a.storageID, plan, root, started, pointStats{
		logical: stats.Bytes, files: stats.Files, write: stats.Repo,
	}, rep)
}

type backupPlan struct {
	kind        string
	parentPoint string
	parentRoot  format.ID
}

// backupWriter plans a backup and opens its writer on the parent point; a
// parent that GC took meanwhile makes it a full backup.
func (s *Service) backupWriter(ctx context.Context, j *api.Job, r *repo.Repository) (*repo.Writer, backupPlan, error) {
	plan, err := s.planBackup(ctx, j, r)
	if err != nil {
		return nil, plan, err
	}
	w, err := r.NewWriter(ctx, plan.parentPoint)
	if errors.Is(err, index.ErrParentGone) {
		plan = backupPlan{kind: api.BackupFull}
		w, err = r.NewWriter(ctx, "")
	}
	return w, plan, err
}

// planBackup picks full or incremental: the first backup of an asset is
// always full; a scheduled run follows its slot's type; an on-demand run
// is incremental once a point exists.
func (s *Service) planBackup(ctx context.Context, j *api.Job, r *repo.Repository) (backupPlan, error) {
	latest, err := s.db.LatestPoint(ctx, j.AssetID)
	if errors.Is(err, db.ErrNotFound) {
		return backupPlan{kind: api.BackupFull}, nil
	}
	if err != nil {
		return backupPlan{}, err
	}
	if j.BackupType == api.BackupFull && j.Trigger == api.TriggerScheduled {
		return backupPlan{kind: api.BackupFull}, nil
	}
	root, err := r.Index().Root(ctx, latest.ID)
	if err != nil {
		// The catalog has it but the repository lost it: start afresh.
		s.log.Warn("parent point has no root; running a full backup", "point_id", latest.ID, "error", err.Error())
		return backupPlan{kind: api.BackupFull}, nil
	}
	return backupPlan{kind: api.BackupIncremental, parentPoint: latest.ID, parentRoot: root}, nil
}

type pointStats struct {
	logical, files int64
	write          repo.WriteStats
}

// commitPoint makes the point visible: the engine's root, the catalog row
// and the job's success are committed in one transaction.
func (s *Service) commitPoint(ctx context.Context, j *api.Job, w *repo.Writer, storageID string, plan backupPlan, root format.ID,
	started time.Time, st pointStats, rep *progressReporter) error {
	pointID := uuid.NewString()
	if err := w.Flush(ctx); err != nil {
		w.Abort(ctx)
		return err
	}
	// The final progress and the warnings are written before the job
	// shows as succeeded: whoever sees it done sees them too.
	rep.progress(ctx, api.JobProgress{FilesDone: st.files, FilesTotal: st.files, BytesDone: st.logical, BytesTotal: st.logical}, true)
	ws := w.Stats()
	p := api.Point{ID: pointID, AssetID: j.AssetID, StorageID: storageID, Kind: plan.kind, ParentID: plan.parentPoint,
		StartedAt: started, CompletedAt: s.cfg.Now(), LogicalBytes: st.logical, NewBytes: ws.NewBytes, StoredBytes: ws.StoredBytes, Files: st.files, JobID: j.ID}
	err := w.CommitWith(ctx, pointID, root, func(tx pgx.Tx) error {
		if err := s.db.InsertPoint(ctx, tx, p); err != nil {
			return err
		}
		return s.db.FinishJob(ctx, tx, j.ID, api.JobSucceeded, "", pointID)
	})
	if err != nil {
		w.Abort(ctx)
		return err
	}
	s.QueueRetention(context.WithoutCancel(ctx), j.AssetID)
	return nil
}
