package provider

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
)

// TestAccNASExamples applies the NAS device and share examples that the
// documentation is built from, and reads them back with the data source
// examples, so the docs cannot show configuration that does not work.
func TestAccNASExamples(t *testing.T) {
	srv := startParallel(t)
	example := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The share example backs up into the storage example's storages,
	// whose s3 buckets are not real: stand-ins of the same addresses.
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
	nas := providerConfig(srv) + example("resources/haven_backup_policy/resource.tf") + standIns +
		example("resources/haven_nas_device/resource.tf") + example("resources/haven_nas_share/resource.tf")
	const password = "example-smb-password"
	vars := config.Variables{"filer_smb_password": config.StringVariable(password)}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:          nas,
				ConfigVariables: vars,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_nas_device.filer", at("has_smb_password"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue("haven_nas_device.filer", at("smb_password"), knownvalue.Null()),
					statecheck.ExpectKnownValue("haven_nas_device.archive", at("has_smb_password"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue("haven_nas_share.finance", at("group"), knownvalue.StringExact("file-services")),
					statecheck.ExpectKnownValue("haven_nas_share.home", at("group"), knownvalue.Null()),
				},
				Check: checkSecretNotInState(password),
			},
			{
				Config:          nas + example("data-sources/haven_nas_device/data-source.tf") + example("data-sources/haven_nas_share/data-source.tf"),
				ConfigVariables: vars,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("filer", at("has_smb_password"), knownvalue.Bool(true)),
					statecheck.ExpectKnownOutputValueAtPath("filer", at("protocols"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.StringExact("nfs"), knownvalue.StringExact("smb")})),
					statecheck.ExpectKnownOutputValue("finance_share", knownvalue.StringExact("smb: projects/departments/finance")),
				},
			},
		},
	})
}
