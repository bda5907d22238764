package vmware_test

import (
	"context"
	"slices"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
)

// TestVMTags reads tags attached in the vAPI tagging service into the
// inventory, and selects VMs by them.
func TestVMTags(t *testing.T) {
	env := testparts.VCSim(t)
	env.CreateVM(t, vcsimlab.VMSpec{Folder: "prod", Name: "web-01", Tags: []string{"tier:web", "env:prod"}})
	env.TagVM(t, "app-01", "env:prod")
	env.TagVM(t, "db-01", "env:staging")
	c := connect(t, env)
	ctx := context.Background()

	vms, err := c.VMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"web-01":     {"env:prod", "tier:web"},
		"app-01":     {"env:prod"},
		"db-01":      {"env:staging"},
		"DC0_H0_VM0": {},
	}
	for _, v := range vms {
		if w, ok := want[v.Name]; ok && (v.Tags == nil || !slices.Equal(v.Tags, w)) {
			t.Fatalf("%s: tags %#v, want %v", v.Name, v.Tags, w)
		}
	}
	if got := withTag(vms, "env:prod"); !slices.Equal(got, []string{"/DC0/vm/prod/app-01", "/DC0/vm/prod/web-01"}) {
		t.Fatalf("env:prod selects %v", got)
	}
	if got := withTag(vms, "env:staging"); !slices.Equal(got, []string{"/DC0/vm/db-01"}) {
		t.Fatalf("env:staging selects %v", got)
	}
	// A tag name alone is not "category:tag".
	if got := withTag(vms, "prod"); len(got) != 0 {
		t.Fatalf("prod selects %v", got)
	}

	env.UntagVM(t, "app-01", "env:prod")
	app, err := c.VMByName(ctx, "app-01")
	if err != nil || app.Tags == nil || len(app.Tags) != 0 {
		t.Fatalf("app-01 after untagging: %#v %v", app.Tags, err)
	}
	web, err := c.VMByPath(ctx, "/DC0/vm/prod/web-01")
	if err != nil || !slices.Equal(web.Tags, []string{"env:prod", "tier:web"}) {
		t.Fatalf("web-01 by path: %#v %v", web.Tags, err)
	}
}

func withTag(vms []vmware.VM, tag string) []string {
	var out []string
	for _, v := range vms {
		if slices.Contains(v.Tags, tag) {
			out = append(out, v.InventoryPath)
		}
	}
	return out
}

// TestVMTagsWithoutTagging: an endpoint without the vAPI tagging service
// (like a plain ESXi host) lists VMs with no tags rather than failing.
func TestVMTagsWithoutTagging(t *testing.T) {
	ctx := context.Background()
	lab, err := vcsimlab.Start(ctx, vcsimlab.Options{NoTagging: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lab.Close)
	c, err := vmware.Connect(ctx, vmware.Config{URL: lab.URL, Username: lab.Username, Password: lab.Password, Thumbprint: lab.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout(ctx)
	vms, err := c.VMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) < 3 {
		t.Fatalf("VMs: %+v", vms)
	}
	for _, v := range vms {
		if v.Tags == nil || len(v.Tags) != 0 {
			t.Fatalf("%s: tags %#v", v.Name, v.Tags)
		}
	}
}
