package provider

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
)

func TestAccNASShareDataSource(t *testing.T) {
	srv := startParallel(t)
	config := providerConfig(srv) + nasProtectionConfig(filepath.Join(t.TempDir(), "store"), "team-a") +
		nasShareConfig("projects", "smb", "projects", "  path = \"2024\"\n  exclude = [\"*.tmp\"]") + `
data "haven_nas_share" "by_name" {
  name = haven_nas_share.test.name
}

data "haven_nas_share" "by_id" {
  id = haven_nas_share.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_nas_share.by_name", "data.haven_nas_share.by_id"} {
		for _, attr := range []string{"id", "name", "version", "nas_device_id", "protocol", "share", "path", "include", "exclude",
			"policy_id", "storage_id", "group"} {
			checks = append(checks, statecheck.CompareValuePairs(nasShareAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("path"), knownvalue.StringExact("2024")),
			statecheck.ExpectKnownValue(ds, at("exclude"), knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("*.tmp")})),
			statecheck.ExpectKnownValue(ds, at("group"), knownvalue.StringExact("team-a")),
			statecheck.CompareValuePairs(ds, at("nas_device_id"), "haven_nas_device.filer", at("id"), compare.ValuesSame()),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:      providerConfig(srv) + `data "haven_nas_share" "missing" { name = "no-such-share" }`,
				ExpectError: errorLike("No such NAS share", `The Haven server has no NAS share with name "no-such-share"`),
			},
			{Config: config, ConfigStateChecks: checks},
			{
				Config:      config + `data "haven_nas_share" "name_as_id" { id = haven_nas_share.test.name }`,
				ExpectError: errorLike("No such NAS share", `The Haven server has no NAS share with id "projects"`),
			},
			{Config: config},
		},
	})
}
