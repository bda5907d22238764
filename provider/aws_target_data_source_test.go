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

func TestAccAWSTargetDataSource(t *testing.T) {
	srv := startParallel(t)
	endpoint := testparts.Moto(t)
	n := newMotoNetwork(t, endpoint, 114)
	config := providerConfig(srv) + awsTargetConfig(endpoint, "dr", awsTargetSecret, 1, awsNetwork(n.vpc, n.subnets[0], n.groups[0], n.groups[1])) + `
data "haven_aws_target" "by_name" {
  name = haven_aws_target.test.name
}

data "haven_aws_target" "by_id" {
  id = haven_aws_target.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_aws_target.by_name", "data.haven_aws_target.by_id"} {
		for _, attr := range []string{"id", "name", "version", "region", "credentials", "access_key_id", "role_arn", "external_id",
			"endpoint", "vpc_id", "subnet_id", "security_group_ids", "group", "has_secret", "account_id", "status", "status_message"} {
			checks = append(checks, statecheck.CompareValuePairs(awsTargetAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("region"), knownvalue.StringExact(testparts.MotoRegion)),
			statecheck.ExpectKnownValue(ds, at("vpc_id"), knownvalue.StringExact(n.vpc)),
			statecheck.ExpectKnownValue(ds, at("security_group_ids"), knownvalue.SetExact([]knownvalue.Check{
				knownvalue.StringExact(n.groups[0]), knownvalue.StringExact(n.groups[1])})),
			statecheck.ExpectKnownValue(ds, at("account_id"), knownvalue.StringRegexp(accountID)),
			statecheck.ExpectKnownValue(ds, at("status"), knownvalue.StringExact("connected")),
			statecheck.ExpectKnownValue(ds, at("has_secret"), knownvalue.Bool(true)),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		// The resource's secret is write-only.
		TerraformVersionChecks: []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:           checkAWSTargetsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: providerConfig(srv) + `data "haven_aws_target" "both" {
  id   = "x"
  name = "dr"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", `Exactly one of these attributes must be configured: [id,name]`),
			},
			{
				Config:      providerConfig(srv) + `data "haven_aws_target" "missing" { name = "no-such-target" }`,
				ExpectError: errorLike("No such AWS target", `The Haven server has no AWS target with name "no-such-target"`),
			},
			{
				Config:            config,
				ConfigStateChecks: checks,
				// The secret reaches the server, never the data source.
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(awsTargetSecret),
					resource.TestCheckNoResourceAttr("data.haven_aws_target.by_id", "secret_access_key"),
				),
			},
			{
				Config:      config + `data "haven_aws_target" "name_as_id" { id = haven_aws_target.test.name }`,
				ExpectError: errorLike("No such AWS target", `The Haven server has no AWS target with id "dr"`),
			},
			{Config: config},
		},
	})
}
