package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// RestoreParams are stored with a restore job.
type RestoreParams struct {
	api.RestoreRequest
	// TargetLocation is where the target file server runs (server or agent).
	TargetLocation string `json:"target_location"`
}

// PrepareRestore checks a restore request against the catalog and the
// destination before anything is queued, so refusals come back at once
// (422 with the reason) and no byte moves for a restore that cannot work.
func (s *Service) PrepareRestore(ctx context.Context, req api.RestoreRequest) (*RestoreParams, api.Point, error) {
	p, err := s.db.GetPoint(ctx, req.PointID)
	if errors.Is(err, db.ErrNotFound) || (err == nil && p.DeletedAt != nil) {
		return nil, p, api.Unprocessable("point_id", "recovery point %q does not exist", req.PointID)
	}
	if err != nil {
		return nil, p, err
	}
	// A deleted asset's points stay restorable: loadAsset falls back to
	// what was recorded when it was retired.
	src, err := s.loadAsset(ctx, p.AssetID)
	if errors.Is(err, db.ErrNotFound) {
		// Only an asset deleted before deleted assets were recorded.
		return nil, p, api.Unprocessable("point_id", "the point's asset %s was deleted before this server version, which keeps what its points need; "+
			"the point cannot be restored through the API", p.AssetID)
	}
	if err != nil {
		return nil, p, err
	}
	if src.vm != nil {
		params, err := s.prepareVMRestore(ctx, req, p, src)
		return params, p, err
	}
	if req.VM != nil {
		return nil, p, api.Unprocessable("vm", "the point is a file point, not a VM point")
	}
	if req.TargetFileServerID == "" {
		req.TargetFileServerID = src.server.ID
	}
	tgtObj, err := s.db.Get(ctx, db.FileServers, req.TargetFileServerID)
	if errors.Is(err, db.ErrNotFound) {
		if req.TargetFileServerID == src.server.ID {
			return nil, p, api.Unprocessable("target_file_server_id", "the point's file server %q was deleted: name a %s file server to restore to",
				src.server.Name, src.server.OS)
		}
		return nil, p, api.Unprocessable("target_file_server_id", "file server %q does not exist", req.TargetFileServerID)
	}
	if err != nil {
		return nil, p, err
	}
	var tgt api.FileServer
	if err := jsonUnmarshal(tgtObj.Spec, &tgt.FileServerSpec); err != nil {
		return nil, p, err
	}
	req.TargetFileServerID = tgtObj.ID
	if tgt.OS != src.server.OS {
		return nil, p, api.Unprocessable("target_file_server_id", "the point comes from a %s file server; it can only be restored to %s", src.server.OS, src.server.OS)
	}
	params := &RestoreParams{RestoreRequest: req, TargetLocation: tgt.Location}
	if err := s.checkRestoreRoots(ctx, req, src.fileset.IncludePaths, tgtObj.ID, tgt.FileServerSpec); err != nil {
		return nil, p, err
	}
	if tgt.Location == api.LocationServer {
		if err := checkDestination(targetDir(req), p.LogicalBytes); err != nil {
			return nil, p, err
		}
	}
	return params, p, nil
}

// restoreDest is a directory a restore writes under, and the request
// field that names it.
type restoreDest struct{ field, path string }

// restoreDests are the directories a file restore writes under: its
// target path, or, restoring to the original locations, the paths it
// restores (all of the source's include paths when none are named).
func restoreDests(req api.RestoreRequest, sourcePaths []string) []restoreDest {
	if req.TargetPath != "" && req.TargetPath != "/" {
		return []restoreDest{{"target_path", req.TargetPath}}
	}
	var out []restoreDest
	for i, p := range req.Paths {
		out = append(out, restoreDest{"paths[" + strconv.Itoa(i) + "]", p})
	}
	if len(req.Paths) == 0 {
		for _, p := range sourcePaths {
			out = append(out, restoreDest{"target_path", p})
		}
	}
	return out
}

// checkRestoreRoots refuses a restore that would write outside what the
// target host allows: on the Haven host, the server's --local-roots (never
// its data dir or keys); on an agent's host, the include paths of its
// filesets and its restore_roots (and the agent checks its own
// --restore-roots again on its side).
func (s *Service) checkRestoreRoots(ctx context.Context, req api.RestoreRequest, sourcePaths []string, targetID string, tgt api.FileServerSpec) error {
	dests := restoreDests(req, sourcePaths)
	if tgt.Location == api.LocationServer {
		for _, d := range dests {
			if err := s.cfg.LocalRoots.Check(d.path); err != nil {
				return api.Unprocessable(d.field, "restoring onto the Haven host: %v", err)
			}
		}
		return nil
	}
	allowed, err := s.db.IncludePathsOn(ctx, targetID)
	if err != nil {
		return err
	}
	allowed = append(allowed, tgt.RestoreRoots...)
	for _, d := range dests {
		if !slices.ContainsFunc(allowed, func(root string) bool { return api.PathWithin(d.path, root) }) {
			return api.Unprocessable(d.field, "%s is outside what file server %q allows restores to (the include paths of its filesets and its restore_roots: %s)",
				d.path, tgt.Name, strings.Join(allowed, ", "))
		}
	}
	return nil
}

