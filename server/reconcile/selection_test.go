package reconcile

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

type selectionFixture struct {
	objects *memObjects
	points  *memPoints
	inv     *memInventory
	r       *Selection
	vc      string // a stored vCenter's id
}

func newSelection(t *testing.T) *selectionFixture {
	f := &selectionFixture{objects: newObjects(), points: &memPoints{}, inv: &memInventory{vms: map[string][]api.VM{}}}
	f.vc = f.objects.put(t, db.VCenters, "vc-a", api.VCenterSpec{Name: "vc-a"}).ID
	f.r = &Selection{Objects: f.objects, Points: f.points, Inventory: f.inv, Log: quiet}
	return f
}

func (f *selectionFixture) run(t *testing.T) {
	t.Helper()
	if err := f.r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// vms sets the vCenter's inventory to VMs of these names, each with the
// instance UUID "UUID-<name>" (upper case, as vCenter may give it).
func (f *selectionFixture) vms(names ...string) {
	f.inv.vms[f.vc] = nil
	for _, n := range names {
		f.inv.vms[f.vc] = append(f.inv.vms[f.vc], api.VM{VCenterID: f.vc, Name: n, InstanceUUID: "UUID-" + n, MoRef: "vm-" + n})
	}
}

// rule stores a rule selecting names matching nameRegex into policy pol.
func (f *selectionFixture) rule(t *testing.T, name, nameRegex, pol string) string {
	return f.objects.put(t, db.VMProtectionRules, name, api.VMProtectionRule{VMProtectionRuleSpec: api.VMProtectionRuleSpec{
		Name: name, VCenterID: f.vc, NameRegex: nameRegex, PolicyID: pol, StorageID: "st-1", Group: "ops"}}).ID
}

// protect stores a protection of the VM vmName, made by ruleID ("" for
// one declared by hand).
func (f *selectionFixture) protect(t *testing.T, vmName, ruleID, pol, status string) db.Object {
	pv := api.ProtectedVM{ProtectedVMSpec: api.ProtectedVMSpec{VCenterID: f.vc, InstanceUUID: "UUID-" + vmName, PolicyID: pol, StorageID: "st-1"},
		Name: vmName, MoRef: "vm-" + vmName, Status: status, RuleID: ruleID}
	return f.objects.put(t, db.ProtectedVMs, api.ProtectedVMObjectName(f.vc, pv.InstanceUUID), pv)
}

// protected reads the protection of the VM vmName; ok is false when there
// is none.
func (f *selectionFixture) protected(t *testing.T, vmName string) (pv api.ProtectedVM, o db.Object, ok bool) {
	t.Helper()
	o, err := f.objects.Get(t.Context(), db.ProtectedVMs, api.ProtectedVMObjectName(f.vc, "UUID-"+vmName))
	if errors.Is(err, db.ErrNotFound) {
		return pv, o, false
	}
	if err := json.Unmarshal(o.Spec, &pv); err != nil {
		t.Fatal(err)
	}
	return pv, o, true
}

func (f *selectionFixture) selectedCount(t *testing.T, ruleID string) int {
	t.Helper()
	o, err := f.objects.Get(t.Context(), db.VMProtectionRules, ruleID)
	if err != nil {
		t.Fatal(err)
	}
	var r api.VMProtectionRule
	if err := json.Unmarshal(o.Spec, &r); err != nil {
		t.Fatal(err)
	}
	return r.SelectedCount
}

// hasPoint gives the asset a live recovery point.
func (f *selectionFixture) hasPoint(assetID string) {
	f.points.points = append(f.points.points, &api.Point{ID: "pt-" + assetID, AssetID: assetID, CompletedAt: time.Now()})
}

func TestSelectionRuleSelectsVM(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "web", "^web-", "pol-1")
	f.vms("web-1", "db-1")
	f.run(t)
	pv, _, ok := f.protected(t, "web-1")
	if !ok {
		t.Fatal("the rule's VM web-1 is not protected")
	}
	if pv.RuleID != ruleID || pv.PolicyID != "pol-1" || pv.StorageID != "st-1" || pv.Group != "ops" || pv.Status != api.VMActive ||
		pv.Name != "web-1" || pv.MoRef != "vm-web-1" || pv.InstanceUUID != "UUID-web-1" || pv.VCenterID != f.vc {
		t.Fatalf("protection = %+v, want web-1 active under rule %s with its policy, storage and group", pv, ruleID)
	}
	if _, _, ok := f.protected(t, "db-1"); ok {
		t.Fatal("db-1, which no rule selects, was protected")
	}
}

