package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// Objects is the part of the catalog's object collections that selection
// reads and writes: rules, protected VMs and vCenters.
type Objects interface {
	// Each calls fn for every object of a collection, stopping at fn's
	// first error.
	Each(ctx context.Context, t db.Table, fn func(db.Object) error) error
	Get(ctx context.Context, t db.Table, idOrName string) (db.Object, error)
	// Create fails with db.ErrNameTaken when the name exists.
	Create(ctx context.Context, t db.Table, name string, spec, sealedSecret []byte, idempotencyKey string) (db.Object, bool, error)
	// Update and Delete fail with a *db.StaleError when expect is set and
	// is not the object's version, and with db.ErrNotFound when it is gone.
	Update(ctx context.Context, t db.Table, id string, expect *int64, name string, spec, sealedSecret []byte) (db.Object, error)
	Delete(ctx context.Context, t db.Table, id string, expect *int64) error
	// RuleMadeUsing lists the protected VMs a rule made whose spec field
	// refers to id.
	RuleMadeUsing(ctx context.Context, field, id string) ([]db.Object, error)
}

// PointHistory tells whether an asset has a live recovery point.
type PointHistory interface {
	// LatestPoint is the asset's newest live point, db.ErrNotFound when it
	// has none.
	LatestPoint(ctx context.Context, assetID string) (api.Point, error)
}

// Inventory lists the VMs of a vCenter.
type Inventory interface {
	VMs(ctx context.Context, vcenterID string) ([]api.VM, error)
}

// Selection keeps protected VMs in step with the selection rules and the
// inventory, one vCenter at a time:
//   - a VM a rule selects is protected under that rule (the first rule by
//     name when several match), unless it is protected by hand, which wins;
//   - a rule's VM that no rule selects any more becomes "unselected": no
//     more backups, and its points live out their retention;
//   - any protected VM missing from the inventory becomes "missing", and
//     "active" again when it comes back.
//
// Every write is a versioned update or a create of a unique name, so runs
// on two replicas at once, or twice in a row, change nothing twice.
type Selection struct {
	Objects   Objects
	Points    PointHistory
	Inventory Inventory
	Log       *slog.Logger
}

type storedPV struct {
	obj db.Object
	pv  api.ProtectedVM
}

