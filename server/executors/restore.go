package executors

import (
	"context"
	"errors"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// PrepareRestore checks a restore request against the catalog, then hands
// it to the driver of the point's asset, which checks it against the
// asset and the target, before anything is queued: refusals come back at
// once (422 with the reason).
func (e *Engine) PrepareRestore(ctx context.Context, req api.RestoreRequest) (*driver.RestoreParams, api.Point, error) {
	p, err := e.db.GetPoint(ctx, req.PointID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && p.DeletedAt != nil) {
		return nil, p, api.Unprocessable("point_id", "recovery point %q does not exist", req.PointID)
	}
	if err != nil {
		return nil, p, err
	}
	// A deleted asset's points stay restorable: the registry falls back to
	// what was recorded when it was retired.
	src, err := e.drivers.Load(ctx, p.AssetID)
	if errors.Is(err, db.ErrNotFound) {
		// Only an asset deleted before deleted assets were recorded.
		return nil, p, api.Unprocessable("point_id", "the point's asset %s was deleted before this server version, which keeps what its points need; "+
			"the point cannot be restored through the API", p.AssetID)
	}
	if err != nil {
		return nil, p, err
	}
	d, err := e.drivers.For(src.Kind)
	if err != nil {
		return nil, p, api.Unprocessable("point_id", "%v", err)
	}
	params, err := d.PrepareRestore(ctx, req, p, src)
	return params, p, err
}

// PlanRestore is a restore's dry run: PrepareRestore's checks, then the
// plan of the point's driver (driver.Planner). Nothing is queued. A plan
// only the target's host can compute comes back nil, with the parameters
// and point of the restore_plan job that computes it there
// (driver.ErrPlanOnTarget).
func (e *Engine) PlanRestore(ctx context.Context, req api.RestoreRequest) (*api.RestorePlan, *driver.RestoreParams, api.Point, error) {
	params, p, err := e.PrepareRestore(ctx, req)
	if err != nil {
		return nil, nil, p, err
	}
	a, d, err := e.drivers.LoadServed(ctx, p.AssetID)
	if err != nil {
		return nil, nil, p, err
	}
	planner, ok := d.(driver.Planner)
	if !ok {
		return nil, nil, p, api.Unprocessable("dry_run", "restores of %s assets have no dry run", a.Kind)
	}
	rp, err := e.repos.Open(ctx, p.StorageID, nil)
	if err != nil {
		return nil, nil, p, err
	}
	root, err := rp.Root(ctx, p.ID)
	if err != nil {
		return nil, nil, p, err
	}
	plan, err := planner.PlanRestore(ctx, params, p, rp, root)
	if errors.Is(err, driver.ErrPlanOnTarget) {
		return nil, params, p, nil
	}
	if plan != nil {
		plan.PointID = p.ID
	}
	return plan, nil, p, err
}

// Restore runs a restore job through the driver of the point's asset.
func (e *Engine) Restore(ctx context.Context, j *api.Job) error {
	run, d, err := e.restoreRun(ctx, j)
	if err != nil {
		return err
	}
	return d.Restore(ctx, run)
}

// PlanOnTarget runs a restore_plan job: a restore's dry run on the host
// of its target, through the point's driver (driver.Planner).
func (e *Engine) PlanOnTarget(ctx context.Context, j *api.Job) error {
	run, d, err := e.restoreRun(ctx, j)
	if err != nil {
		return err
	}
	planner, ok := d.(driver.Planner)
	if !ok {
		return driver.Failed{Err: fmt.Errorf("restores of %s assets have no dry run", run.asset.Kind)}
	}
	return planner.PlanOnTarget(ctx, run)
}

// restoreRun reads what a restore job (or its dry run) works on, and the
// driver of the point's asset.
func (e *Engine) restoreRun(ctx context.Context, j *api.Job) (*restoreRun, driver.Driver, error) {
	var params driver.RestoreParams
	if _, err := e.db.JobParams(ctx, j.ID, &params); err != nil {
		return nil, nil, err
	}
	p, err := e.db.GetPoint(ctx, params.PointID)
	if err != nil {
		return nil, nil, fmt.Errorf("recovery point %s: %w", params.PointID, err)
	}
	a, d, err := e.drivers.LoadServed(ctx, p.AssetID)
	if err != nil {
		return nil, nil, err
	}
	return &restoreRun{e: e, job: j, params: &params, point: p, asset: a, progress: e.jobs.Progress(j.ID)}, d, nil
}

// restoreRun is a restore attempt as its driver sees it (driver.Restore).
type restoreRun struct {
	e        *Engine
	job      *api.Job
	params   *driver.RestoreParams
	point    api.Point
	asset    *driver.Asset
	progress driver.Progress
}

func (r *restoreRun) Job() *api.Job                 { return r.job }
func (r *restoreRun) Params() *driver.RestoreParams { return r.params }
func (r *restoreRun) Point() api.Point              { return r.point }
func (r *restoreRun) Asset() *driver.Asset          { return r.asset }
func (r *restoreRun) Progress() driver.Progress     { return r.progress }

func (r *restoreRun) Repository(ctx context.Context) (*repo.Repository, error) {
	return r.e.repos.Open(ctx, r.point.StorageID, nil)
}

func (r *restoreRun) Root(ctx context.Context) (format.ID, error) {
	rp, err := r.Repository(ctx)
	if err != nil {
		return format.ID{}, err
	}
	return rp.Root(ctx, r.point.ID)
}

func (r *restoreRun) SetResult(ctx context.Context, result map[string]string) error {
	return r.e.db.SetJobResult(ctx, r.e.db.Pool, r.job.ID, result)
}
