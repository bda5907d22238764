package files

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/api/restoreplan"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// restorePreparer checks file restores; both drivers share it, since a
// point of either may be restored to a file server of either location.
type restorePreparer struct {
	db *db.DB
	// localRoots confine restores onto the Haven host.
	localRoots *confine.Roots
}

// PrepareRestore checks a file restore: the target file server exists and
// runs the source's OS, and the restore writes only where the target
// allows (see checkRestoreRoots), into a destination that can take it.
func (r restorePreparer) PrepareRestore(ctx context.Context, req api.RestoreRequest, p api.Point, a *driver.Asset) (*driver.RestoreParams, error) {
	src := FilesetOf(a)
	if req.VM != nil {
		return nil, api.Unprocessable("vm", "the point is a file point, not a VM point")
	}
	if req.Database != nil {
		return nil, api.Unprocessable("database", "the point is a file point, not a database point")
	}
	if req.NAS != nil {
		return nil, api.Unprocessable("nas", "the point is a file point, not a NAS share's point")
	}
	if req.TargetFileServerID == "" {
		req.TargetFileServerID = src.Server.ID
	}
	tgtObj, err := r.db.Get(ctx, db.FileServers, req.TargetFileServerID)
	if errors.Is(err, db.ErrNotFound) {
		if req.TargetFileServerID == src.Server.ID {
			return nil, api.Unprocessable("target_file_server_id", "the point's file server %q was deleted: name a %s file server to restore to",
				src.Server.Name, src.Server.OS)
		}
		return nil, api.Unprocessable("target_file_server_id", "file server %q does not exist", req.TargetFileServerID)
	}
	if err != nil {
		return nil, err
	}
	var tgt api.FileServer
	if err := json.Unmarshal(tgtObj.Spec, &tgt.FileServerSpec); err != nil {
		return nil, err
	}
	req.TargetFileServerID = tgtObj.ID
	if tgt.OS != src.Server.OS {
		return nil, api.Unprocessable("target_file_server_id", "the point comes from a %s file server; it can only be restored to %s", src.Server.OS, src.Server.OS)
	}
	params := &driver.RestoreParams{RestoreRequest: req, TargetLocation: tgt.Location}
	if err := r.checkRestoreRoots(ctx, req, src.Fileset.IncludePaths, tgtObj.ID, tgt.FileServerSpec); err != nil {
		return nil, err
	}
	if tgt.Location == api.LocationServer {
		if err := checkDestination(targetDir(req), p.LogicalBytes); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// RestoreTargets names the file server a restore writes onto: the one
// the request names, or the point's own.
func (r restorePreparer) RestoreTargets(ctx context.Context, req api.RestoreRequest, a *driver.Asset) ([]driver.Target, error) {
	if req.VM != nil || req.Database != nil || req.NAS != nil {
		return nil, nil // PrepareRestore refuses a VM, database or NAS restore of a file point
	}
	id := req.TargetFileServerID
	if id == "" {
		id = FilesetOf(a).Fileset.FileServerID
	}
	return driver.ObjectTarget(ctx, r.db, db.FileServers, id, "target_file_server_id", "file server")
}

// PlanRestore is a file restore's dry run (engine/files.PlanRestore) with
// the options the restore itself would use, looking at the real target
// directory, confined as the restore is. Only a target on the Haven host
// is planned here; one on an agent's host is planned by its agent, with
// the same engine planner (driver.ErrPlanOnTarget, PlanOnTarget).
func (r restorer) PlanRestore(ctx context.Context, params *driver.RestoreParams, p api.Point, rp *repo.Repository, root format.ID) (*api.RestorePlan, error) {
	if params.TargetLocation != api.LocationServer {
		return nil, driver.ErrPlanOnTarget
	}
	opts := restoreOptions(params.RestoreRequest)
	opts.Target, opts.Confine = targetDir(params.RestoreRequest), r.localRoots
	plan, err := files.PlanRestore(ctx, rp, root, opts, api.PlanItemsMax)
	if err != nil {
		return nil, err
	}
	return restoreplan.FromEngine(plan, 0), nil
}

// PlanOnTarget hands a dry run to the target file server's agent, which
// plans it against its own filesystem and reports the plan with the job's
// end.
func (r restorer) PlanOnTarget(ctx context.Context, run driver.Restore) error {
	if run.Params().TargetLocation != api.LocationAgent {
		return driver.Failed{Err: errors.New("a dry run onto the Haven host is answered at once, not run as a job")}
	}
	return r.hub.restore(ctx, run, api.JobRestorePlan)
}

// restoreOptions are the engine's options for what a request selects and
// how it treats existing files, wherever the restore runs.
func restoreOptions(req api.RestoreRequest) files.RestoreOptions {
	return files.RestoreOptions{Paths: req.Paths, Conflict: req.Conflict, Include: req.Include, Exclude: req.Exclude}
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
func (r restorePreparer) checkRestoreRoots(ctx context.Context, req api.RestoreRequest, sourcePaths []string, targetID string, tgt api.FileServerSpec) error {
	dests := restoreDests(req, sourcePaths)
	if tgt.Location == api.LocationServer {
		for _, d := range dests {
			if err := r.localRoots.Check(d.path); err != nil {
				return api.Unprocessable(d.field, "restoring onto the Haven host: %v", err)
			}
		}
		return nil
	}
	allowed, err := r.db.IncludePathsOn(ctx, targetID)
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