func targetDir(req api.RestoreRequest) string {
	if req.TargetPath == "" {
		return "/"
	}
	return req.TargetPath
}

// checkDestination refuses a destination that is not a writable directory
// (or cannot become one) or lacks the space the point needs.
func checkDestination(dir string, need int64) error {
	if !filepath.IsAbs(dir) {
		return api.Unprocessable("target_path", "%s is not an absolute path on the server host", dir)
	}
	probe := dir
	for {
		info, err := os.Stat(probe)
		if err == nil {
			if !info.IsDir() {
				return api.Unprocessable("target_path", "%s exists and is not a directory", probe)
			}
			break
		}
		if !errors.Is(err, os.ErrNotExist) {
			return api.Unprocessable("target_path", "%s: %v", probe, err)
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			return api.Unprocessable("target_path", "no existing directory above %s", dir)
		}
		probe = parent
	}
	if err := checkWritable(probe); err != nil {
		return api.Unprocessable("target_path", "%s is not writable by the server: %v", probe, err)
	}
	free, err := freeBytes(probe)
	if err != nil {
		return api.Unprocessable("target_path", "cannot read free space of %s: %v", probe, err)
	}
	if free < need {
		return api.Unprocessable("target_path", "%s has %d bytes free; the restore needs %d", probe, free, need)
	}
	return nil
}

// runRestore restores a point on the server host. A retried restore
// resumes: files the interrupted attempt finished are not fetched again.
func (s *Service) runRestore(ctx context.Context, j *api.Job) error {
	var params RestoreParams
	if _, err := s.db.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	p, err := s.db.GetPoint(ctx, params.PointID)
	if err != nil {
		return fmt.Errorf("recovery point %s: %w", params.PointID, err)
	}
	if params.VM != nil {
		return s.runVMRestore(ctx, j, &params, p)
	}
	if params.TargetLocation == api.LocationAgent {
		return s.agents.runRestore(ctx, j, &params, p)
	}
	for _, d := range restoreDests(params.RestoreRequest, nil) {
		if err := s.cfg.LocalRoots.Check(d.path); err != nil {
			return err
		}
	}
	if err := checkDestination(targetDir(params.RestoreRequest), p.LogicalBytes); err != nil {
		return skipError{err.Error()}
	}
	r, err := s.openRepo(ctx, p.StorageID, nil)
	if err != nil {
		return err
	}
	root, err := r.Index().Root(ctx, p.ID)
	if err != nil {
		return err
	}
	rep := &progressReporter{s: s, jobID: j.ID}
	st, err := files.Restore(ctx, r, root, files.RestoreOptions{
		Target: targetDir(params.RestoreRequest), Paths: params.Paths, Conflict: params.Conflict,
		Owner: os.Geteuid() == 0, Resume: j.Attempt > 1, Warn: rep.warn, Confine: s.cfg.LocalRoots,
		Progress: func(nfiles, nbytes int64) {
			rep.progress(ctx, api.JobProgress{FilesDone: nfiles, BytesDone: nbytes, FilesTotal: p.Files, BytesTotal: p.LogicalBytes}, false)
		},
	})
	rep.progress(ctx, api.JobProgress{FilesDone: st.Files, BytesDone: st.Bytes, FilesTotal: p.Files, BytesTotal: p.LogicalBytes}, true)
	if st.Resumed > 0 {
		_ = s.db.AddWarnings(context.WithoutCancel(ctx), j.ID, []string{fmt.Sprintf("resumed: %d files were already restored by an earlier attempt; %d bytes fetched in this attempt", st.Resumed, st.Fetched)})
	}
	if err != nil && !errors.Is(err, files.ErrIncomplete) {
		return err
	}
	if errors.Is(err, files.ErrIncomplete) {
		// Each failed entry already reached the warnings through rep.warn.
		rep.progress(ctx, api.JobProgress{FilesDone: st.Files, BytesDone: st.Bytes, FilesTotal: p.Files, BytesTotal: p.LogicalBytes}, true)
		return s.db.FinishJob(context.WithoutCancel(ctx), s.pool, j.ID, api.JobFailed, err.Error(), p.ID)
	}
	return s.db.FinishJob(ctx, s.pool, j.ID, api.JobSucceeded, "", p.ID)
}
