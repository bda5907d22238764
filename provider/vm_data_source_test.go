package provider

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// registerVCSim registers the simulator directly through the API, so the
// data source tests do not depend on the resource.
func registerVCSim(t *testing.T, srv *servertest.Server, vc *testparts.VCSimEnv) string {
	t.Helper()
	v, err := srv.Client.VCenters().Create(context.Background(), api.VCenterRequest{VCenterSpec: api.VCenterSpec{
		Name: "lab", URL: vc.URL, Username: vc.Username, Password: vc.Password, Thumbprint: vc.Thumbprint,
	}})
	if err != nil {
		t.Fatalf("registering the simulator: %v", err)
	}
	return v.ID
}

// vmFromServer is what the server's inventory says about a VM, to compare
// the data sources with.
func vmFromServer(t *testing.T, srv *servertest.Server, vcenterID, name string) api.VM {
	t.Helper()
	vms, err := srv.Client.VMs(context.Background(), vcenterID, api.VMFilter{Name: name})
	if err != nil || len(vms) != 1 {
		t.Fatalf("VM %s on the server: %d found, err = %v", name, len(vms), err)
	}
	return vms[0]
}

func TestAccVMDataSource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	id := registerVCSim(t, srv, vc)
	app := vmFromServer(t, srv, id, "app-01")
	cfg := providerConfig(srv)

	byName := fmt.Sprintf(`
data "haven_vm" "by_name" {
  vcenter_id = %q
  name       = "app-01"
}
`, id)
	// The second lookups take their keys from the first, so they can only
	// agree if the first one read real values.
	byKeys := byName + fmt.Sprintf(`
data "haven_vm" "by_uuid" {
  vcenter_id    = %[1]q
  instance_uuid = data.haven_vm.by_name.instance_uuid
}

data "haven_vm" "by_moref" {
  vcenter_id = %[1]q
  moref      = data.haven_vm.by_name.moref
}

data "haven_vm" "by_path" {
  vcenter_id     = %[1]q
  inventory_path = data.haven_vm.by_name.inventory_path
}
`, id)
	checkSame := func(attr string) []statecheck.StateCheck {
		c := statecheck.CompareValue(compare.ValuesSame())
		return []statecheck.StateCheck{
			c.AddStateValue("data.haven_vm.by_name", at(attr)),
			c.AddStateValue("data.haven_vm.by_uuid", at(attr)),
			c.AddStateValue("data.haven_vm.by_moref", at(attr)),
			c.AddStateValue("data.haven_vm.by_path", at(attr)),
		}
	}
	var keyChecks []statecheck.StateCheck
	for _, a := range []string{"name", "inventory_path", "instance_uuid", "moref", "folder", "disks"} {
		keyChecks = append(keyChecks, checkSame(a)...)
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg + byName,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("name"), knownvalue.StringExact("app-01")),
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("folder"), knownvalue.StringExact("/DC0/vm/prod")),
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("inventory_path"), knownvalue.StringExact("/DC0/vm/prod/app-01")),
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("instance_uuid"), knownvalue.StringExact(app.InstanceUUID)),
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("moref"), knownvalue.StringExact(app.MoRef)),
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("power_state"), knownvalue.StringExact(app.PowerState)),
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("tags"), knownvalue.ListExact([]knownvalue.Check{})),
					statecheck.ExpectKnownValue("data.haven_vm.by_name", at("disks"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"key":            knownvalue.Int64Exact(int64(app.Disks[0].Key)),
							"label":          knownvalue.StringExact(app.Disks[0].Label),
							"capacity_bytes": knownvalue.Int64Exact(testparts.VCSimDiskSize),
						}),
					})),
				},
			},
			{
				Config:            cfg + byKeys,
				ConfigStateChecks: keyChecks,
			},
			{
				Config: cfg + fmt.Sprintf(`
data "haven_vm" "missing" {
  vcenter_id = %q
  name       = "no-such-vm"
}
`, id),
				ExpectError: errorLike("No such VM", `name       = "no-such-vm"`, fmt.Sprintf(`vCenter %s has no VM with name "no-such-vm"`, id)),
			},
			{
				// A folder is not a VM, even though it has an inventory path.
				Config: cfg + fmt.Sprintf(`
data "haven_vm" "folder" {
  vcenter_id     = %q
  inventory_path = "/DC0/vm/prod"
}
`, id),
				ExpectError: errorLike("No such VM", `has no VM with inventory_path "/DC0/vm/prod"`),
			},
			{
				Config: cfg + `
data "haven_vm" "unknown_vcenter" {
  vcenter_id = "00000000-0000-4000-8000-000000000000"
  name       = "app-01"
}
`,
				ExpectError: errorLike("No such vCenter", `no vCenter with id "00000000-0000-4000-8000-000000000000"`),
			},
		},
	})
}

func TestAccVMDataSource_invalid(t *testing.T) {
	const id = "00000000-0000-4000-8000-000000000000"
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      offlineProviderConfig + `data "haven_vm" "x" { vcenter_id = "` + id + `" }`,
				ExpectError: errorLike("Missing Attribute Configuration", "Exactly one of these attributes must be configured", "[name,inventory_path,instance_uuid,moref]"),
			},
			{
				Config: offlineProviderConfig + `data "haven_vm" "x" {
  vcenter_id = "` + id + `"
  name       = "app-01"
  moref      = "vm-42"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", "Exactly one of these attributes must be configured", "[name,inventory_path,instance_uuid,moref]"),
			},
			{
				Config: offlineProviderConfig + `data "haven_vm" "x" {
  name       = "app-01"
  vcenter_id = "lab"
}`,
				ExpectError: errorLike("Attribute vcenter_id must be the id of a vCenter"),
			},
			{
				Config: offlineProviderConfig + `data "haven_vms" "x" {
  vcenter_id = "` + id + `"
  name_regex = "db-("
}`,
				ExpectError: errorLike("Attribute name_regex is not a valid regular expression"),
			},
		},
	})
}
