package provider

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestAccVMProtectionRuleDataSource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	// Folders no VM of the simulator is in: see TestAccVMProtectionRuleResource.
	config := providerConfig(srv) + vmProtectionConfig(vc, filepath.Join(t.TempDir(), "store")) + ruleConfig("staging", `
  folders                = ["/DC0/vm/staging"]
  tags                   = ["backup:gold"]
  exclude_name_regex     = "-tmp$"
  exclude_instance_uuids = ["502e71fa-1a5a-e3b6-4a0b-1d2f3c4b5a69"]
  group                  = "team-a"
`) + `
data "haven_vm_protection_rule" "by_name" {
  name = haven_vm_protection_rule.test.name
}

data "haven_vm_protection_rule" "by_id" {
  id = haven_vm_protection_rule.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_vm_protection_rule.by_name", "data.haven_vm_protection_rule.by_id"} {
		for _, attr := range []string{"id", "name", "version", "vcenter_id", "folders", "tags", "name_regex", "exclude_name_regex",
			"exclude_instance_uuids", "policy_id", "storage_id", "group", "selected_count"} {
			checks = append(checks, statecheck.CompareValuePairs(ruleAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("folders"), stringSetExact("/DC0/vm/staging")),
			statecheck.ExpectKnownValue(ds, at("exclude_name_regex"), knownvalue.StringExact("-tmp$")),
			statecheck.ExpectKnownValue(ds, at("name_regex"), knownvalue.Null()),
			statecheck.ExpectKnownValue(ds, at("group"), knownvalue.StringExact("team-a")),
			statecheck.CompareValuePairs(ds, at("vcenter_id"), "haven_vcenter.test", at("id"), compare.ValuesSame()),
			statecheck.CompareValuePairs(ds, at("policy_id"), "haven_backup_policy.test", at("id"), compare.ValuesSame()),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkVMProtectionDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:      providerConfig(srv) + `data "haven_vm_protection_rule" "neither" {}`,
				ExpectError: errorLike("Missing Attribute Configuration", `Exactly one of these attributes must be configured: [id,name]`),
			},
			{
				Config:      providerConfig(srv) + `data "haven_vm_protection_rule" "missing" { name = "no-such-rule" }`,
				ExpectError: errorLike("No such VM protection rule", `The Haven server has no VM protection rule with name "no-such-rule"`),
			},
			{Config: config, ConfigStateChecks: checks},
			{
				Config:      config + `data "haven_vm_protection_rule" "name_as_id" { id = haven_vm_protection_rule.test.name }`,
				ExpectError: errorLike("No such VM protection rule", `The Haven server has no VM protection rule with id "staging"`),
			},
			{Config: config},
		},
	})
}