func TestSelectionHandProtectedWins(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "all", ".", "pol-rule")
	hand := f.protect(t, "app-1", "", "pol-hand", api.VMMissing)
	hand.SealedSecret = []byte("sealed guest password")
	f.objects.table(db.ProtectedVMs)[hand.ID] = hand
	f.vms("app-renamed")
	f.inv.vms[f.vc][0].InstanceUUID = "uuid-app-1" // same VM, renamed; UUID case differs
	f.run(t)
	pv, o, _ := f.protected(t, "app-1")
	if pv.RuleID != "" || pv.PolicyID != "pol-hand" {
		t.Fatalf("protection = %+v, want it still by hand under pol-hand", pv)
	}
	if pv.Name != "app-renamed" || pv.Status != api.VMActive {
		t.Fatalf("protection = %+v, want its inventory facts followed (name app-renamed, active)", pv)
	}
	if string(o.SealedSecret) != "sealed guest password" {
		t.Fatalf("sealed secret = %q, want it kept", o.SealedSecret)
	}
	if n := f.selectedCount(t, ruleID); n != 0 {
		t.Fatalf("the rule counts %d VMs, want 0 (its only match is protected by hand)", n)
	}
}

func TestSelectionUnselectedVMKeepsItsHistory(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "web", "^web-", "pol-1")
	o := f.protect(t, "web-1", ruleID, "pol-1", api.VMActive)
	f.hasPoint(o.ID)
	f.vms("app-1")
	f.inv.vms[f.vc][0].InstanceUUID = "UUID-web-1" // renamed out of the rule
	f.run(t)
	pv, _, ok := f.protected(t, "web-1")
	if !ok {
		t.Fatal("an unselected VM with points was retired")
	}
	if pv.Status != api.VMUnselected || pv.Name != "app-1" || pv.RuleID != ruleID {
		t.Fatalf("protection = %+v, want unselected, named app-1, still the rule's", pv)
	}
	f.run(t)
	if _, _, ok := f.protected(t, "web-1"); !ok {
		t.Fatal("an unselected VM with points was retired on the next run")
	}
}

func TestSelectionMissingVMAndBack(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "web", "^web-", "pol-1")
	o := f.protect(t, "web-1", ruleID, "pol-1", api.VMActive)
	f.hasPoint(o.ID)
	f.protect(t, "hand-1", "", "pol-2", api.VMActive)
	f.vms()
	f.run(t)
	for _, vm := range []string{"web-1", "hand-1"} {
		if pv, _, ok := f.protected(t, vm); !ok || pv.Status != api.VMMissing {
			t.Fatalf("%s gone from the inventory: protection %+v (present %v), want missing", vm, pv, ok)
		}
	}
	f.vms("web-1", "hand-1")
	f.run(t)
	for _, vm := range []string{"web-1", "hand-1"} {
		if pv, _, ok := f.protected(t, vm); !ok || pv.Status != api.VMActive {
			t.Fatalf("%s back in the inventory: protection %+v (present %v), want active", vm, pv, ok)
		}
	}
}

func TestSelectionFirstRuleByNameWins(t *testing.T) {
	f := newSelection(t)
	second := f.rule(t, "b-web", "^web-", "pol-b")
	first := f.rule(t, "a-web", "^web-", "pol-a")
	f.vms("web-1")
	f.run(t)
	pv, _, _ := f.protected(t, "web-1")
	if pv.RuleID != first || pv.PolicyID != "pol-a" {
		t.Fatalf("protection = %+v, want rule a-web's (%s)", pv, first)
	}
	if a, b := f.selectedCount(t, first), f.selectedCount(t, second); a != 1 || b != 0 {
		t.Fatalf("counts a-web=%d b-web=%d, want 1 and 0", a, b)
	}
}

func TestSelectionCountsFollowTheInventory(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "web", "^web-", "pol-1")
	f.vms("web-1", "web-2", "db-1")
	f.run(t)
	if n := f.selectedCount(t, ruleID); n != 2 {
		t.Fatalf("selected count = %d, want 2", n)
	}
	f.vms("web-1", "db-1")
	f.run(t)
	if n := f.selectedCount(t, ruleID); n != 1 {
		t.Fatalf("selected count after web-2 left = %d, want 1", n)
	}
}

