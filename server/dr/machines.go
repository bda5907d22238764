package dr

import (
	"context"
	"slices"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// PlanMachines expands a plan's entries into its machines, one per
// protected VM. An entry naming a VM protection rule stands for every
// protected VM the rule protects now, each with the entry's settings under
// its VM name (or, when another machine has that name, the VM name and
// the entry's); a dependency on such an entry is a dependency on each of
// its machines. Replication, runs and the plan's status all read the plan
// through it, so a VM the rule selects later is covered from then on.
func PlanMachines(ctx context.Context, d *db.DB, spec api.DRPlanSpec) ([]api.DRPlanVM, error) {
	var out []api.DRPlanVM
	members := map[string][]string{} // rule entry name -> its machines' names
	taken, listed := map[string]bool{}, map[string]bool{}
	for _, v := range spec.VMs {
		if v.ProtectionRuleID == "" {
			taken[v.Name], listed[v.ProtectedVMID] = true, true
		}
	}
	for _, v := range spec.VMs {
		if v.ProtectionRuleID == "" {
			out = append(out, v)
			continue
		}
		vms, err := d.RuleProtectedVMs(ctx, v.ProtectionRuleID)
		if err != nil {
			return nil, err
		}
		members[v.Name] = []string{}
		for _, pv := range vms {
			if listed[pv.ID] {
				continue // listed by itself too: its own entry wins
			}
			listed[pv.ID] = true
			m := v
			m.ProtectionRuleID, m.ProtectedVMID, m.Name = "", pv.ID, pv.Name
			if taken[m.Name] {
				m.Name = pv.Name + "-" + v.Name
			}
			taken[m.Name] = true
			members[v.Name] = append(members[v.Name], m.Name)
			out = append(out, m)
		}
	}
	for i := range out {
		var deps []string
		for _, dep := range out[i].DependsOn {
			if names, ok := members[dep]; ok {
				deps = append(deps, names...)
			} else {
				deps = append(deps, dep)
			}
		}
		out[i].DependsOn = slices.DeleteFunc(deps, func(n string) bool { return n == out[i].Name })
	}
	return out, nil
}
