package provider

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const ruleAddr = "haven_vm_protection_rule.test"

// ruleConfig declares haven_vm_protection_rule.test; selectors holds the
// selector and exclusion arguments.
func ruleConfig(name, selectors string) string {
	return fmt.Sprintf(`
resource "haven_vm_protection_rule" "test" {
  name       = %q
  vcenter_id = haven_vcenter.test.id
  policy_id  = haven_backup_policy.test.id
  storage_id = haven_storage.test.id
%s
}
`, name, selectors)
}

func stringSetExact(items ...string) knownvalue.Check {
	checks := make([]knownvalue.Check, len(items))
	for i, s := range items {
		checks[i] = knownvalue.StringExact(s)
	}
	return knownvalue.SetExact(checks)
}

// ruleOnServer checks the rule the server holds under name, and that it
// refers to the objects Terraform created.
func ruleOnServer(srv *servertest.Server, name string, want func(*api.VMProtectionRule) error) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		r, err := srv.Client.VMProtectionRules().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("rule %s on the server: %w", name, err)
		}
		root := s.RootModule()
		for _, ref := range []struct{ got, addr string }{
			{r.VCenterID, "haven_vcenter.test"}, {r.PolicyID, "haven_backup_policy.test"}, {r.StorageID, "haven_storage.test"},
		} {
			if rs := root.Resources[ref.addr]; rs == nil || rs.Primary.ID != ref.got {
				return fmt.Errorf("rule %s refers to %s, not to %s", name, ref.got, ref.addr)
			}
		}
		return want(r)
	}
}

func TestAccVMProtectionRuleResource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	base := providerConfig(srv) + vmProtectionConfig(vc, filepath.Join(t.TempDir(), "store"))
	const skipped = "502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69"
	first := `
  folders                = ["/DC0/vm/prod"]
  tags                   = ["backup:gold", "backup:silver"]
  name_regex             = "^app-"
  exclude_instance_uuids = ["` + skipped + `"]
`
	// No VM of the simulator is in these folders: the selection
	// reconciler, which runs when a rule changes, must not protect VMs
	// that would hold on to the vCenter when the test destroys it.
	second := `
  folders            = ["/DC0/vm/staging", "/DC0/vm/legacy"]
  exclude_name_regex = "-(test|tmp)$"
  group              = "team-a"
`
	sameID := statecheck.CompareValue(compare.ValuesSame())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkVMProtectionDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + ruleConfig("prod", first),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(ruleAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(ruleAddr, at("exclude_name_regex"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(ruleAddr, at("id")),
					statecheck.ExpectKnownValue(ruleAddr, at("folders"), stringSetExact("/DC0/vm/prod")),
					statecheck.ExpectKnownValue(ruleAddr, at("tags"), stringSetExact("backup:gold", "backup:silver")),
					statecheck.ExpectKnownValue(ruleAddr, at("name_regex"), knownvalue.StringExact("^app-")),
					statecheck.ExpectKnownValue(ruleAddr, at("exclude_instance_uuids"), stringSetExact(skipped)),
					statecheck.ExpectKnownValue(ruleAddr, at("selected_count"), knownvalue.Int64Exact(0)),
					statecheck.ExpectKnownValue(ruleAddr, at("group"), knownvalue.Null()),
				},
				Check: ruleOnServer(srv, "prod", func(r *api.VMProtectionRule) error {
					if !sameSet(r.Tags, []string{"backup:gold", "backup:silver"}) || r.NameRegex != "^app-" ||
						!slices.Equal(r.ExcludeInstanceUUIDs, []string{skipped}) || r.Group != "" {
						return fmt.Errorf("server holds %+v", r)
					}
					return nil
				}),
			},
			{
				// Renaming and other selectors: in place.
				Config: base + ruleConfig("production", second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(ruleAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(ruleAddr, at("tags"), knownvalue.SetSizeExact(0)),
					plancheck.ExpectKnownValue(ruleAddr, at("name_regex"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(ruleAddr, at("id")),
					statecheck.ExpectKnownValue(ruleAddr, at("name"), knownvalue.StringExact("production")),
					statecheck.ExpectKnownValue(ruleAddr, at("folders"), stringSetExact("/DC0/vm/staging", "/DC0/vm/legacy")),
					statecheck.ExpectKnownValue(ruleAddr, at("exclude_instance_uuids"), knownvalue.SetSizeExact(0)),
					statecheck.ExpectKnownValue(ruleAddr, at("version"), knownvalue.Int64Exact(2)),
				},
				Check: ruleOnServer(srv, "production", func(r *api.VMProtectionRule) error {
					if len(r.Tags) != 0 || r.NameRegex != "" || r.ExcludeNameRegex != "-(test|tmp)$" || r.Group != "team-a" || len(r.Folders) != 2 {
						return fmt.Errorf("server holds %+v", r)
					}
					return nil
				}),
			},
			{
				// Drift: selectors changed behind Terraform's back are put back.
				PreConfig: func() {
					ctx := context.Background()
					r, err := srv.Client.VMProtectionRules().Get(ctx, "production")
					if err != nil {
						t.Fatalf("reading rule: %v", err)
					}
					r.Folders, r.NameRegex = []string{"/DC0/vm/elsewhere"}, "^none$"
					if _, err := srv.Client.VMProtectionRules().Update(ctx, r.ID, r.Version, api.VMProtectionRuleRequest{VMProtectionRuleSpec: r.VMProtectionRuleSpec}); err != nil {
						t.Fatalf("changing the rule behind Terraform's back: %v", err)
					}
				},
				Config: base + ruleConfig("production", second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(ruleAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(ruleAddr, at("name_regex"), knownvalue.Null()),
				}},
				Check: ruleOnServer(srv, "production", func(r *api.VMProtectionRule) error {
					if r.NameRegex != "" || !sameSet(r.Folders, []string{"/DC0/vm/staging", "/DC0/vm/legacy"}) {
						return fmt.Errorf("drift was not corrected: server holds %+v", r)
					}
					return nil
				}),
			},
			{
				ResourceName:      ruleAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				ResourceName:      ruleAddr,
				ImportState:       true,
				ImportStateId:     "production",
				ImportStateVerify: true,
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan creates it again.
				PreConfig: func() {
					ctx := context.Background()
					r, err := srv.Client.VMProtectionRules().Get(ctx, "production")
					if err != nil {
						t.Fatal(err)
					}
					if err := srv.Client.VMProtectionRules().Delete(ctx, r.ID); err != nil {
						t.Fatal(err)
					}
				},
				Config: base + ruleConfig("production", second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(ruleAddr, plancheck.ResourceActionCreate),
				}},
				Check: ruleOnServer(srv, "production", func(*api.VMProtectionRule) error { return nil }),
			},
			{
				// Another rule may not take the name.
				Config: base + ruleConfig("production", second) + `
resource "haven_vm_protection_rule" "twin" {
  name       = "production"
  vcenter_id = haven_vcenter.test.id
  name_regex = "^db-"
  policy_id  = haven_backup_policy.test.id
  storage_id = haven_storage.test.id
}
`,
				ExpectError: errorLike("Could not create VM protection rule production", `name = "production"`,
					"another VM protection rule already has this name"),
			},
		},
	})
}

