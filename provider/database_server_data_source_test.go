package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
)

func TestAccDatabaseServerDataSource(t *testing.T) {
	srv := startParallel(t)
	const password = "data-source-Pa55word"
	config := providerConfig(srv) + databaseHostsConfig +
		databaseServerConfig("orders", "db01", passwordArgs(password, 1)+"  port = 5433\n  group = \"team-a\"\n") + `
data "haven_database_server" "by_name" {
  name = haven_database_server.test.name
}

data "haven_database_server" "by_id" {
  id = haven_database_server.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_database_server.by_name", "data.haven_database_server.by_id"} {
		for _, attr := range []string{"id", "name", "version", "file_server_id", "engine", "host", "port", "user",
			"database", "group", "has_password", "detected"} {
			checks = append(checks, statecheck.CompareValuePairs(databaseServerAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("engine"), knownvalue.StringExact("postgresql")),
			statecheck.ExpectKnownValue(ds, at("host"), knownvalue.StringExact("/var/run/postgresql")),
			statecheck.ExpectKnownValue(ds, at("port"), knownvalue.Int64Exact(5433)),
			statecheck.ExpectKnownValue(ds, at("database"), knownvalue.StringExact("postgres")),
			statecheck.ExpectKnownValue(ds, at("group"), knownvalue.StringExact("team-a")),
			statecheck.ExpectKnownValue(ds, at("has_password"), knownvalue.Bool(true)),
			statecheck.ExpectKnownValue(ds, at("detected"), knownvalue.Null()),
			statecheck.CompareValuePairs(ds, at("file_server_id"), "haven_file_server.db01", at("id"), compare.ValuesSame()),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		// The resource's password is write-only.
		TerraformVersionChecks: []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:           checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: providerConfig(srv) + `data "haven_database_server" "both" {
  id   = "x"
  name = "orders"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", `Exactly one of these attributes must be configured: [id,name]`),
			},
			{
				Config:      providerConfig(srv) + `data "haven_database_server" "missing" { name = "no-such-server" }`,
				ExpectError: errorLike("No such database server", `The Haven server has no database server with name "no-such-server"`),
			},
			{
				Config:            config,
				ConfigStateChecks: checks,
				// The password reaches the server, never the data source.
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(password),
					resource.TestCheckNoResourceAttr("data.haven_database_server.by_id", "password"),
				),
			},
			{
				Config:      config + `data "haven_database_server" "name_as_id" { id = haven_database_server.test.name }`,
				ExpectError: errorLike("No such database server", `The Haven server has no database server with id "orders"`),
			},
			{Config: config},
		},
	})
}
