package provider

import (
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
)

func TestAccDatabaseSetDataSource(t *testing.T) {
	srv := startParallel(t)
	config := providerConfig(srv) + databaseProtectionConfig(filepath.Join(t.TempDir(), "store")) +
		databaseSetConfig("orders", "  verify_restore = true") + `
data "haven_database_set" "by_name" {
  name = haven_database_set.test.name
}

data "haven_database_set" "by_id" {
  id = haven_database_set.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_database_set.by_name", "data.haven_database_set.by_id"} {
		for _, attr := range []string{"id", "name", "version", "database_server_id", "policy_id", "storage_id",
			"verify_restore", "group"} {
			checks = append(checks, statecheck.CompareValuePairs(databaseSetAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("verify_restore"), knownvalue.Bool(true)),
			statecheck.ExpectKnownValue(ds, at("group"), knownvalue.Null()),
			statecheck.CompareValuePairs(ds, at("database_server_id"), "haven_database_server.orders", at("id"), compare.ValuesSame()),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:      providerConfig(srv) + `data "haven_database_set" "missing" { name = "no-such-set" }`,
				ExpectError: errorLike("No such database set", `The Haven server has no database set with name "no-such-set"`),
			},
			{Config: config, ConfigStateChecks: checks},
			{
				Config:      config + `data "haven_database_set" "name_as_id" { id = haven_database_set.test.name }`,
				ExpectError: errorLike("No such database set", `The Haven server has no database set with id "orders"`),
			},
			{Config: config},
		},
	})
}
