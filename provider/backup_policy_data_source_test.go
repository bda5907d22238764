package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func TestAccBackupPolicyDataSource(t *testing.T) {
	srv := startParallel(t)
	config := providerConfig(srv) + policyMonthly + `
data "haven_backup_policy" "by_name" {
  name = haven_backup_policy.test.name
}

data "haven_backup_policy" "by_id" {
  id = haven_backup_policy.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_backup_policy.by_name", "data.haven_backup_policy.by_id"} {
		for _, attr := range []string{"id", "name", "version", "description", "timezone", "full", "incremental", "retention",
			"tiering", "log_backup_interval_minutes", "window_hours", "bandwidth_mbps", "app_consistent",
			"pre_freeze_script", "post_thaw_script", "script_timeout_seconds", "cbt"} {
			checks = append(checks, statecheck.CompareValuePairs(
				policyAddr, tfjsonpath.New(attr), ds, tfjsonpath.New(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("full").AtMapKey("at"), knownvalue.StringExact("03:00")),
			statecheck.ExpectKnownValue(ds, tfjsonpath.New("tiering").AtMapKey("cold_after_days"), knownvalue.Int64Exact(180)),
		)
	}
	minimalChecks := []statecheck.StateCheck{
		// Without a tiering block the resource shows none, while the data
		// source shows what the server applies.
		statecheck.ExpectKnownValue("data.haven_backup_policy.by_name", tfjsonpath.New("tiering"), knownvalue.ObjectExact(map[string]knownvalue.Check{
			"warm_days": knownvalue.Int64Exact(90), "cold_after_days": knownvalue.Null(),
		})),
		statecheck.ExpectKnownValue("data.haven_backup_policy.by_name", tfjsonpath.New("incremental"), knownvalue.Null()),
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkPoliciesDestroyed(srv),
		Steps: []resource.TestStep{
			{Config: config, ConfigStateChecks: checks},
			{Config: providerConfig(srv) + policyMinimal + `
data "haven_backup_policy" "by_name" {
  name = haven_backup_policy.test.name
}
`, ConfigStateChecks: minimalChecks},
			{
				Config:      providerConfig(srv) + `data "haven_backup_policy" "missing" { name = "nope" }`,
				ExpectError: errorLike("No such backup policy", `The Haven server has no backup policy with name "nope"`),
			},
		},
	})
}
