package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// MaintenanceParams name what a verify or GC job works on.
type MaintenanceParams struct {
	StorageID string   `json:"storage_id"`
	PointIDs  []string `json:"point_ids,omitempty"`
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// runVerify reads back every pack the points (or the whole storage) use.
func (s *Service) runVerify(ctx context.Context, j *api.Job) error {
	var params MaintenanceParams
	if _, err := s.db.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	r, err := s.openRepo(ctx, params.StorageID, nil)
	if err != nil {
		return err
	}
	rep, err := r.Verify(ctx, params.PointIDs)
	if err != nil {
		return err
	}
	_ = s.db.SetProgress(ctx, j.ID, api.JobProgress{BytesDone: rep.Bytes, BytesTotal: rep.Bytes, FilesDone: rep.Chunks})
	if rep.OK() {
		return s.db.FinishJob(ctx, s.pool, j.ID, api.JobSucceeded, "", "")
	}
	var lines []string
	for _, d := range rep.Damaged {
		lines = append(lines, fmt.Sprintf("damaged chunk %s in pack %s: %s; points %s; files %s",
			d.Chunk, d.Pack.Short(), d.Reason, strings.Join(d.Points, ","), strings.Join(d.Files, ",")))
	}
	for p, why := range rep.Unreadable {
		lines = append(lines, fmt.Sprintf("point %s unreadable: %s", p, why))
	}
	_ = s.db.AddWarnings(ctx, j.ID, lines)
	return s.db.FinishJob(ctx, s.pool, j.ID, api.JobFailed, fmt.Sprintf("%d damaged chunks, %d unreadable points", len(rep.Damaged), len(rep.Unreadable)), "")
}

// runGC collects garbage in one storage's repository.
func (s *Service) runGC(ctx context.Context, j *api.Job) error {
	var params MaintenanceParams
	if _, err := s.db.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	r, err := s.openRepo(ctx, params.StorageID, nil)
	if err != nil {
		return err
	}
	rep, err := r.GC(ctx, repo.GCOptions{Grace: s.cfg.GCGrace})
	if err != nil {
		return err
	}
	_ = s.db.AddWarnings(ctx, j.ID, []string{fmt.Sprintf("swept %d chunks (%d bytes), repacked %d packs, deleted %d packs, freed %d bytes",
		rep.SweptChunks, rep.SweptBytes, rep.Repacked, rep.DeletedPacks, rep.FreedBytes)})
	return s.db.FinishJob(ctx, s.pool, j.ID, api.JobSucceeded, "", "")
}
