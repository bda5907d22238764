package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccStorageDataSource(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	config := providerConfig(srv) + fsStorageConfig("archive", dir) + `
data "haven_storage" "by_name" {
  name = haven_storage.test.name
}

data "haven_storage" "by_id" {
  id = haven_storage.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_storage.by_name", "data.haven_storage.by_id"} {
		for _, attr := range []string{"id", "name", "version", "kind", "path", "has_secret", "force_path_style", "bucket", "region"} {
			checks = append(checks, statecheck.CompareValuePairs(
				storageAddr, tfjsonpath.New(attr), ds, tfjsonpath.New(attr), compare.ValuesSame()))
		}
		checks = append(checks, statecheck.ExpectKnownValue(ds, tfjsonpath.New("path"), knownvalue.StringExact(dir)))
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkStoragesDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: providerConfig(srv) + `data "haven_storage" "both" {
  id   = "x"
  name = "archive"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", `Exactly one of these attributes must be configured: [id,name]`),
			},
			{
				Config:      providerConfig(srv) + `data "haven_storage" "missing" { name = "no-such-storage" }`,
				ExpectError: errorLike("No such storage", `The Haven server has no storage with name "no-such-storage"`),
			},
			{Config: config, ConfigStateChecks: checks},
			{
				// The server's Get also takes names, but a name given as
				// id must not find the storage.
				Config:      config + `data "haven_storage" "name_as_id" { id = haven_storage.test.name }`,
				ExpectError: errorLike("No such storage", `The Haven server has no storage with id "archive"`),
			},
			// So that the final destroy runs on a configuration that reads.
			{Config: config},
		},
	})
}
