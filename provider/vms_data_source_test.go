package provider

import (
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestAccVMsDataSource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	id := registerVCSim(t, srv, vc)
	db := vmFromServer(t, srv, id, "db-01")
	cfg := providerConfig(srv)
	names := func(addr string, want func([]string) error) resource.TestCheckFunc {
		return func(s *terraform.State) error {
			rs := s.RootModule().Resources[addr]
			if rs == nil {
				return fmt.Errorf("%s is not in the state", addr)
			}
			var got []string
			for i := 0; ; i++ {
				n, ok := rs.Primary.Attributes[fmt.Sprintf("vms.%d.name", i)]
				if !ok {
					break
				}
				got = append(got, n)
			}
			return want(got)
		}
	}
	contains := func(l []string, s string) bool {
		for _, x := range l {
			if x == s {
				return true
			}
		}
		return false
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: cfg + fmt.Sprintf(`
data "haven_vms" "prod" {
  vcenter_id = %[1]q
  folder     = "/DC0/vm/prod"
}

data "haven_vms" "db" {
  vcenter_id = %[1]q
  name_regex = "^db-"
}

data "haven_vms" "all" {
  vcenter_id = %[1]q
}

data "haven_vms" "none" {
  vcenter_id = %[1]q
  name_regex = "^no-such-vm$"
}
`, id),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.haven_vms.db", at("vms"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectPartial(map[string]knownvalue.Check{
							"name":           knownvalue.StringExact("db-01"),
							"folder":         knownvalue.StringExact("/DC0/vm"),
							"inventory_path": knownvalue.StringExact("/DC0/vm/db-01"),
							"instance_uuid":  knownvalue.StringExact(db.InstanceUUID),
							"vcenter_id":     knownvalue.StringExact(id),
							"disks": knownvalue.ListExact([]knownvalue.Check{
								knownvalue.ObjectPartial(map[string]knownvalue.Check{"capacity_bytes": knownvalue.Int64Exact(testparts.VCSimDiskSize)}),
								knownvalue.ObjectPartial(map[string]knownvalue.Check{"capacity_bytes": knownvalue.Int64Exact(testparts.VCSimDiskSize / 2)}),
							}),
						}),
					})),
					statecheck.ExpectKnownValue("data.haven_vms.none", at("vms"), knownvalue.ListExact([]knownvalue.Check{})),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					names("data.haven_vms.prod", func(got []string) error {
						if !contains(got, "app-01") || contains(got, "db-01") {
							return fmt.Errorf("folder /DC0/vm/prod lists %v: want app-01 and not db-01", got)
						}
						return nil
					}),
					names("data.haven_vms.all", func(got []string) error {
						// The model's stock VMs are there too.
						if !contains(got, "app-01") || !contains(got, "db-01") || len(got) < 3 {
							return fmt.Errorf("all VMs are %v: want app-01, db-01 and the model's own", got)
						}
						return nil
					}),
				),
			},
		},
	})
}
