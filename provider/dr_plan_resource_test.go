package provider

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const drPlanAddr = "haven_dr_plan.test"

// drPlanConfig declares the vCenter, storage and policy of the VM tests,
// the protected VMs db-01 and app-01, an AWS target on moto, and a plan
// over both VMs; plan holds the plan's arguments after target_id.
func drPlanConfig(vc *testparts.VCSimEnv, storageDir, endpoint, plan string) string {
	return vmProtectionConfig(vc, storageDir) + fmt.Sprintf(`
resource "haven_protected_vm" "db" {
  vcenter_id    = haven_vcenter.test.id
  instance_uuid = data.haven_vm.db.instance_uuid
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
}

resource "haven_protected_vm" "app" {
  vcenter_id    = haven_vcenter.test.id
  instance_uuid = data.haven_vm.app.instance_uuid
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
}

resource "haven_aws_target" "dr" {
  name                      = "dr-plan-target"
  region                    = %q
  credentials               = "access_key"
  access_key_id             = %q
  secret_access_key         = %q
  secret_access_key_version = 1
  endpoint                  = %q
}

resource "haven_dr_plan" "test" {
  target_id = haven_aws_target.dr.id
%s
}

data "haven_dr_plan" "test" {
  name = haven_dr_plan.test.name
}
`, testparts.MotoRegion, testparts.MotoAccessKeyID, testparts.MotoSecretAccessKey, endpoint, plan)
}

func drPlanBody(name string, interval int, appName, cycle string) string {
	return fmt.Sprintf(`  name                         = %q
  replication_interval_minutes = %d

  vms = [
    {
      protected_vm_id = haven_protected_vm.db.id
      instance_type   = "m6i.large"
      probe_port      = 22
      tags            = { tier = "db" }
      %s
    },
    {
      protected_vm_id = haven_protected_vm.app.id
      name            = %q
      boot_group      = 1
      depends_on      = ["db-01"]
      user_data       = "#!/bin/sh\necho up\n"
    },
  ]

  test_network = {
    vpc_id    = "vpc-0a1b2c3d4e5f60718"
    subnet_id = "subnet-0a1b2c3d4e5f60718"
  }
`, name, interval, cycle, appName)
}

func checkDRPlansDestroyed(srv *servertest.Server) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for addr, rs := range s.RootModule().Resources {
			if rs.Type != "haven_dr_plan" {
				continue
			}
			if _, err := srv.Client.DRPlans().Get(context.Background(), rs.Primary.ID); !api.IsNotFound(err) {
				return fmt.Errorf("%s (%s) still exists after destroy (err = %v)", addr, rs.Primary.ID, err)
			}
		}
		return nil
	}
}

// TestAccDRPlanResource: a target and a plan of two VMs in two boot groups
// with a dependency; the VM name defaults to the protected VM's, the
// instance type to auto, and the plan is quiet after apply. A rename and a
// new interval update in place; a dependency cycle is refused naming the
// field; the plan imports by name; the data source reads it back.
func TestAccDRPlanResource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	endpoint := testparts.Moto(t)
	storageDir := t.TempDir()
	cfg := providerConfig(srv)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameTarget := statecheck.CompareValuePairs(drPlanAddr, at("target_id"), "haven_aws_target.dr", at("id"), compare.ValuesSame())
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkDRPlansDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + drPlanConfig(vc, storageDir, endpoint, drPlanBody("site", 60, "app", "")),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drPlanAddr, plancheck.ResourceActionCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(drPlanAddr, at("id")),
					sameTarget,
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 0, "name"), knownvalue.StringExact("db-01")),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 1, "instance_type"), knownvalue.StringExact("auto")),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 0, "boot_group"), knownvalue.Int64Exact(0)),
					statecheck.ExpectKnownValue(drPlanAddr, at("status"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue(drPlanAddr, at("status", 0, "instance_type"), knownvalue.StringExact("m6i.large")),
					statecheck.ExpectKnownValue(drPlanAddr, at("status", 1, "point_id"), knownvalue.Null()),
					statecheck.ExpectKnownValue(drPlanAddr, at("last_replication_job_id"), knownvalue.Null()),
					statecheck.ExpectKnownValue("data.haven_dr_plan.test", at("protected_vm_ids"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue("data.haven_dr_plan.test", at("replication_interval_minutes"), knownvalue.Int64Exact(60)),
				},
				Check: func(*terraform.State) error {
					p, err := srv.Client.DRPlans().Get(context.Background(), "site")
					if err != nil {
						return err
					}
					if len(p.VMs) != 2 || p.VMs[1].Name != "app" || p.VMs[1].DependsOn[0] != "db-01" || p.VMs[1].BootGroup != 1 || p.TestNetwork == nil {
						return fmt.Errorf("server holds %+v", p)
					}
					return nil
				},
			},
			{
				Config:   cfg + drPlanConfig(vc, storageDir, endpoint, drPlanBody("site", 60, "app", "")),
				PlanOnly: true,
			},
			{
				Config: cfg + drPlanConfig(vc, storageDir, endpoint, drPlanBody("site-2", 30, "web", "")),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drPlanAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(drPlanAddr, at("id")),
					statecheck.ExpectKnownValue(drPlanAddr, at("name"), knownvalue.StringExact("site-2")),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 1, "name"), knownvalue.StringExact("web")),
					statecheck.ExpectKnownValue(drPlanAddr, at("replication_interval_minutes"), knownvalue.Int64Exact(30)),
				},
			},
			{
				// db-01 waits for web, which waits for db-01: a cycle in
				// group 1 once db-01 boots there too.
				Config: cfg + drPlanConfig(vc, storageDir, endpoint, drPlanBody("site-2", 30, "web", `boot_group = 1
      depends_on = ["web"]`)),
				ExpectError: errorLike("Could not update DR plan site-2", "vms[0].depends_on", "the dependencies loop"),
			},
			{
				ResourceName:            drPlanAddr,
				ImportState:             true,
				ImportStateId:           "site-2",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"status"},
			},
		},
	})
}
