package provider

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/config"
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

const protectedVMAddr = "haven_protected_vm.test"

// vmProtectionConfig declares what protecting VMs needs: the simulator as
// haven_vcenter.test, a storage, a policy, and the VMs app-01 and db-01 as
// data sources.
func vmProtectionConfig(vc *testparts.VCSimEnv, storageDir string) string {
	return vcenterConfig(vc, "lab", vc.Password, 1, thumbprintTrust(vc.Thumbprint)) + protectionTargets(storageDir) + `
data "haven_vm" "app" {
  vcenter_id = haven_vcenter.test.id
  name       = "app-01"
}

data "haven_vm" "db" {
  vcenter_id = haven_vcenter.test.id
  name       = "db-01"
}
`
}

// protectionTargets declares the storage and policy protections refer to.
func protectionTargets(storageDir string) string {
	return fsStorageConfig("store", storageDir) + `
resource "haven_backup_policy" "test" {
  name     = "nightly"
  timezone = "UTC"

  full {
    days_of_week = ["sun"]
    at           = "01:00"
  }
  retention {
    daily_days = 7
  }
}
`
}

// protectedVMConfig declares haven_protected_vm.test for the VM of data
// source vm; extra holds further arguments.
func protectedVMConfig(vm, extra string) string {
	return fmt.Sprintf(`
resource "haven_protected_vm" "test" {
  vcenter_id    = haven_vcenter.test.id
  instance_uuid = data.haven_vm.%s.instance_uuid
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
%s
}
`, vm, extra)
}

func guestLogin(user, password string, version int) string {
	return fmt.Sprintf(`
  guest_username         = %q
  guest_password         = %q
  guest_password_version = %d
`, user, password, version)
}

// checkVMProtectionDestroyed adds the protected VMs and rules to the
// objects checkObjectsDestroyed knows.
func checkVMProtectionDestroyed(srv *servertest.Server) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ctx := context.Background()
		for addr, rs := range s.RootModule().Resources {
			var err error
			switch rs.Type {
			case "haven_protected_vm":
				_, err = srv.Client.ProtectedVMs().Get(ctx, rs.Primary.ID)
			case "haven_vm_protection_rule":
				_, err = srv.Client.VMProtectionRules().Get(ctx, rs.Primary.ID)
			default:
				continue
			}
			if !api.IsNotFound(err) {
				return fmt.Errorf("%s (%s) still exists after destroy (err = %v)", addr, rs.Primary.ID, err)
			}
		}
		return checkObjectsDestroyed(srv)(s)
	}
}

func checkProtectedVMOnServer(srv *servertest.Server, want func(*api.ProtectedVM) error) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[protectedVMAddr]
		if rs == nil {
			return fmt.Errorf("%s is not in the state", protectedVMAddr)
		}
		p, err := srv.Client.ProtectedVMs().Get(context.Background(), rs.Primary.ID)
		if err != nil {
			return fmt.Errorf("protected VM %s on the server: %w", rs.Primary.ID, err)
		}
		return want(p)
	}
}

// protectsVM checks that the server protects the VM a data source read,
// under the vCenter, policy and storage Terraform created.
func protectsVM(srv *servertest.Server, vmData string, want func(*api.ProtectedVM) error) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		root := s.RootModule()
		vm := root.Resources[vmData]
		if vm == nil {
			return fmt.Errorf("%s is not in the state", vmData)
		}
		return checkProtectedVMOnServer(srv, func(p *api.ProtectedVM) error {
			for _, ref := range []struct{ got, addr string }{
				{p.VCenterID, "haven_vcenter.test"}, {p.PolicyID, "haven_backup_policy.test"}, {p.StorageID, "haven_storage.test"},
			} {
				if rs := root.Resources[ref.addr]; rs == nil || rs.Primary.ID != ref.got {
					return fmt.Errorf("protected VM refers to %s, not to %s", ref.got, ref.addr)
				}
			}
			if p.InstanceUUID != vm.Primary.Attributes["instance_uuid"] || p.Name != vm.Primary.Attributes["name"] ||
				p.MoRef != vm.Primary.Attributes["moref"] || p.Status != api.VMActive {
				return fmt.Errorf("server protects %s %s (%s, %s), want the VM of %s", p.Name, p.InstanceUUID, p.MoRef, p.Status, vmData)
			}
			return want(p)
		})(s)
	}
}

