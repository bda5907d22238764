package jobs

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// Commit makes a point captured through a local writer visible (see
// commit). It flushes w first, and aborts it on failure.
func (s *Service) Commit(ctx context.Context, j *api.Job, w *repo.Writer, storageID string, plan driver.Plan, root format.ID,
	st driver.PointStats, rep driver.Progress) error {
	if err := w.Flush(ctx); err != nil {
		w.Abort(ctx)
		return err
	}
	// The final progress and the warnings are written before the job
	// shows as succeeded: whoever sees it done sees them too.
	rep.Report(ctx, api.JobProgress{FilesDone: st.Files, FilesTotal: st.Files, BytesDone: st.LogicalBytes, BytesTotal: st.LogicalBytes}, true)
	ws := w.Stats()
	_, err := s.commit(ctx, j.ID, j.AssetID, storageID, plan, st, true,
		func(context.Context, db.Querier) (int64, int64, error) { return ws.NewBytes, ws.StoredBytes, nil },
		func(pointID string, also repo.CatalogFunc) error { return w.CommitWith(ctx, pointID, root, also) })
	if err != nil {
		w.Abort(ctx)
	}
	return err
}

// CommitStep commits a point that a job captures as one step of its
// work, for an asset other than the job's own (a failback captures each
// failed-over instance as a point of its protected VM): the job goes on.
func (s *Service) CommitStep(ctx context.Context, jobID, assetID, storageID string, w *repo.Writer, plan driver.Plan, root format.ID,
	st driver.PointStats) (string, error) {
	if err := w.Flush(ctx); err != nil {
		w.Abort(ctx)
		return "", err
	}
	ws := w.Stats()
	id, err := s.commit(ctx, jobID, assetID, storageID, plan, st, false,
		func(context.Context, db.Querier) (int64, int64, error) { return ws.NewBytes, ws.StoredBytes, nil },
		func(pointID string, also repo.CatalogFunc) error { return w.CommitWith(ctx, pointID, root, also) })
	if err != nil {
		w.Abort(ctx)
	}
	return id, err
}

// CommitSession makes a point captured through a backup session visible
// (an agent's: its uploads reached any replica, and it reports its root).
func (s *Service) CommitSession(ctx context.Context, c driver.SessionCommit) (string, error) {
	j, err := s.db.GetJob(ctx, c.JobID)
	if err != nil {
		return "", err
	}
	return s.commit(ctx, j.ID, j.AssetID, c.StorageID, c.Plan, c.Stats, !c.KeepJob, c.StoredBytes,
		func(pointID string, also repo.CatalogFunc) error {
			return c.Repository.CommitSession(ctx, c.SessionID, pointID, c.Root, also)
		})
}

// commit is the one point-commit path: the repository's commit (the
// whole-point check, the root, the store's point record) runs the catalog
// row and the job's success in its transaction, so the point, its row and
// the job's outcome become visible together or not at all. The point's
// record in the store keeps its catalog entry (db.NewPointEntry), from
// which a storage import rebuilds the catalog. Retention then runs for the
// asset. finishJob false leaves the job running (the point is a step of
// it).
func (s *Service) commit(ctx context.Context, jobID, assetID, storageID string, plan driver.Plan, st driver.PointStats, finishJob bool,
	storedBytes func(context.Context, db.Querier) (int64, int64, error),
	commitRepo func(pointID string, also repo.CatalogFunc) error) (string, error) {
	pointID := uuid.NewString()
	var newB int64
	err := commitRepo(pointID, func(tx pgx.Tx) ([]byte, error) {
		var storedB int64
		var err error
		newB, storedB, err = storedBytes(ctx, tx)
		if err != nil {
			return nil, err
		}
		p := api.Point{ID: pointID, AssetID: assetID, StorageID: storageID, Kind: plan.Kind, ParentID: plan.ParentPoint,
			StartedAt: st.Started, CompletedAt: s.cfg.Now(), LogicalBytes: st.LogicalBytes, NewBytes: newB, StoredBytes: storedB,
			Files: st.Files, JobID: jobID, LogStart: st.LogStart, LogEnd: st.LogEnd, Database: st.Database}
		if err := s.db.InsertPoint(ctx, tx, p); err != nil {
			return nil, err
		}
		if finishJob {
			if err := s.db.FinishJob(ctx, tx, jobID, api.JobSucceeded, "", pointID); err != nil {
				return nil, err
			}
		}
		return s.db.NewPointEntry(ctx, tx, p)
	})
	if err != nil {
		return "", err
	}
	if finishJob {
		s.ended.Fire()
	}
	s.cfg.Observer.PointCommitted(st.LogicalBytes, newB)
	s.QueueRetention(context.WithoutCancel(ctx), assetID)
	return pointID, nil
}
