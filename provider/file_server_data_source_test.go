package provider

import (
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccFileServerDataSource(t *testing.T) {
	srv := startParallel(t)
	config := providerConfig(srv) +
		fileServerConfig("agent", "nas", "nas01.example.com", "windows", "agent") + `
data "haven_file_server" "by_name" {
  name = haven_file_server.agent.name
}

data "haven_file_server" "by_id" {
  id = haven_file_server.agent.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_file_server.by_name", "data.haven_file_server.by_id"} {
		for _, attr := range []string{"id", "name", "version", "hostname", "os", "location", "agent_status"} {
			checks = append(checks, statecheck.CompareValuePairs(
				agentServerAddr, tfjsonpath.New(attr), ds, tfjsonpath.New(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("os"), knownvalue.StringExact("windows")),
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("agent_status"), knownvalue.StringExact("pending")),
			// No agent has ever called in.
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("agent_last_seen"), knownvalue.Null()),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: providerConfig(srv) + `data "haven_file_server" "both" {
  id   = "x"
  name = "nas"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", `Exactly one of these attributes must be configured: [id,name]`),
			},
			{
				Config:      providerConfig(srv) + `data "haven_file_server" "missing" { name = "no-such-host" }`,
				ExpectError: errorLike("No such file server", `The Haven server has no file server with name "no-such-host"`),
			},
			{
				Config:            config,
				ConfigStateChecks: checks,
				// The data source never exposes the activation token.
				Check: resource.TestCheckNoResourceAttr("data.haven_file_server.by_id", "activation_token"),
			},
			{
				Config:      config + `data "haven_file_server" "name_as_id" { id = haven_file_server.agent.name }`,
				ExpectError: regexp.MustCompile(`The Haven server has no file server with id "nas"`),
			},
			{Config: config},
		},
	})
}
