package provider

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const drPlanAddr = "haven_dr_plan.test"

// drPlanConfig declares the vCenter, storage and policy of the VM tests,
// the protected VMs db-01 and app-01, a VM protection rule of the VMs
// named web-*, an AWS target on moto, and a plan over them; plan holds the
// plan's arguments after target_id.
func drPlanConfig(vc *testparts.VCSimEnv, storageDir, endpoint, plan string) string {
	return vmProtectionConfig(vc, storageDir) + ruleConfig("web-vms", `  name_regex = "^web-"`) + fmt.Sprintf(`
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

// webEntry is the plan's entry of the rule's VMs, after app.
const webEntry = `protection_rule_id = haven_vm_protection_rule.test.id
      boot_group         = 1
      depends_on         = ["db-01"]`

// drPlanBody is a plan of db-01, app-01 (named appName) and, when web
// holds its lines, a third entry; cycle holds further lines of db-01's.
func drPlanBody(name string, interval int, appName, cycle, web string) string {
	if web != "" {
		web = "    {\n      " + web + "\n    },\n"
	}
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
%s  ]

  test_network = {
    vpc_id    = "vpc-0a1b2c3d4e5f60718"
    subnet_id = "subnet-0a1b2c3d4e5f60718"
  }
`, name, interval, cycle, appName, web)
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
// with a dependency, and a third entry naming a VM protection rule; a VM's
// name defaults to the protected VM's, the rule entry's to the rule's, the
// instance type to auto, and the plan is quiet after apply. Once the rule
// has protected web-01, the plan's status lists it under its VM name. An
// entry naming neither or both of a protected VM and a rule, a rule entry
// with a private address, and a rule given by name are refused at plan
// time, naming the attribute. A rename and a new interval update in place;
// a dependency cycle is refused naming the field; the plan imports by
// name; the data source reads it back.
func TestAccDRPlanResource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	vc.CreateVM(t, vcsimlab.VMSpec{Name: "web-01", DiskSizes: []int64{1 << 20}})
	endpoint := testparts.Moto(t)
	storageDir := t.TempDir()
	cfg := providerConfig(srv)
	config := func(name string, interval int, appName, cycle, web string) string {
		return cfg + drPlanConfig(vc, storageDir, endpoint, drPlanBody(name, interval, appName, cycle, web))
	}
	sameID := statecheck.CompareValue(compare.ValuesSame())
	sameTarget := statecheck.CompareValuePairs(drPlanAddr, at("target_id"), "haven_aws_target.dr", at("id"), compare.ValuesSame())
	sameRule := func(addr string, p ...any) statecheck.StateCheck {
		return statecheck.CompareValuePairs(addr, at(p[0].(string), p[1:]...), ruleAddr, at("id"), compare.ValuesSame())
	}
	const ds = "data.haven_dr_plan.test"
	var webVM string // the protected VM the rule made of web-01
	refused := func(web string, phrases ...string) resource.TestStep {
		return resource.TestStep{Config: config("site", 60, "app", "", web), PlanOnly: true, ExpectError: errorLike(phrases...)}
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkDRPlansDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: config("site", 60, "app", "", webEntry),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(drPlanAddr, plancheck.ResourceActionCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(drPlanAddr, at("id")),
					sameTarget,
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 0, "name"), knownvalue.StringExact("db-01")),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 0, "protection_rule_id"), knownvalue.Null()),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 1, "instance_type"), knownvalue.StringExact("auto")),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 0, "boot_group"), knownvalue.Int64Exact(0)),
					sameRule(drPlanAddr, "vms", 2, "protection_rule_id"),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 2, "protected_vm_id"), knownvalue.Null()),
					statecheck.ExpectKnownValue(drPlanAddr, at("vms", 2, "name"), knownvalue.StringExact("web-vms")),
					statecheck.ExpectKnownValue(drPlanAddr, at("status", 0, "instance_type"), knownvalue.StringExact("m6i.large")),
					statecheck.ExpectKnownValue(drPlanAddr, at("status", 1, "point_id"), knownvalue.Null()),
					statecheck.ExpectKnownValue(drPlanAddr, at("last_replication_job_id"), knownvalue.Null()),
					statecheck.ExpectKnownValue(ds, at("protected_vm_ids"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue(ds, at("protection_rule_ids"), knownvalue.ListSizeExact(1)),
					sameRule(ds, "protection_rule_ids", 0),
					statecheck.ExpectKnownValue(ds, at("replication_interval_minutes"), knownvalue.Int64Exact(60)),
				},
				Check: func(s *terraform.State) error {
					p, err := srv.Client.DRPlans().Get(context.Background(), "site")
					if err != nil {
						return err
					}
					rule := s.RootModule().Resources[ruleAddr].Primary.ID
					if len(p.VMs) != 3 || p.VMs[1].Name != "app" || p.VMs[1].DependsOn[0] != "db-01" || p.VMs[1].BootGroup != 1 || p.TestNetwork == nil ||
						p.VMs[2].ProtectionRuleID != rule || p.VMs[2].ProtectedVMID != "" || p.VMs[2].Name != "web-vms" {
						return fmt.Errorf("server holds %+v", p)
					}
					return nil
				},
			},
			{
				// Once the rule's selection has run, the status lists its
				// VM under the VM's name, after the plan's own VMs.
				PreConfig: func() { webVM = ruleProtectedVM(t, srv, "web-01") },
				Config:    config("site", 60, "app", "", webEntry),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(drPlanAddr, at("status"), knownvalue.ListSizeExact(3)),
					statecheck.ExpectKnownValue(drPlanAddr, at("status", 2, "name"), knownvalue.StringExact("web-01")),
					statecheck.ExpectKnownValue(drPlanAddr, at("status", 2, "protected_vm_id"), lazyCheck("the rule's protected VM", func(v any) error {
						if v != webVM {
							return fmt.Errorf("status[2].protected_vm_id = %v, want %s, which the rule made of web-01", v, webVM)
						}
						return nil
					})),
					statecheck.ExpectKnownValue(ds, at("status", 2, "name"), knownvalue.StringExact("web-01")),
				},
			},
			refused(`boot_group = 1`, "Missing protected VM", "Attribute vms[2].protected_vm_id is required"),
			refused(webEntry+"\n      protected_vm_id = haven_protected_vm.app.id", "Conflicting VM references",
				"Attribute vms[2].protection_rule_id cannot be given with protected_vm_id"),
			refused(webEntry+"\n      subnet_id = \"subnet-0a1b2c3d4e5f60718\"\n      private_ip = \"10.0.1.5\"",
				"Private IP with a protection rule", "Attribute vms[2].private_ip cannot be given with protection_rule_id"),
			// The server stores a rule given by name as its id, which would
			// read back as a change: only the id is taken.
			refused(`protection_rule_id = "web-vms"`, "Attribute vms[2].protection_rule_id must be the id of a VM protection rule",
				"not a name"),
			{
				Config:   config("site", 60, "app", "", webEntry),
				PlanOnly: true,
			},
			{
				Config: config("site-2", 30, "web", "", webEntry),
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
				Config: config("site-2", 30, "web", `boot_group = 1
      depends_on = ["web"]`, webEntry),
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

// ruleProtectedVM waits for a VM protection rule's selection to protect
// the VM named vmName, and returns the protected VM's id.
func ruleProtectedVM(t *testing.T, srv *servertest.Server, vmName string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pvs, err := srv.Client.ProtectedVMs().ListAll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, pv := range pvs {
			if pv.Name == vmName && pv.RuleID != "" {
				return pv.ID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rule protects %s after 30 s: %+v", vmName, pvs)
		}
	}
}
