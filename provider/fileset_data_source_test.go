package provider

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccFilesetDataSource(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	config := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store")) +
		filesetConfig("docs", []string{src}, `  exclude_globs = ["*.bak"]`) + `
data "haven_fileset" "by_name" {
  name = haven_fileset.test.name
}

data "haven_fileset" "by_id" {
  id = haven_fileset.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_fileset.by_name", "data.haven_fileset.by_id"} {
		for _, attr := range []string{"id", "name", "version", "file_server_id", "include_paths", "exclude_globs",
			"policy_id", "storage_id", "group"} {
			checks = append(checks, statecheck.CompareValuePairs(
				filesetAddr, tfjsonpath.New(attr), ds, tfjsonpath.New(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("include_paths"), stringsExact(src)),
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("exclude_globs"), stringsExact("*.bak")),
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("group"), knownvalue.Null()),
			statecheck.CompareValuePairs(ds, tfjsonpath.New("policy_id"), "haven_backup_policy.test", tfjsonpath.New("id"), compare.ValuesSame()),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:      providerConfig(srv) + `data "haven_fileset" "missing" { name = "no-such-fileset" }`,
				ExpectError: errorLike("No such fileset", `The Haven server has no fileset with name "no-such-fileset"`),
			},
			{Config: config, ConfigStateChecks: checks},
			{
				Config:      config + `data "haven_fileset" "name_as_id" { id = haven_fileset.test.name }`,
				ExpectError: errorLike("No such fileset", `The Haven server has no fileset with id "docs"`),
			},
			{Config: config},
		},
	})
}
