package executors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// ImportParams name the storage an import job works on: one the request
// (POST /v1/storages/import) found a repository at and added to the
// catalog under the repository's id.
type ImportParams struct {
	StorageID string `json:"storage_id"`
}

// importLockName is the session lock an import holds on its storage for
// its whole length, on any replica.
func importLockName(storageID string) string { return "haven-import:" + storageID }

// importWait is how long a job that waits for an import (or an import
// that waits for a GC) sleeps before it looks again.
const importWait = 5 * time.Second

// Import rebuilds an imported storage's chunk index from the trailers of
// its packs (repo.Rebuild) and adds to the catalog every whole point the
// store records, with its asset as a deleted asset unless the catalog has
// it live. Both steps keep what is there already, so an attempt that a
// crash cut short is finished by River's retry, which indexes only the
// packs and adds only the points the first did not. Points are added
// last, in one transaction: a point the catalog lists always has its
// packs indexed. The result counts what the finishing attempt added; the
// job's warnings name the objects it could not use.
func (e *Engine) Import(ctx context.Context, j *api.Job) error {
	var params ImportParams
	if _, err := e.db.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	release, ok, err := e.jobs.Locks().TryLock(ctx, importLockName(params.StorageID))
	if err != nil {
		return err
	}
	if !ok {
		return driver.Wait{Reason: "another import of this storage is running", After: importWait}
	}
	defer release()
	r, err := e.repos.Open(ctx, params.StorageID, nil)
	if err != nil {
		return err
	}
	progress := e.jobs.Progress(j.ID)
	var last api.JobProgress
	rebuilt, err := r.Rebuild(ctx, func(p repo.RebuildProgress) {
		last = api.JobProgress{FilesDone: p.PacksDone, FilesTotal: p.PacksTotal, BytesDone: p.BytesDone, BytesTotal: p.BytesTotal,
			PointsDone: p.PointsDone, PointsTotal: p.PointsTotal}
		progress.Report(ctx, last, false)
	})
	if errors.Is(err, repo.ErrGCRunning) {
		return driver.Wait{Reason: "a garbage collection of this storage is running: the import starts after it", After: importWait}
	}
	if err != nil {
		return err
	}
	progress.Report(ctx, last, true)
	found := make([]db.FoundPoint, len(rebuilt.Points))
	for i, p := range rebuilt.Points {
		found[i] = db.FoundPoint{ID: p.PointID, Committed: p.Committed, Entry: p.Catalog, RecordVersion: p.RecordVersion}
	}
	imported, err := e.db.ImportPoints(ctx, params.StorageID, found)
	if err != nil {
		return err
	}
	assets := map[string]bool{}
	for _, p := range rebuilt.Points {
		if _, skipped := imported.Skipped[p.PointID]; !skipped {
			if pt, err := e.db.GetPoint(ctx, p.PointID); err == nil {
				assets[pt.AssetID] = true
			}
		}
	}
	for a := range assets {
		e.jobs.QueueRetention(context.WithoutCancel(ctx), a)
	}

	var skipped []string
	for _, sk := range rebuilt.Skipped {
		skipped = append(skipped, fmt.Sprintf("skipped %s: %s", sk.Object, sk.Reason))
	}
	for id, reason := range imported.Skipped {
		skipped = append(skipped, fmt.Sprintf("skipped %s%s: %s", repo.PointsPrefix, id, reason))
	}
	sort.Strings(skipped)
	if err := e.db.AddWarnings(ctx, j.ID, skipped); err != nil {
		return err
	}
	count := func(n int64) string { return strconv.FormatInt(n, 10) }
	result := map[string]string{
		api.ImportResultPacks: count(rebuilt.Packs), api.ImportResultChunks: count(rebuilt.Chunks), api.ImportResultKnownPacks: count(rebuilt.KnownPacks),
		api.ImportResultPoints: count(imported.Points), api.ImportResultKnownPoints: count(imported.KnownPoints),
		api.ImportResultAssets: count(imported.Assets), api.ImportResultSkipped: count(int64(len(skipped))),
	}
	if err := e.db.SetJobResult(ctx, e.db.Pool, j.ID, result); err != nil {
		return err
	}
	e.log.Warn("storage imported", "storage_id", params.StorageID, "job_id", j.ID, "points", imported.Points,
		"known_points", imported.KnownPoints, "assets", imported.Assets, "packs", rebuilt.Packs, "chunks", rebuilt.Chunks,
		"skipped", len(skipped))
	return nil
}

// waitForImport keeps work on a storage (a backup, a GC) from starting
// while the storage's import is queued or running: until it ends, the
// chunk index lacks packs the store holds. A GC would take those packs
// for orphans and delete them; a backup would store again chunks it
// cannot find, duplicating data (never damaging it), so it waits too.
func (e *Engine) waitForImport(ctx context.Context, storageID, what string) (api.Job, error) {
	imp, err := e.db.LatestImport(ctx, storageID)
	if errors.Is(err, db.ErrNotFound) {
		return imp, nil
	}
	if err != nil {
		return imp, err
	}
	if !imp.Finished() {
		return imp, driver.Wait{Reason: fmt.Sprintf("the storage is being imported (job %s): the %s starts when that ends", imp.ID, what), After: importWait}
	}
	return imp, nil
}
