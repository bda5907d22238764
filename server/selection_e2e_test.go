package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestSelectionRulesFollowInventory: a folder rule protects the VMs in the
// folder, a VM cloned into it is protected within a reconcile interval, and
// a VM moved out stops being selected while its points stay.
func TestSelectionRulesFollowInventory(t *testing.T) {
	f := newVMFixture(t, nil, func(c *server.Config) { c.SelectionEvery = 300 * time.Millisecond })
	ctx := context.Background()
	rule, err := f.srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: api.VMProtectionRuleSpec{
		Name: "prod", VCenterID: f.vc.ID, Folders: []string{"/DC0/vm/prod"}, ExcludeNameRegex: "^scratch-",
		PolicyID: f.policy.ID, StorageID: f.storage.ID}})
	if err != nil {
		t.Fatal(err)
	}
	app := f.waitProtected("app-01", func(pv *api.ProtectedVM) bool { return pv.RuleID == rule.ID && pv.Status == api.VMActive })
	if j := f.backup(app); j.State != api.JobSucceeded {
		t.Fatalf("backup of a rule-protected VM: %+v", j)
	}

	// New VMs in the folder: one selected, one excluded by name.
	finder := find.NewFinder(f.sim.Client.Client, true)
	prod, err := finder.Folder(ctx, "/DC0/vm/prod")
	if err != nil {
		t.Fatal(err)
	}
	root, err := finder.Folder(ctx, "/DC0/vm")
	if err != nil {
		t.Fatal(err)
	}
	src := object.NewVirtualMachine(f.sim.Client.Client, types.ManagedObjectReference{Type: "VirtualMachine", Value: f.vm("app-01").MoRef})
	for _, name := range []string{"app-02", "scratch-01"} {
		task, err := src.Clone(ctx, prod, name, types.VirtualMachineCloneSpec{})
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			t.Fatalf("cloning %s: %v", name, err)
		}
	}
	f.waitProtected("app-02", func(pv *api.ProtectedVM) bool { return pv.RuleID == rule.ID && pv.Status == api.VMActive })

	// app-01 leaves the folder.
	task, err := root.MoveInto(ctx, []types.ManagedObjectReference{src.Reference()})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.waitProtected("app-01", func(pv *api.ProtectedVM) bool { return pv.Status == api.VMUnselected })
	if pts, err := f.srv.Client.ListPoints(ctx, app.ID, "", 0); err != nil || len(pts.Items) != 1 {
		t.Fatalf("the unselected VM's points must live on: %+v %v", pts, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := f.srv.Client.VMProtectionRules().Get(ctx, rule.ID)
		if err == nil && r.SelectedCount == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rule after the move: %+v %v", r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if pv, _ := f.findProtected("scratch-01"); pv != nil {
		t.Fatalf("an excluded VM was protected: %+v", pv)
	}

	// A tag rule picks up db-01 once it is tagged, and lets it go untagged.
	gold, err := f.srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: api.VMProtectionRuleSpec{
		Name: "gold", VCenterID: f.vc.ID, Tags: []string{"backup:gold"}, PolicyID: f.policy.ID, StorageID: f.storage.ID}})
	if err != nil {
		t.Fatal(err)
	}
	f.sim.TagVM(t, "db-01", "backup:gold")
	f.waitProtected("db-01", func(pv *api.ProtectedVM) bool { return pv.RuleID == gold.ID && pv.Status == api.VMActive })
	// Untagged, it is unselected and then, having no recovery point,
	// retired altogether.
	f.sim.UntagVM(t, "db-01", "backup:gold")
	deadline = time.Now().Add(20 * time.Second)
	for {
		pv, err := f.findProtected("db-01")
		if err == nil && pv == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("db-01 is still protected after leaving the selection: %+v %v", pv, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (f *vmFixture) findProtected(name string) (*api.ProtectedVM, error) {
	list, err := f.srv.Client.ProtectedVMs().List(context.Background(), "", 0)
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].Name == name {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

// waitProtected waits (a few reconcile intervals) until the protected VM
// of that name satisfies ok.
func (f *vmFixture) waitProtected(name string, ok func(*api.ProtectedVM) bool) *api.ProtectedVM {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pv, err := f.findProtected(name)
		if err == nil && pv != nil && ok(pv) {
			return pv
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("protected VM %s never reached the expected state: %+v %v", name, pv, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
