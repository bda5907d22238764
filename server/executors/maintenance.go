package executors

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// MaintenanceParams name what a verify or GC job works on.
type MaintenanceParams struct {
	StorageID string   `json:"storage_id"`
	PointIDs  []string `json:"point_ids,omitempty"`
}

// maintained opens the repository a verify or GC job works on.
func (s *Engine) maintained(ctx context.Context, j *api.Job) (MaintenanceParams, *repo.Repository, error) {
	var params MaintenanceParams
	if _, err := s.db.JobParams(ctx, j.ID, &params); err != nil {
		return params, nil, err
	}
	r, err := s.repos.Open(ctx, params.StorageID, nil)
	return params, r, err
}

// Verify walks the points (or every point of the storage) and reads back
// every pack they use. A whole-storage verify also holds the catalog
// against the repository: every live point in the catalog must have its
// root there.
func (s *Engine) Verify(ctx context.Context, j *api.Job) error {
	params, r, err := s.maintained(ctx, j)
	if err != nil {
		return err
	}
	rep, err := r.Verify(ctx, params.PointIDs)
	if err != nil {
		return err
	}
	var rootless []string
	if len(params.PointIDs) == 0 {
		if rootless, err = s.rootlessPoints(ctx, r, params.StorageID); err != nil {
			return err
		}
	}
	_ = s.db.SetProgress(ctx, j.ID, api.JobProgress{BytesDone: rep.Bytes, BytesTotal: rep.Bytes, FilesDone: rep.Chunks})
	if rep.OK() && len(rootless) == 0 {
		return nil
	}
	var lines []string
	for _, d := range rep.Damaged {
		lines = append(lines, fmt.Sprintf("damaged chunk %s in pack %s: %s; points %s; files %s",
			d.Chunk, d.Pack.Short(), d.Reason, strings.Join(d.Points, ","), strings.Join(d.Files, ",")))
	}
	for p, why := range rep.Unreadable {
		lines = append(lines, fmt.Sprintf("point %s unreadable: %s", p, why))
	}
	for p, m := range rep.Missing {
		lines = append(lines, fmt.Sprintf("point %s incomplete: %s", p, m))
	}
	for _, p := range rootless {
		lines = append(lines, fmt.Sprintf("point %s is in the catalog but its root is not in the repository", p))
	}
	sort.Strings(lines)
	_ = s.db.AddWarnings(ctx, j.ID, lines)
	return driver.Failed{Err: fmt.Errorf("%d damaged chunks, %d unreadable points, %d incomplete points",
		len(rep.Damaged), len(rep.Unreadable), len(rep.Missing)+len(rootless))}
}

// rootlessPoints lists the storage's live catalog points the repository
// has no root for.
func (s *Engine) rootlessPoints(ctx context.Context, r *repo.Repository, storageID string) ([]string, error) {
	warm, cold, err := s.db.PointsByTier(ctx, storageID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range append(warm, cold...) {
		if _, err := r.Root(ctx, p); errors.Is(err, repo.ErrNoRoot) {
			out = append(out, p)
		} else if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// GC collects garbage in one storage's repository. It waits for the
// storage's import to end, and refuses a storage whose import did not
// succeed: its index lacks packs that GC would take for orphans.
func (s *Engine) GC(ctx context.Context, j *api.Job) error {
	params, r, err := s.maintained(ctx, j)
	if err != nil {
		return err
	}
	imp, err := s.waitForImport(ctx, params.StorageID, "garbage collection")
	if err != nil {
		return err
	}
	if imp.ID != "" && imp.State != api.JobSucceeded {
		return driver.Failed{Err: fmt.Errorf("the import of this storage (job %s) %s before its chunk index was whole: "+
			"import the storage again (haven storages import) before collecting garbage", imp.ID, imp.State)}
	}
	rep, err := r.GC(ctx, repo.GCOptions{Grace: s.gcGrace})
	if err != nil {
		return err
	}
	_ = s.db.AddWarnings(ctx, j.ID, []string{fmt.Sprintf("swept %d chunks (%d bytes), repacked %d packs, deleted %d packs, freed %d bytes",
		rep.SweptChunks, rep.SweptBytes, rep.Repacked, rep.DeletedPacks, rep.FreedBytes)})
	return nil
}