func TestSelectionLostRacesAreIgnored(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "web", "^web-", "pol-1")
	f.protect(t, "web-2", ruleID, "pol-1", api.VMMissing)
	f.vms("web-1", "web-2")
	// Every write of the run loses: another replica protects web-1 first,
	// and a user edits web-2's protection and the rule first.
	raced := map[string]bool{}
	f.objects.beforeWrite = func(op string, table db.Table, id string) {
		raced[op+" "+string(table)] = true
		switch op {
		case "create":
			f.protect(t, "web-1", ruleID, "pol-1", api.VMActive)
		case "update":
			o := f.objects.table(table)[id]
			o.Version++
			f.objects.table(table)[id] = o
		}
	}
	f.run(t)
	for _, want := range []string{"create protected_vms", "update protected_vms", "update vm_protection_rules"} {
		if !raced[want] {
			t.Fatalf("the run did not try %q (tried %v)", want, raced)
		}
	}
	if pv, _, ok := f.protected(t, "web-1"); !ok || pv.RuleID != ruleID {
		t.Fatalf("web-1: %+v (present %v), want the other replica's protection", pv, ok)
	}
	if pv, _, _ := f.protected(t, "web-2"); pv.Status != api.VMMissing {
		t.Fatalf("web-2 status = %q, want the user's version (missing) to have won", pv.Status)
	}
}

func TestSelectionRetiresLeftovers(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "web", "^web-", "pol-1")
	// Its rule deleted (a run made it while the rule was being deleted):
	// retired even with points.
	orphan := f.protect(t, "app-9", "rule-deleted", "pol-1", api.VMUnselected)
	f.hasPoint(orphan.ID)
	// Unselected without points: nothing left to keep it for.
	f.protect(t, "app-8", ruleID, "pol-1", api.VMUnselected)
	// Protected by hand: never retired by selection.
	f.protect(t, "hand-1", "", "pol-2", api.VMActive)
	f.vms("app-9", "app-8", "hand-1")
	f.run(t)
	if _, _, ok := f.protected(t, "app-9"); ok {
		t.Fatal("a protection whose rule is gone was not retired")
	}
	if _, _, ok := f.protected(t, "app-8"); ok {
		t.Fatal("an unselected protection without points was not retired")
	}
	if _, _, ok := f.protected(t, "hand-1"); !ok {
		t.Fatal("a protection by hand was retired")
	}
}

func TestSelectionLeftoversOfADeletedVCenter(t *testing.T) {
	f := newSelection(t)
	f.vc = "vc-deleted"
	f.inv.broken = map[string]error{f.vc: errors.New("no such vCenter")}
	f.protect(t, "web-1", "rule-deleted", "pol-1", api.VMActive)
	f.protect(t, "hand-1", "", "pol-1", api.VMActive)
	f.run(t)
	if _, _, ok := f.protected(t, "web-1"); ok {
		t.Fatal("a deleted rule's protection on a deleted vCenter was not retired")
	}
	if _, _, ok := f.protected(t, "hand-1"); !ok {
		t.Fatal("a protection by hand was retired")
	}
}

func TestSelectionOneFailingVCenterDoesNotStopOthers(t *testing.T) {
	// vCenters are visited in no set order: repeat so that the failing one
	// comes first in some runs.
	for range 20 {
		f := newSelection(t)
		good := f.vc
		f.rule(t, "web", "^web-", "pol-1")
		f.vms("web-1")
		f.vc = f.objects.put(t, db.VCenters, "vc-b", api.VCenterSpec{Name: "vc-b"}).ID
		f.rule(t, "b-web", "^web-", "pol-1")
		f.inv.broken = map[string]error{f.vc: errors.New("vc-b unreachable")}
		err := f.r.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "vc-b unreachable") {
			t.Fatalf("Run = %v, want vc-b's failure", err)
		}
		f.vc = good
		if _, _, ok := f.protected(t, "web-1"); !ok {
			t.Fatal("vc-a was not reconciled because vc-b failed")
		}
	}
}

func TestRetireRuleMade(t *testing.T) {
	f := newSelection(t)
	ruleID := f.rule(t, "web", "^web-", "pol-x")
	f.protect(t, "web-1", ruleID, "pol-x", api.VMActive)
	f.protect(t, "web-2", ruleID, "pol-x", api.VMUnselected)
	f.protect(t, "web-3", ruleID, "pol-y", api.VMActive)
	f.protect(t, "hand-1", "", "pol-x", api.VMActive)
	if err := f.r.RetireRuleMade(t.Context(), "policy_id", "pol-x"); err != nil {
		t.Fatal(err)
	}
	for vm, want := range map[string]bool{"web-1": false, "web-2": false, "web-3": true, "hand-1": true} {
		if _, _, ok := f.protected(t, vm); ok != want {
			t.Errorf("%s present = %v, want %v", vm, ok, want)
		}
	}
}
