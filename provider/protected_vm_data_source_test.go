package provider

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestAccProtectedVMDataSource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	const password = "guest-pw-for-lookup"
	base := providerConfig(srv) + vmProtectionConfig(vc, filepath.Join(t.TempDir(), "store"))
	config := base + protectedVMConfig("db", `
  exclude_disks  = [data.haven_vm.db.disks[1].key]
  app_consistent = true
  group          = "databases"
`+guestLogin("root", password, 1)) + `
data "haven_protected_vm" "by_id" {
  id = haven_protected_vm.test.id
}

data "haven_protected_vm" "by_uuid" {
  vcenter_id    = haven_vcenter.test.id
  instance_uuid = data.haven_vm.db.instance_uuid
  depends_on    = [haven_protected_vm.test]
}

data "haven_protected_vm" "by_name" {
  vcenter_id = haven_vcenter.test.id
  name       = "db-01"
  depends_on = [haven_protected_vm.test]
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_protected_vm.by_id", "data.haven_protected_vm.by_uuid", "data.haven_protected_vm.by_name"} {
		for _, attr := range []string{"id", "version", "vcenter_id", "instance_uuid", "name", "policy_id", "storage_id",
			"exclude_disks", "app_consistent", "guest_username", "group", "moref", "status", "rule_id", "has_guest_password"} {
			checks = append(checks, statecheck.CompareValuePairs(protectedVMAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("name"), knownvalue.StringExact("db-01")),
			statecheck.ExpectKnownValue(ds, at("status"), knownvalue.StringExact("active")),
			statecheck.ExpectKnownValue(ds, at("exclude_disks"), knownvalue.SetSizeExact(1)),
			statecheck.ExpectKnownValue(ds, at("app_consistent"), knownvalue.Bool(true)),
			statecheck.ExpectKnownValue(ds, at("guest_username"), knownvalue.StringExact("root")),
			statecheck.ExpectKnownValue(ds, at("has_guest_password"), knownvalue.Bool(true)),
			statecheck.ExpectKnownValue(ds, at("rule_id"), knownvalue.Null()),
			statecheck.CompareValuePairs(ds, at("instance_uuid"), "data.haven_vm.db", at("instance_uuid"), compare.ValuesSame()),
		)
	}
	lookup := func(body string) string {
		return config + "data \"haven_protected_vm\" \"lookup\" {\n" + body + "\n}\n"
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkVMProtectionDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:      offlineProviderConfig + `data "haven_protected_vm" "none" {}`,
				ExpectError: errorLike("Missing Attribute Configuration", "Exactly one of these attributes must be configured: [id,instance_uuid,name]"),
			},
			{
				Config:      offlineProviderConfig + `data "haven_protected_vm" "no_vcenter" { name = "db-01" }`,
				ExpectError: errorLike("Invalid Attribute Combination", `Attribute "vcenter_id" must be specified when "name" is specified`),
			},
			{
				Config: offlineProviderConfig + `data "haven_protected_vm" "id_and_vcenter" {
  id         = "0b7c3e9a-2f41-4d8e-b6a5-7c1d9e3f5a20"
  vcenter_id = "0b7c3e9a-2f41-4d8e-b6a5-7c1d9e3f5a21"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", `Attribute "id" cannot be specified when "vcenter_id" is specified`),
			},
			{
				Config: config,
				ConfigStateChecks: append(checks,
					statecheck.ExpectKnownValue("data.haven_protected_vm.by_id", at("id"), knownvalue.StringRegexp(uuidShaped))),
				Check: checkSecretNotInState(password),
			},
			{
				// app-01 exists but is not protected.
				Config: lookup(`  vcenter_id    = haven_vcenter.test.id
  instance_uuid = data.haven_vm.app.instance_uuid`),
				ExpectError: errorLike("No such protected VM", "The Haven server protects no VM with instance_uuid"),
			},
			{
				Config: lookup(`  vcenter_id = haven_vcenter.test.id
  name       = "app-01"`),
				ExpectError: errorLike("No such protected VM", `The Haven server protects no VM with name "app-01" in vCenter`),
			},
			{
				// Right VM, wrong vCenter: the policy's id stands in for one.
				Config: lookup(`  vcenter_id    = haven_backup_policy.test.id
  instance_uuid = data.haven_vm.db.instance_uuid`),
				ExpectError: errorLike("No such protected VM", "protects no VM with instance_uuid"),
			},
			{
				// The stored name is not an id.
				Config:      lookup(`  id = "${haven_vcenter.test.id}/${data.haven_vm.db.instance_uuid}"`),
				ExpectError: errorLike("No such protected VM", "protects no VM with id"),
			},
			{Config: config},
		},
	})
}
