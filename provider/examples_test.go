package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestAccExamples runs the examples that the documentation is built from,
// so the docs cannot show configuration that does not work.
func TestAccExamples(t *testing.T) {
	srv := servertest.Start(t)
	example := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The storage data source example looks up a storage by name; its
	// resource example cannot be applied here (its s3 buckets are not
	// real), so the storage is made directly.
	if _, err := srv.Client.Storages().Create(context.Background(), api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: "local-disk", Kind: api.StorageFilesystem, Path: t.TempDir(),
	}}); err != nil {
		t.Fatal(err)
	}
	cfg := providerConfig(srv)
	policies := example("resources/haven_backup_policy/resource.tf")
	// The fileset example uses the storages of the storage example, which
	// cannot be applied here: stand-ins with the same addresses take their
	// place.
	standIns := fmt.Sprintf(`
resource "haven_storage" "local" {
  name = "example-local"
  kind = "filesystem"
  path = %q
}

resource "haven_storage" "offsite" {
  name = "example-offsite"
  kind = "filesystem"
  path = %q
}
`, t.TempDir(), t.TempDir())
	protection := policies + standIns + example("resources/haven_file_server/resource.tf") +
		example("resources/haven_fileset/resource.tf")

	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:          cfg + example("resources/haven_storage/resource.tf"),
				ConfigVariables: config.Variables{"s3_secret_access_key": config.StringVariable("example-secret")},
				// With PlanOnly, the "post-apply" plan is the only plan.
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_storage.local", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_storage.offsite", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_storage.minio", plancheck.ResourceActionCreate),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg + policies,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_backup_policy.sql", at("incremental", "every_hours"), knownvalue.Int64Exact(4)),
				},
			},
			{
				Config: cfg + policies + example("data-sources/haven_backup_policy/data-source.tf") +
					example("data-sources/haven_storage/data-source.tf"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("gold_schedule", knownvalue.StringExact("full on sun at 01:00 (Europe/Paris)")),
					statecheck.ExpectKnownOutputValue("gold_keeps_yearlies_for", knownvalue.Int64Exact(7)),
					statecheck.ExpectKnownOutputValueAtPath("local_storage", at("kind"), knownvalue.StringExact("filesystem")),
				},
			},
			{
				Config: cfg + protection,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_fileset.finance", at("include_paths"),
						stringsExact(`D:\Shares\Finance`, `D:\Shares\Payroll`)),
					statecheck.ExpectKnownValue("haven_fileset.finance", at("group"), knownvalue.StringExact("finance")),
					statecheck.ExpectKnownValue("haven_file_server.this_host", at("activation_token"), knownvalue.Null()),
					statecheck.ExpectKnownOutputValue("nas_activation_token", knownvalue.StringRegexp(regexp.MustCompile(`^\S{20,}$`))),
				},
			},
			{
				Config: cfg + protection + example("data-sources/haven_file_server/data-source.tf") +
					example("data-sources/haven_fileset/data-source.tf"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("nas_agent", at("os"), knownvalue.StringExact("windows")),
					statecheck.ExpectKnownOutputValueAtPath("nas_agent", at("agent_status"), knownvalue.StringExact("pending")),
					statecheck.ExpectKnownOutputValue("finance_paths", stringsExact(`D:\Shares\Finance`, `D:\Shares\Payroll`)),
				},
			},
			{
				// The restore example writes to /srv/restore and to the
				// original locations, which a test must not touch: plan it.
				Config:          cfg + protection + example("resources/haven_restore/resource.tf"),
				ConfigVariables: config.Variables{"point_id": config.StringVariable("0b7c3e9a-2f41-4d8e-b6a5-7c1d9e3f5a20")},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_restore.inspect", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_restore.alice", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_restore.alice", at("wait"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue("haven_restore.inspect", at("conflict"), knownvalue.StringExact("overwrite")),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}
