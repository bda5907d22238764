package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// TestAccRecoveryPointsDataSource_invalid checks that bad filters fail at
// plan time, before any server is asked. The lookups themselves are
// tested with real points in TestAccRecoveryPointDataSources.
func TestAccRecoveryPointsDataSource_invalid(t *testing.T) {
	step := func(typ, body string, want ...string) resource.TestStep {
		return resource.TestStep{
			Config:      offlineProviderConfig + "data \"" + typ + "\" \"test\" {\n" + body + "\n}\n",
			ExpectError: errorLike(want...),
		}
	}
	const asset = `asset_id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"`
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step("haven_recovery_points", `kind = "weekly"`, "Attribute kind value must be one of", `"differential"`),
			step("haven_recovery_points", `tier = "hot"`, "Attribute tier value must be one of", `"warm"`, `"cold"`),
			step("haven_recovery_points", `asset_id = "docs"`,
				"Attribute asset_id must be the id of a protected asset", `got "docs"`),
			step("haven_recovery_points", `created_after = "yesterday"`,
				"Attribute created_after must be an RFC 3339 time", `got "yesterday"`),
			step("haven_recovery_points", `created_before = "2026-03-01 00:00:00"`,
				"Attribute created_before must be an RFC 3339 time"),
			step("haven_recovery_points", `created_after  = "2026-03-01T00:00:00Z"
created_before = "2026-03-01T01:00:00+01:00"`,
				"Empty time range", "created_before (2026-03-01T01:00:00+01:00) must be later than created_after"),
			step("haven_recovery_points", `limit = 0`, "Attribute limit value must be between 1 and 10000, got: 0"),
			step("haven_recovery_points", `limit = 10001`, "Attribute limit value must be between 1 and 10000, got: 10001"),
			step("haven_recovery_point", `kind = "full"`, `The argument "asset_id" is required`),
			step("haven_recovery_point", asset+`
at = "2026-03-01"`, "Attribute at must be an RFC 3339 time", `got "2026-03-01"`),
			step("haven_recovery_point", asset+`
kind = "snapshot"`, "Attribute kind value must be one of"),
			step("haven_recovery_point", `asset_id = "docs"`, "Attribute asset_id must be the id of a protected asset"),
			step("haven_recovery_point", asset+`
covers_time = "17:59"`, "Attribute covers_time must be an RFC 3339 time", `got "17:59"`),
			step("haven_recovery_point", asset+`
at          = "2026-03-01T18:00:00Z"
covers_time = "2026-03-01T17:59:00Z"`, "Invalid Attribute Combination",
				`Attribute "covers_time" cannot be specified when "at" is specified`),
		},
	})
}
