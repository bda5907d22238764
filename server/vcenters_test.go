package server_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestVCenterRegistrationAndInventory registers the in-process vCenter
// simulator: the server logs in (a wrong password, an untrusted or
// mismatched certificate each get a 422 on the field to fix), keeps the
// password sealed, and serves the inventory with lookups and filters.
func TestVCenterRegistrationAndInventory(t *testing.T) {
	vc := testparts.VCSim(t)
	srv := servertest.Start(t)
	ctx := context.Background()
	spec := api.VCenterSpec{Name: "lab", URL: vc.URL, Username: vc.Username, Password: vc.Password, Thumbprint: vc.Thumbprint}

	for _, c := range []struct {
		mutate func(*api.VCenterSpec)
		field  string
		says   string
	}{
		{func(s *api.VCenterSpec) { s.Password = "wrong-" + vc.Password }, "password", "rejected"},
		{func(s *api.VCenterSpec) { s.Thumbprint = strings.Repeat("AB:", 31) + "AB" }, "thumbprint", vc.Thumbprint},
		{func(s *api.VCenterSpec) { s.URL = "https://127.0.0.1:1/sdk" }, "url", "cannot be reached"},
		{func(s *api.VCenterSpec) { s.Thumbprint = "" }, "thumbprint", "trust"},
	} {
		bad := spec
		c.mutate(&bad)
		_, err := srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: bad})
		e, ok := err.(*api.Error)
		if !ok || e.Field != c.field || !strings.Contains(e.Message, c.says) || strings.Contains(e.Message, vc.Password) {
			t.Errorf("%s: got %v", c.field, err)
		}
	}

	v, err := srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != "connected" || !v.HasPassword || v.Password != "" || v.CheckedAt == nil {
		t.Fatalf("registered vCenter: %+v", v)
	}
	// A CA instead of a pin works too, and an update may keep the password.
	ca, err := os.ReadFile(vc.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	keep := spec
	keep.Password, keep.Thumbprint, keep.CAPEM = "", "", string(ca)
	if _, err := srv.Client.VCenters().Update(ctx, v.ID, v.Version, api.VCenterRequest{VCenterSpec: keep}); err != nil {
		t.Fatalf("update with a CA, keeping the password: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/vcenters/"+v.ID, nil)
	req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(raw), vc.Password) || strings.Contains(srv.Logs(), vc.Password) {
		t.Fatal("the vCenter password leaked into an answer or the log")
	}

	all, err := srv.Client.VMs(ctx, v.ID, api.VMFilter{})
	if err != nil {
		t.Fatal(err)
	}
	app, err := srv.Client.VMs(ctx, v.ID, api.VMFilter{Name: "app-01"})
	if err != nil || len(app) != 1 || app[0].Folder != "/DC0/vm/prod" || len(app[0].Disks) != 1 || app[0].InstanceUUID == "" {
		t.Fatalf("app-01 by name: %v %+v", err, app)
	}
	for _, f := range []api.VMFilter{{InstanceUUID: strings.ToUpper(app[0].InstanceUUID)}, {MoRef: app[0].MoRef}, {InventoryPath: app[0].InventoryPath}} {
		got, err := srv.Client.VMs(ctx, v.ID, f)
		if err != nil || len(got) != 1 || got[0].MoRef != app[0].MoRef {
			t.Errorf("lookup %+v: %v %+v", f, err, got)
		}
	}
	prod, _ := srv.Client.VMs(ctx, v.ID, api.VMFilter{Folder: "/DC0/vm/prod"})
	dbs, _ := srv.Client.VMs(ctx, v.ID, api.VMFilter{NameRegex: "^db-"})
	if len(prod) != 1 || prod[0].Name != "app-01" || len(dbs) != 1 || dbs[0].Name != "db-01" || len(all) < 2 {
		t.Fatalf("filters: prod %+v, ^db- %+v, all %d", prod, dbs, len(all))
	}
	_, err = srv.Client.VMs(ctx, v.ID, api.VMFilter{NameRegex: "("})
	if e, ok := err.(*api.Error); !ok || e.Field != "name_regex" {
		t.Fatalf("bad regex: %v", err)
	}
}