func TestAccProtectedVMResource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	base := providerConfig(srv) + vmProtectionConfig(vc, filepath.Join(t.TempDir(), "store"))
	const password1, password2 = "guest-pw-first", "guest-pw-second"
	full := `
  exclude_disks = [data.haven_vm.db.disks[1].key]
` + guestLogin("root", password1, 1)
	sameID := statecheck.CompareValue(compare.ValuesSame())
	newVersion := statecheck.CompareValue(compare.ValuesDiffer())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkVMProtectionDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + protectedVMConfig("db", full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(protectedVMAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(protectedVMAddr, at("has_guest_password"), knownvalue.Bool(true)),
					plancheck.ExpectKnownValue(protectedVMAddr, at("app_consistent"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(protectedVMAddr, at("id")),
					newVersion.AddStateValue(protectedVMAddr, at("version")),
					statecheck.ExpectKnownValue(protectedVMAddr, at("name"), knownvalue.StringExact("db-01")),
					statecheck.ExpectKnownValue(protectedVMAddr, at("status"), knownvalue.StringExact("active")),
					statecheck.ExpectKnownValue(protectedVMAddr, at("rule_id"), knownvalue.Null()),
					statecheck.ExpectKnownValue(protectedVMAddr, at("has_guest_password"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(protectedVMAddr, at("guest_password"), knownvalue.Null()),
					statecheck.ExpectKnownValue(protectedVMAddr, at("exclude_disks"), knownvalue.SetSizeExact(1)),
					statecheck.CompareValuePairs(protectedVMAddr, at("instance_uuid"), "data.haven_vm.db", at("instance_uuid"), compare.ValuesSame()),
					statecheck.CompareValuePairs(protectedVMAddr, at("moref"), "data.haven_vm.db", at("moref"), compare.ValuesSame()),
					statecheck.CompareValuePairs(protectedVMAddr, at("exclude_disks", 0), "data.haven_vm.db", at("disks", 1, "key"), compare.ValuesSame()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(password1),
					protectsVM(srv, "data.haven_vm.db", func(p *api.ProtectedVM) error {
						if !p.HasGuestPassword || p.GuestUsername != "root" || len(p.ExcludeDisks) != 1 || p.AppConsistent != nil {
							return fmt.Errorf("server holds %+v", p)
						}
						return nil
					}),
				),
			},
			{
				// Another password under the same version is not sent:
				// Terraform cannot see write-only changes.
				Config:   base + protectedVMConfig("db", strings.Replace(full, password1, "not-sent", 1)),
				PlanOnly: true,
			},
			{
				// Settings change in place, and the stored password stays.
				Config: base + protectedVMConfig("db", `
  app_consistent = true
  group          = "team-a"
`+guestLogin("root", "not-sent", 1)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(protectedVMAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(protectedVMAddr, at("exclude_disks"), knownvalue.SetSizeExact(0)),
					plancheck.ExpectKnownValue(protectedVMAddr, at("has_guest_password"), knownvalue.Bool(true)),
					plancheck.ExpectUnknownValue(protectedVMAddr, at("version")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(protectedVMAddr, at("id")),
					newVersion.AddStateValue(protectedVMAddr, at("version")),
					statecheck.ExpectKnownValue(protectedVMAddr, at("app_consistent"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(protectedVMAddr, at("group"), knownvalue.StringExact("team-a")),
				},
				Check: protectsVM(srv, "data.haven_vm.db", func(p *api.ProtectedVM) error {
					if !p.HasGuestPassword || len(p.ExcludeDisks) != 0 || p.AppConsistent == nil || !*p.AppConsistent || p.Group != "team-a" {
						return fmt.Errorf("server holds %+v", p)
					}
					return nil
				}),
			},
			{
				// A new version sends the new password.
				Config: base + protectedVMConfig("db", `
  app_consistent = true
  group          = "team-a"
`+guestLogin("root", password2, 2)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(protectedVMAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(protectedVMAddr, at("id"))},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(password2),
					checkProtectedVMOnServer(srv, func(p *api.ProtectedVM) error {
						if !p.HasGuestPassword || p.Version != 3 {
							return fmt.Errorf("after a new password the server holds version %d, has_guest_password %v", p.Version, p.HasGuestPassword)
						}
						return nil
					}),
				),
			},
			{
				// Another guest account without a password leaves none.
				Config: base + protectedVMConfig("db", `
  app_consistent = true
  group          = "team-a"
  guest_username = "backup"
`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(protectedVMAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(protectedVMAddr, at("has_guest_password"), knownvalue.Bool(false)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(protectedVMAddr, at("has_guest_password"), knownvalue.Bool(false)),
				},
			},
			{
				// Drift: exclusions and the quiesce override changed behind
				// Terraform's back are put back.
				PreConfig: func() {
					ctx := context.Background()
					all, err := srv.Client.ProtectedVMs().ListAll(ctx)
					if err != nil || len(all) != 1 {
						t.Fatalf("protected VMs on the server: %v %d", err, len(all))
					}
					p := all[0]
					db, err := srv.Client.VMs(ctx, p.VCenterID, api.VMFilter{Name: "db-01"})
					if err != nil || len(db) != 1 {
						t.Fatalf("db-01: %v", err)
					}
					p.ExcludeDisks, p.AppConsistent = []int32{db[0].Disks[0].Key}, nil
					if _, err := srv.Client.ProtectedVMs().Update(ctx, p.ID, p.Version, api.ProtectedVMRequest{ProtectedVMSpec: p.ProtectedVMSpec}); err != nil {
						t.Fatalf("changing the protected VM behind Terraform's back: %v", err)
					}
				},
				Config: base + protectedVMConfig("db", `
  app_consistent = true
  group          = "team-a"
  guest_username = "backup"
`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(protectedVMAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(protectedVMAddr, at("exclude_disks"), knownvalue.SetSizeExact(0)),
				}},
				Check: protectsVM(srv, "data.haven_vm.db", func(p *api.ProtectedVM) error {
					if len(p.ExcludeDisks) != 0 || p.AppConsistent == nil || !*p.AppConsistent {
						return fmt.Errorf("drift was not corrected: server holds %+v", p)
					}
					return nil
				}),
			},
			{
				ResourceName:            protectedVMAddr,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"guest_password", "guest_password_version"},
			},
			{
				// The stored name works too, however the UUID is spelled.
				ResourceName: protectedVMAddr,
				ImportState:  true,
				ImportStateIdFunc: func(s *terraform.State) (string, error) {
					a := s.RootModule().Resources[protectedVMAddr].Primary.Attributes
					return a["vcenter_id"] + "/" + strings.ToUpper(a["instance_uuid"]), nil
				},
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"guest_password", "guest_password_version"},
			},
			{
				// Another VM is another protection: replaced, not updated.
				Config: base + protectedVMConfig("app", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(protectedVMAddr, plancheck.ResourceActionDestroyBeforeCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(protectedVMAddr, at("name"), knownvalue.StringExact("app-01")),
					statecheck.ExpectKnownValue(protectedVMAddr, at("has_guest_password"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(protectedVMAddr, at("group"), knownvalue.Null()),
				},
				Check: protectsVM(srv, "data.haven_vm.app", func(p *api.ProtectedVM) error {
					all, err := srv.Client.ProtectedVMs().ListAll(context.Background())
					if err != nil || len(all) != 1 {
						return fmt.Errorf("after the replacement the server protects %d VMs (err = %v)", len(all), err)
					}
					return nil
				}),
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan protects the VM again.
				PreConfig: func() {
					ctx := context.Background()
					all, err := srv.Client.ProtectedVMs().ListAll(ctx)
					if err != nil || len(all) != 1 {
						t.Fatalf("protected VMs on the server: %v %d", err, len(all))
					}
					if err := srv.Client.ProtectedVMs().Delete(ctx, all[0].ID); err != nil {
						t.Fatal(err)
					}
				},
				Config: base + protectedVMConfig("app", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(protectedVMAddr, plancheck.ResourceActionCreate),
				}},
				Check: protectsVM(srv, "data.haven_vm.app", func(*api.ProtectedVM) error { return nil }),
			},
		},
	})
}

// TestAccProtectedVMResource_serverErrors checks that what only the server
// (and the vCenter behind it) can find out is reported against the
// attribute at fault.
func TestAccProtectedVMResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	storeDir := filepath.Join(t.TempDir(), "store")
	base := providerConfig(srv) + vmProtectionConfig(vc, storeDir)
	const absent = "00000000-0000-4000-8000-000000000000"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkVMProtectionDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + strings.Replace(protectedVMConfig("db", ""), "data.haven_vm.db.instance_uuid", `"`+absent+`"`, 1),
				ExpectError: errorLike("Could not protect VM "+absent, "instance_uuid = ", "instance_uuid: vCenter",
					"has no VM with instance UUID "+absent),
			},
			{
				Config:      base + protectedVMConfig("app", "  exclude_disks = [2042]\n"),
				ExpectError: errorLike("Could not protect VM", "exclude_disks = ", `VM "app-01" has no disk with key 2042`),
			},
			{
				Config:      base + protectedVMConfig("app", "  exclude_disks = [data.haven_vm.app.disks[0].key]\n"),
				ExpectError: errorLike("Could not protect VM", "exclude_disks", "excludes every disk"),
			},
			{
				// The same VM twice: whichever comes second is refused.
				Config: base + protectedVMConfig("db", "") + `
resource "haven_protected_vm" "again" {
  vcenter_id    = haven_vcenter.test.id
  instance_uuid = data.haven_vm.db.instance_uuid
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
}
`,
				ExpectError: errorLike("Could not protect VM", "instance_uuid", `VM "db-01"`, "is already protected by protected VM"),
			},
			{
				// A vCenter whose VMs are protected is not deleted from
				// under them, whoever protects them.
				PreConfig: func() {
					ctx := context.Background()
					v, err := srv.Client.VCenters().Get(ctx, "lab")
					if err != nil {
						t.Fatal(err)
					}
					app, err := srv.Client.VMs(ctx, v.ID, api.VMFilter{Name: "app-01"})
					if err != nil || len(app) != 1 {
						t.Fatalf("app-01: %v", err)
					}
					pol, _ := srv.Client.Policies().Get(ctx, "nightly")
					stg, _ := srv.Client.Storages().Get(ctx, "store")
					if _, err := srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: api.ProtectedVMSpec{
						VCenterID: v.ID, InstanceUUID: app[0].InstanceUUID, PolicyID: pol.ID, StorageID: stg.ID,
					}}); err != nil {
						t.Fatal(err)
					}
				},
				Config:      providerConfig(srv) + protectionTargets(storeDir),
				ExpectError: errorLike("Could not delete vCenter lab", `the vCenter is used by protected VM "app-01"`),
			},
			{
				PreConfig: func() {
					ctx := context.Background()
					all, err := srv.Client.ProtectedVMs().ListAll(ctx)
					if err != nil {
						t.Fatal(err)
					}
					for _, p := range all {
						if p.Name == "app-01" {
							if err := srv.Client.ProtectedVMs().Delete(ctx, p.ID); err != nil {
								t.Fatal(err)
							}
						}
					}
				},
				Config: providerConfig(srv),
			},
		},
	})
}

func TestAccProtectedVMResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(attrs string, want ...string) resource.TestStep {
		body := map[string]string{"vcenter_id": `"` + id + `"`, "instance_uuid": `"502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69"`,
			"policy_id": `"` + id + `"`, "storage_id": `"` + id + `"`}
		for _, line := range strings.Split(attrs, "\n") {
			k, v, _ := strings.Cut(line, "=")
			body[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(body)) {
			fmt.Fprintf(&b, "  %s = %s\n", k, body[k])
		}
		return resource.TestStep{
			Config:      offlineProviderConfig + "resource \"haven_protected_vm\" \"test\" {\n" + b.String() + "}\n",
			ExpectError: errorLike(want...),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{
			step(`instance_uuid = "db-01"`, "Attribute instance_uuid must be a VM instance UUID", `got "db-01"`),
			step(`instance_uuid = "502E71FA-1A5A-E3B6-4A0B-1D2F3C4B5A69"`, "Attribute instance_uuid must be in lower case",
				`use "502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69"`),
			step(`exclude_disks = [2000, 0]`, "Attribute exclude_disks must hold virtual disks' device keys", "got 0"),
			step(`guest_password = "secret"`, `Attribute "guest_username" must be specified when "guest_password" is specified`),
			step(`vcenter_id = "lab"`, "Attribute vcenter_id must be the id of a vCenter", "not a name"),
			step(`policy_id = "gold"`, "Attribute policy_id must be the id of a backup policy"),
			step(`storage_id = "local"`, "Attribute storage_id must be the id of a storage"),
			step(`group = "team a"`, "Attribute group must start with a letter or digit"),
		},
	})
}