// Run reconciles every vCenter that has rules or protected VMs. A vCenter
// that fails is logged and does not stop the others; Run returns the
// failures together.
func (r *Selection) Run(ctx context.Context) error {
	rules := map[string][]api.VMProtectionRule{}
	if err := r.Objects.Each(ctx, db.VMProtectionRules, func(o db.Object) error {
		var rule api.VMProtectionRule
		if err := json.Unmarshal(o.Spec, &rule); err != nil {
			return err
		}
		rule.Meta = api.Meta{ID: o.ID, Version: o.Version}
		rules[rule.VCenterID] = append(rules[rule.VCenterID], rule)
		return nil
	}); err != nil {
		return err
	}
	protected := map[string]map[string]*storedPV{}
	if err := r.Objects.Each(ctx, db.ProtectedVMs, func(o db.Object) error {
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
		if _, err := r.Objects.Get(ctx, db.VCenters, vcID); errors.Is(err, db.ErrNotFound) {
			// Only a deleted rule's leftovers can outlive their vCenter.
			for _, cur := range protected[vcID] {
				r.retireLeftover(ctx, cur)
			}
			continue
		}
		if err := r.reconcileVCenter(ctx, vcID, rules[vcID], protected[vcID]); err != nil {
			r.Log.Warn("VM selection", "vcenter_id", vcID, "error", err.Error())
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

func (r *Selection) reconcileVCenter(ctx context.Context, vcID string, rules []api.VMProtectionRule, protected map[string]*storedPV) error {
	inventory, err := r.Inventory.VMs(ctx, vcID)
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
		for i, matches := range matchers {
			if matches(vm) {
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
			r.updatePV(ctx, cur, want)
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
				_, _, err = r.Objects.Create(ctx, db.ProtectedVMs, api.ProtectedVMObjectName(vcID, vm.InstanceUUID), b, nil, "")
				if err != nil && !lostRace(err) {
					return err
				}
				if err == nil {
					r.Log.Info("VM selected by rule", "vm", vm.Name, "rule", rule.Name)
				}
				continue
			}
			r.updatePV(ctx, cur, want)
		case cur != nil:
			// A rule's VM that no rule selects now.
			want := cur.pv
			want.Name, want.MoRef, want.Status = vm.Name, vm.MoRef, api.VMUnselected
			r.updatePV(ctx, cur, want)
		}
	}
	for uuid, cur := range protected {
		if !seen[uuid] {
			want := cur.pv
			want.Status = api.VMMissing
			r.updatePV(ctx, cur, want)
			cur.pv.Status = want.Status
		}
		r.retireLeftover(ctx, cur)
	}
	for _, rule := range rules {
		if rule.SelectedCount == counts[rule.ID] {
			continue
		}
		rule.SelectedCount = counts[rule.ID]
		meta := rule.Meta
		rule.Meta = api.Meta{}
		b, err := json.Marshal(rule)
		if err != nil {
			return err
		}
		if _, err := r.Objects.Update(ctx, db.VMProtectionRules, meta.ID, &meta.Version, rule.Name, b, nil); err != nil && !lostRace(err) {
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
func (r *Selection) retireLeftover(ctx context.Context, cur *storedPV) {
	if cur.pv.RuleID == "" {
		return
	}
	_, err := r.Objects.Get(ctx, db.VMProtectionRules, cur.pv.RuleID)
	switch {
	case errors.Is(err, db.ErrNotFound):
	case err != nil || cur.pv.Status == api.VMActive:
		return
	default:
		if _, err := r.Points.LatestPoint(ctx, cur.obj.ID); !errors.Is(err, db.ErrNotFound) {
			return
		}
	}
	v := cur.obj.Version
	if err := r.Objects.Delete(ctx, db.ProtectedVMs, cur.obj.ID, &v); err == nil {
		r.Log.Info("retired a protection whose rule no longer selects its VM", "vm", cur.pv.Name, "id", cur.obj.ID)
	}
}

// RetireRuleMade deletes, and so retires, the protections a rule made
// whose spec field refers to id: for a deleted rule (rule_id), or for a
// policy, storage or vCenter that no rule refers to any more, when these
// are leftovers of a deleted rule. Their points live on (see
// db.RetiredAsset). A failure is logged too: after a rule's delete, the
// next Run retires what is left.
func (r *Selection) RetireRuleMade(ctx context.Context, field, id string) error {
	made, err := r.Objects.RuleMadeUsing(ctx, field, id)
	for _, o := range made {
		if err = r.Objects.Delete(ctx, db.ProtectedVMs, o.ID, nil); err != nil && !errors.Is(err, db.ErrNotFound) {
			break
		}
		err = nil
		r.Log.Info("retired a protection a rule made", "protected_vm", o.ID, "vm", o.Name, "because", field, "id", id)
	}
	if err != nil {
		r.Log.Error("retiring the protections a rule made", field, id, "error", err.Error())
	}
	return err
}

// updatePV writes a protected VM's new state if it changed, keeping its
// sealed guest password; a concurrent change wins and is seen next run.
func (r *Selection) updatePV(ctx context.Context, cur *storedPV, want api.ProtectedVM) {
	want.Meta, cur.pv.Meta = api.Meta{}, api.Meta{}
	old, _ := json.Marshal(cur.pv)
	b, err := json.Marshal(want)
	if err != nil || string(old) == string(b) {
		return
	}
	v := cur.obj.Version
	if _, err := r.Objects.Update(ctx, db.ProtectedVMs, cur.obj.ID, &v, cur.obj.Name, b, cur.obj.SealedSecret); err != nil && !lostRace(err) {
		r.Log.Warn("updating a protected VM", "id", cur.obj.ID, "error", err.Error())
		return
	}
	if cur.pv.Status != want.Status {
		r.Log.Info("protected VM status", "vm", want.Name, "from", cur.pv.Status, "to", want.Status)
	}
}

// lostRace tells whether a write lost to a concurrent one (another replica's
// run, a user's update or delete): the next run starts from what won.
func lostRace(err error) bool {
	var stale *db.StaleError
	return errors.Is(err, db.ErrNameTaken) || errors.Is(err, db.ErrNotFound) || errors.As(err, &stale)
}