// TestAccVMProtectionRuleResource_serverErrors checks that references the
// server cannot find are reported against their attribute.
func TestAccVMProtectionRuleResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	base := providerConfig(srv) + vmProtectionConfig(vc, filepath.Join(t.TempDir(), "store"))
	const absent = "00000000-0000-4000-8000-000000000000"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkVMProtectionDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:      base + strings.Replace(ruleConfig("orphan", `  name_regex = "."`), "haven_vcenter.test.id", `"`+absent+`"`, 1),
				ExpectError: errorLike("Could not create VM protection rule orphan", "vcenter_id = ", "vcenter_id:", absent, "does not exist"),
			},
			{
				Config:      base + strings.Replace(ruleConfig("orphan", `  name_regex = "."`), "haven_storage.test.id", `"`+absent+`"`, 1),
				ExpectError: errorLike("Could not create VM protection rule orphan", "storage_id = ", "does not exist"),
			},
		},
	})
}

func TestAccVMProtectionRuleResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(attrs string, want ...string) resource.TestStep {
		body := map[string]string{"name": `"prod"`, "vcenter_id": `"` + id + `"`, "policy_id": `"` + id + `"`,
			"storage_id": `"` + id + `"`, "folders": `["/DC0/vm/prod"]`}
		for _, line := range strings.Split(attrs, "\n") {
			k, v, _ := strings.Cut(line, "=")
			if v == "" {
				delete(body, strings.TrimSpace(k))
				continue
			}
			body[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(body)) {
			fmt.Fprintf(&b, "  %s = %s\n", k, body[k])
		}
		return resource.TestStep{
			Config:      offlineProviderConfig + "resource \"haven_vm_protection_rule\" \"test\" {\n" + b.String() + "}\n",
			ExpectError: errorLike(want...),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(`folders = ["prod"]`, "Attribute folders", "must be an inventory path such as /DC0/vm/prod", `got "prod"`),
			step(`folders = ["/DC0/vm/prod/"]`, "Attribute folders", "must be an inventory path"),
			step(`tags = ["gold"]`, "Attribute tags", "must be written category:tag", `got "gold"`),
			step(`name_regex = "db-("`, "Attribute name_regex", "is not a valid regular expression", "missing closing )"),
			step(`exclude_name_regex = "["`, "Attribute exclude_name_regex", "is not a valid regular expression"),
			step(`name_regex = ""`, "Attribute name_regex string length must be at least 1"),
			step(`exclude_instance_uuids = ["db-01"]`, "Attribute exclude_instance_uuids", "must be a VM instance UUID"),
			step(`exclude_instance_uuids = ["502E71FA-1A5A-E3B6-4A0B-1D2F3C4B5A69"]`, "Attribute exclude_instance_uuids",
				"must be in lower case", `use "502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69"`),
			step("folders", "VM protection rule selects nothing", "give at least one selector: folders, tags or name_regex"),
			step("folders = []", "VM protection rule selects nothing"),
			step(`vcenter_id = "lab"`, "Attribute vcenter_id must be the id of a vCenter"),
			step(`name = "prod vms"`, "Attribute name must start with a letter or digit"),
		},
	})
}