// TestAccProtectedVMExamples applies the documentation's examples of both
// VM protection resources against the simulator, with stand-ins for the
// objects other examples declare.
func TestAccProtectedVMExamples(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	example := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "examples", "resources", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	standIns := fmt.Sprintf(`
resource "haven_vcenter" "prod" {
  name             = "vcenter-prod"
  url              = %q
  username         = %q
  password         = %q
  password_version = 1
  thumbprint       = %q
}

resource "haven_storage" "local" {
  name = "example-local"
  kind = "filesystem"
  path = %q
}

resource "haven_storage" "offsite" {
  name = "example-offsite"
  kind = "filesystem"
  path = %q
}
`, vc.URL, vc.Username, vc.Password, vc.Thumbprint, t.TempDir(), t.TempDir())
	cfg := providerConfig(srv) + standIns + example("haven_backup_policy/resource.tf") +
		example("haven_protected_vm/resource.tf") + example("haven_vm_protection_rule/resource.tf")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkVMProtectionDestroyed(srv),
		Steps: []resource.TestStep{{
			Config:          cfg,
			ConfigVariables: config.Variables{"db_guest_password": config.StringVariable("example-guest-password")},
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("haven_protected_vm.db", at("name"), knownvalue.StringExact("db-01")),
				statecheck.ExpectKnownValue("haven_protected_vm.db", at("exclude_disks"), knownvalue.SetSizeExact(1)),
				statecheck.ExpectKnownValue("haven_protected_vm.db", at("has_guest_password"), knownvalue.Bool(true)),
				statecheck.ExpectKnownValue("haven_protected_vm.app", at("name"), knownvalue.StringExact("app-01")),
				statecheck.ExpectKnownValue("haven_vm_protection_rule.prod", at("folders"),
					knownvalue.SetExact([]knownvalue.Check{knownvalue.StringExact("/DC1/vm/prod")})),
				statecheck.ExpectKnownValue("haven_vm_protection_rule.gold_databases", at("tags"), knownvalue.SetSizeExact(2)),
			},
			Check: checkSecretNotInState("example-guest-password"),
		}},
	})
}
