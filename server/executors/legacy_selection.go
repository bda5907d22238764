package executors

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

type storedPV struct {
	obj db.Object
	pv  api.ProtectedVM
}

// reconcileSelections keeps protected VMs in step with the selection rules
// and the inventory, one vCenter at a time:
//   - a VM a rule selects is protected under that rule (the first rule by
//     name when several match), unless it is protected by hand, which wins;
//   - a rule's VM that no rule selects any more becomes "unselected": no
//     more backups, and its points live out their retention;
//   - any protected VM missing from the inventory becomes "missing", and
//     "active" again when it comes back.
//
// Every write is a versioned update or a create of a unique name, so runs
// on two replicas at once, or twice in a row, change nothing twice.
func (s *Engine) ReconcileSelections(ctx context.Context) error {
	rules := map[string][]api.VMProtectionRule{}
	if err := s.db.Each(ctx, db.VMProtectionRules, func(o db.Object) error {
		var r api.VMProtectionRule
		if err := json.Unmarshal(o.Spec, &r); err != nil {
			return err
		}
		r.Meta = api.Meta{ID: o.ID, Version: o.Version}
		rules[r.VCenterID] = append(rules[r.VCenterID], r)
		return nil
	}); err != nil {
		return err
	}
	protected := map[string]map[string]*storedPV{}
	if err := s.db.Each(ctx, db.ProtectedVMs, func(o db.Object) error {
		var pv api.ProtectedVM
		if err := json.Unmarshal(o.Spec, &pv); err != nil {
			return err
		}
		if protected[pv.VCenterID] == nil {
			protected[pv.VCenterID] = map[string]*storedPV{}
		}
		protected[pv.VCenterID][strings.ToLower(pv.InstanceUUID)] = &storedPV{obj: o, pv: pv}
		return nil
	}); err != nil {
		return err
	}
	var errs []error
	for vcID := range mergeKeys(rules, protected) {
		if _, err := s.db.Get(ctx, db.VCenters, vcID); errors.Is(err, db.ErrNotFound) {
			// Only a deleted rule's leftovers can outlive their vCenter.
			for _, cur := range protected[vcID] {
				s.retireLeftover(ctx, cur)
			}
			continue
		}
		if err := s.reconcileVCenterSelection(ctx, vcID, rules[vcID], protected[vcID]); err != nil {
			s.log.Warn("VM selection", "vcenter_id", vcID, "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func mergeKeys[A, B any](a map[string]A, b map[string]B) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func (s *Engine) reconcileVCenterSelection(ctx context.Context, vcID string, rules []api.VMProtectionRule, protected map[string]*storedPV) error {
	c, _, err := connect.StoredVCenter(ctx, s.db, s.master, vcID)
	if err != nil {
		return err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	inventory, err := c.VMs(ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(rules, func(a, b api.VMProtectionRule) int { return strings.Compare(a.Name, b.Name) })
	matchers := make([]func(api.VM) bool, len(rules))
	for i := range rules {
		matchers[i] = rules[i].Matcher()
	}
	counts := map[string]int{}
	seen := map[string]bool{}
	for _, vm := range inventory {
		uuid := strings.ToLower(vm.InstanceUUID)
		seen[uuid] = true
		var rule *api.VMProtectionRule
		candidate := connect.APIVM(vcID, vm)
		for i, matches := range matchers {
			if matches(candidate) {
				rule = &rules[i]
				break
			}
		}
		cur := protected[uuid]
		switch {
		case cur != nil && cur.pv.RuleID == "":
			// Protected by hand: only its inventory facts follow.
			want := cur.pv
			want.Name, want.MoRef, want.Status = vm.Name, vm.MoRef, api.VMActive
			s.updatePV(ctx, cur, want)
		case rule != nil:
			counts[rule.ID]++
			want := api.ProtectedVM{ProtectedVMSpec: api.ProtectedVMSpec{VCenterID: vcID, InstanceUUID: vm.InstanceUUID,
				PolicyID: rule.PolicyID, StorageID: rule.StorageID, Group: rule.Group},
				Name: vm.Name, MoRef: vm.MoRef, Status: api.VMActive, RuleID: rule.ID}
			if cur == nil {
				b, err := json.Marshal(want)
				if err != nil {
					return err
				}
				_, _, err = s.db.Create(ctx, db.ProtectedVMs, api.ProtectedVMObjectName(vcID, vm.InstanceUUID), b, nil, "")
				if err != nil && !lostRace(err) {
					return err
				}
				if err == nil {
					s.log.Info("VM selected by rule", "vm", vm.Name, "rule", rule.Name)
				}
				continue
			}
			s.updatePV(ctx, cur, want)
		case cur != nil:
			// A rule's VM that no rule selects now.
			want := cur.pv
			want.Name, want.MoRef, want.Status = vm.Name, vm.MoRef, api.VMUnselected
			s.updatePV(ctx, cur, want)
		}
	}
	for uuid, cur := range protected {
		if !seen[uuid] {
			want := cur.pv
			want.Status = api.VMMissing
			s.updatePV(ctx, cur, want)
			cur.pv.Status = want.Status
		}
		s.retireLeftover(ctx, cur)
	}
	for _, r := range rules {
		if r.SelectedCount == counts[r.ID] {
			continue
		}
		r.SelectedCount = counts[r.ID]
		meta := r.Meta
		r.Meta = api.Meta{}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := s.db.Update(ctx, db.VMProtectionRules, meta.ID, &meta.Version, r.Name, b, nil); err != nil && !lostRace(err) {
			return err
		}
	}
	return nil
}

// retireLeftover deletes a protection a rule made once its rule is gone
// (deleting the rule retires them; this catches one a run made while the
// rule was being deleted), or once its rule no longer selects its VM and
// its last recovery point is gone. A deleted protection's points stay
// restorable and retained (see db.RetiredAsset); an unselected one with
// points is kept only so that the VM continues its history if the rule
// selects it again.
func (s *Engine) retireLeftover(ctx context.Context, cur *storedPV) {
	if cur.pv.RuleID == "" {
		return
	}
	_, err := s.db.Get(ctx, db.VMProtectionRules, cur.pv.RuleID)
	switch {
	case errors.Is(err, db.ErrNotFound):
	case err != nil || cur.pv.Status == api.VMActive:
		return
	default:
		if _, err := s.db.LatestPoint(ctx, cur.obj.ID); !errors.Is(err, db.ErrNotFound) {
			return
		}
	}
	v := cur.obj.Version
	if err := s.db.Delete(ctx, db.ProtectedVMs, cur.obj.ID, &v); err == nil {
		s.log.Info("retired a protection whose rule no longer selects its VM", "vm", cur.pv.Name, "id", cur.obj.ID)
	}
}

// RetireRuleMade deletes, and so retires, the protections a rule made
// whose spec field refers to id: for a deleted rule (rule_id), or for a
// policy, storage or vCenter that no rule refers to any more, when these
// are leftovers of a deleted rule. Their points live on (see
// db.RetiredAsset). A failure is logged too: after a rule's delete, the
// selection reconciler retires what is left.
func (s *Engine) RetireRuleMade(ctx context.Context, field, id string) error {
	made, err := s.db.RuleMadeUsing(ctx, field, id)
	for _, o := range made {
		if err = s.db.Delete(ctx, db.ProtectedVMs, o.ID, nil); err != nil && !errors.Is(err, db.ErrNotFound) {
			break
		}
		err = nil
		s.log.Info("retired a protection a rule made", "protected_vm", o.ID, "vm", o.Name, "because", field, "id", id)
	}
	if err != nil {
		s.log.Error("retiring the protections a rule made", field, id, "error", err.Error())
	}
	return err
}

// updatePV writes a protected VM's new state if it changed, keeping its
// sealed guest password; a concurrent change wins and is seen next run.
func (s *Engine) updatePV(ctx context.Context, cur *storedPV, want api.ProtectedVM) {
	want.Meta, cur.pv.Meta = api.Meta{}, api.Meta{}
	old, _ := json.Marshal(cur.pv)
	b, err := json.Marshal(want)
	if err != nil || string(old) == string(b) {
		return
	}
	v := cur.obj.Version
	if _, err := s.db.Update(ctx, db.ProtectedVMs, cur.obj.ID, &v, cur.obj.Name, b, cur.obj.SealedSecret); err != nil && !lostRace(err) {
		s.log.Warn("updating a protected VM", "id", cur.obj.ID, "error", err.Error())
		return
	}
	if cur.pv.Status != want.Status {
		s.log.Info("protected VM status", "vm", want.Name, "from", cur.pv.Status, "to", want.Status)
	}
}

// lostRace tells whether a write lost to a concurrent one (another replica's
// run, a user's update or delete): the next run starts from what won.
func lostRace(err error) bool {
	var stale *db.StaleError
	return errors.Is(err, db.ErrNameTaken) || errors.Is(err, db.ErrNotFound) || errors.As(err, &stale)
}
