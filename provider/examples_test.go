package provider

import (
	"context"
	"os"
	"path/filepath"
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

	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkPoliciesDestroyed(srv),
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
		},
	})
}
