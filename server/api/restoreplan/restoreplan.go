// Package restoreplan turns the engine's dry run of a file restore
// (engine/files.PlanRestore) into the API's (api.RestorePlan). Both places
// that plan a file restore use it: the server, for a target on its own
// host, and the agent, for a target on the agent's host. Both run the same
// engine planner against the filesystem in front of them, so the two
// plans differ only in where they were computed.
package restoreplan

import (
	"encoding/json"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// FromEngine is plan as the API shows it, listing items while their JSON
// stays within maxItemBytes (0: no bound); a plan cut short is marked
// truncated, and its counts and bytes still cover every entry.
func FromEngine(plan *files.RestorePlan, maxItemBytes int) *api.RestorePlan {
	out := &api.RestorePlan{Items: make([]api.RestorePlanItem, 0, len(plan.Items)), Truncated: plan.Truncated,
		Writes: plan.Writes, Overwrites: plan.Overwrites, Renames: plan.Renames, Skips: plan.Skips, Refusals: plan.Refusals, Bytes: plan.Bytes}
	size := 0
	for _, it := range plan.Items {
		item := api.RestorePlanItem{Path: it.Path, Type: it.Type, Dest: it.Dest, Action: it.Action, Bytes: it.Bytes, Reason: it.Reason}
		if maxItemBytes > 0 {
			b, _ := json.Marshal(item)
			if size += len(b) + 1; size > maxItemBytes {
				out.Truncated = true
				break
			}
		}
		out.Items = append(out.Items, item)
	}
	return out
}
