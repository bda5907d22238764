package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestAccVCenterDataSource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	config := providerConfig(srv) + vcenterConfig(vc, "lab", vc.Password, 1, thumbprintTrust(vc.Thumbprint)) + `
data "haven_vcenter" "by_name" {
  name = haven_vcenter.test.name
}

data "haven_vcenter" "by_id" {
  id = haven_vcenter.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_vcenter.by_name", "data.haven_vcenter.by_id"} {
		for _, attr := range []string{"id", "name", "version", "url", "username", "thumbprint", "ca_pem", "insecure",
			"group", "has_password", "status", "status_message"} {
			checks = append(checks, statecheck.CompareValuePairs(vcenterAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("url"), knownvalue.StringExact(vc.URL)),
			statecheck.ExpectKnownValue(ds, at("thumbprint"), knownvalue.StringExact(vc.Thumbprint)),
			statecheck.ExpectKnownValue(ds, at("status"), knownvalue.StringExact("connected")),
			statecheck.ExpectKnownValue(ds, at("has_password"), knownvalue.Bool(true)),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		// The resource's password is write-only.
		TerraformVersionChecks: []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:           checkVCentersDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: providerConfig(srv) + `data "haven_vcenter" "both" {
  id   = "x"
  name = "lab"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", `Exactly one of these attributes must be configured: [id,name]`),
			},
			{
				Config:      providerConfig(srv) + `data "haven_vcenter" "missing" { name = "no-such-vcenter" }`,
				ExpectError: errorLike("No such vCenter", `The Haven server has no vCenter with name "no-such-vcenter"`),
			},
			{
				Config:            config,
				ConfigStateChecks: checks,
				// The password reaches the server, never the data source.
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(vc.Password),
					resource.TestCheckNoResourceAttr("data.haven_vcenter.by_id", "password"),
				),
			},
			{
				Config:      config + `data "haven_vcenter" "name_as_id" { id = haven_vcenter.test.name }`,
				ExpectError: errorLike("No such vCenter", `The Haven server has no vCenter with id "lab"`),
			},
			{Config: config},
		},
	})
}
