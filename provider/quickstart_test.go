package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestQuickstartAppliesAndDestroys applies examples/quickstart as its
// comment says (environment variables, a vCenter: the simulator), backs
// up the fileset, the VM protected by hand and a VM its rule selected,
// and destroys it in whatever order terraform picks. The destroy removes
// everything but the storage, whose recovery points outlive the rest and
// which says so; with storage_force_destroy the destroy completes, warning
// that it expired them. Terraform runs as users run it (real binary,
// provider built from this repository), since terraform-plugin-testing
// shows a test neither the warnings nor the state left by a failed destroy.
func TestQuickstartAppliesAndDestroys(t *testing.T) {
	t.Parallel()
	srv := servertest.Start(t)
	vc := testparts.VCSim(t)
	vc.TagVM(t, "app-01", "backup:gold")
	ctx := context.Background()
	main, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	sample, store := t.TempDir(), t.TempDir()
	writeSourceTree(t, sample)
	d := newTerraformDir(t)
	d.write(string(main))
	d.env = append(d.env, EnvEndpoint+"="+srv.URL, EnvToken+"="+srv.AdminToken,
		"TF_VAR_storage_path="+store, "TF_VAR_sample_path="+sample,
		"TF_VAR_vcenter_url="+vc.URL, "TF_VAR_vcenter_thumbprint="+vc.Thumbprint,
		"TF_VAR_vcenter_username="+vc.Username, "TF_VAR_vcenter_password="+vc.Password,
		"TF_VAR_vm_name=db-01")
	d.run("apply", "-auto-approve")

	// A point of each asset: the fileset, the VM protected by hand, and
	// app-01, which the rule protects (once its selection has run).
	var assets []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pvs, err := srv.Client.ProtectedVMs().ListAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(pvs) == 2 {
			for _, pv := range pvs {
				assets = append(assets, pv.ID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the quickstart protects %d VMs, want db-01 by hand and app-01 by its rule: %+v", len(pvs), pvs)
		}
	}
	set, err := srv.Client.Filesets().Get(ctx, "sample")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range append(assets, set.ID) {
		if _, err := backUpAsset(ctx, srv, id); err != nil {
			t.Fatalf("backing up %s: %v", id, err)
		}
	}

	out, err := d.tryRun("destroy", "-auto-approve")
	if err == nil || !strings.Contains(out, "holds 3 recovery points of 3 assets") || !strings.Contains(out, "force_destroy") {
		t.Fatalf("destroying with points: want only the storage refused, with its point count:\n%s", out)
	}
	if left := serverObjects(t, srv); left != "storages: quickstart" {
		t.Fatalf("after the refused destroy the server holds %s; want only the storage", left)
	}
	points, err := srv.Client.FindPoints(ctx, api.PointFilter{}, "", 0)
	if err != nil || len(points.Items) != 3 {
		t.Fatalf("the points must outlive their assets: %+v %v", points, err)
	}

	d.env = append(d.env, "TF_VAR_storage_force_destroy=true")
	d.run("apply", "-auto-approve")
	out = d.run("destroy", "-auto-approve")
	if !strings.Contains(out, "Warning: Storage quickstart destroyed with its recovery points") ||
		!strings.Contains(out, "expired 3 recovery points") {
		t.Fatalf("the forced destroy must warn what it removed:\n%s", out)
	}
	if left := serverObjects(t, srv); left != "" {
		t.Fatalf("after destroy the server still holds %s", left)
	}
	var left []string
	filepath.WalkDir(store, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Fatalf("the destroyed storage still holds %v", left)
	}
	b, err := os.ReadFile(filepath.Join(d.dir, "terraform.tfstate"))
	var state struct {
		Resources []struct{ Type, Name string } `json:"resources"`
	}
	if err != nil || json.Unmarshal(b, &state) != nil || len(state.Resources) != 0 {
		t.Fatalf("the state still holds %+v (%v)", state.Resources, err)
	}
}

// serverObjects lists the objects a server holds, per collection.
func serverObjects(t *testing.T, srv *servertest.Server) string {
	t.Helper()
	ctx := context.Background()
	var parts []string
	add := func(what string, names []string, err error) {
		if err != nil {
			t.Fatal(errors.Join(fmt.Errorf("listing %s", what), err))
		}
		if len(names) > 0 {
			parts = append(parts, what+": "+strings.Join(names, ","))
		}
	}
	add(namesOf(srv.Client.Storages().ListAll(ctx))("storages", func(o api.Storage) string { return o.Name }))
	add(namesOf(srv.Client.Policies().ListAll(ctx))("policies", func(o api.Policy) string { return o.Name }))
	add(namesOf(srv.Client.FileServers().ListAll(ctx))("file servers", func(o api.FileServer) string { return o.Name }))
	add(namesOf(srv.Client.Filesets().ListAll(ctx))("filesets", func(o api.Fileset) string { return o.Name }))
	add(namesOf(srv.Client.VCenters().ListAll(ctx))("vcenters", func(o api.VCenter) string { return o.Name }))
	add(namesOf(srv.Client.ProtectedVMs().ListAll(ctx))("protected VMs", func(o api.ProtectedVM) string { return o.Name }))
	add(namesOf(srv.Client.VMProtectionRules().ListAll(ctx))("rules", func(o api.VMProtectionRule) string { return o.Name }))
	return strings.Join(parts, "; ")
}

// namesOf adapts a ListAll answer to serverObjects' add.
func namesOf[T any](items []T, err error) func(what string, name func(T) string) (string, []string, error) {
	return func(what string, name func(T) string) (string, []string, error) {
		var names []string
		for _, it := range items {
			names = append(names, name(it))
		}
		return what, names, err
	}
}
