package agent

import (
	"context"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/api/restoreplan"
)

// planItemBytes bounds the plan's items in the completion report, leaving
// room in api.MaxCompleteBody for the rest (counts, warnings).
const planItemBytes = api.MaxCompleteBody - 1<<20

// plan is a restore's dry run on this host (a restore_plan job): the
// engine's planner, the one the server runs for its own host, reads the
// point's manifests through the server and looks at what stands at each
// destination here, under the restore's conflict policy, globs and this
// host's restore roots. It writes nothing.
func (a *agent) plan(ctx context.Context, w *api.AgentWork) (api.AgentComplete, error) {
	root, remote, err := a.pointFor(ctx, w)
	if err != nil {
		return api.AgentComplete{}, err
	}
	plan, err := files.PlanRestore(ctx, remote, root, files.RestoreOptions{
		Target: w.TargetPath, Paths: w.Paths, Conflict: w.Conflict, Include: w.RestoreInclude, Exclude: w.RestoreExclude,
		Confine: a.writable,
	}, api.PlanItemsMax)
	if err != nil {
		return api.AgentComplete{}, err
	}
	return api.AgentComplete{Plan: restoreplan.FromEngine(plan, planItemBytes)}, nil
}

// pointFor is the root of the point a restore (or its dry run) reads, and
// the server's repository to read it from.
func (a *agent) pointFor(ctx context.Context, w *api.AgentWork) (format.ID, *remote, error) {
	root, err := format.ParseID(w.Root)
	if err != nil {
		return root, nil, err
	}
	remote, err := a.remoteFor(ctx, w)
	return root, remote, err
}
