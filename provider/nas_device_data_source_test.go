package provider

import (
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"
)

func TestAccNASDeviceDataSource(t *testing.T) {
	srv := startParallel(t)
	const password = "data-source-nas-Pa55"
	config := providerConfig(srv) + nasProxiesConfig +
		nasDeviceConfig("filer", smbArgs(password, 1)+"  nfs_port = 2049\n  group = \"team-a\"\n") + `
data "haven_nas_device" "by_name" {
  name = haven_nas_device.test.name
}

data "haven_nas_device" "by_id" {
  id = haven_nas_device.test.id
}
`
	var checks []statecheck.StateCheck
	for _, ds := range []string{"data.haven_nas_device.by_name", "data.haven_nas_device.by_id"} {
		for _, attr := range []string{"id", "name", "version", "host", "protocols", "smb_user", "smb_domain", "nfs_uid", "nfs_gid",
			"nfs_port", "nfs_mount_port", "proxy_file_server_ids", "group", "has_smb_password", "has_smb_keytab"} {
			checks = append(checks, statecheck.CompareValuePairs(nasDeviceAddr, at(attr), ds, at(attr), compare.ValuesSame()))
		}
		checks = append(checks,
			statecheck.ExpectKnownValue(ds, at("host"), knownvalue.StringExact("filer.example.com")),
			statecheck.ExpectKnownValue(ds, at("protocols"), knownvalue.SetExact([]knownvalue.Check{
				knownvalue.StringExact("smb"), knownvalue.StringExact("nfs")})),
			statecheck.ExpectKnownValue(ds, at("nfs_port"), knownvalue.Int64Exact(2049)),
			statecheck.ExpectKnownValue(ds, at("nfs_mount_port"), knownvalue.Null()),
			statecheck.ExpectKnownValue(ds, at("group"), knownvalue.StringExact("team-a")),
			statecheck.ExpectKnownValue(ds, at("has_smb_password"), knownvalue.Bool(true)),
			statecheck.ExpectKnownValue(ds, at("has_smb_keytab"), knownvalue.Bool(false)),
			statecheck.ExpectKnownValue(ds, at("proxy_file_server_ids"), knownvalue.SetSizeExact(1)),
		)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		// The resource's password is write-only.
		TerraformVersionChecks: []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:           checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: providerConfig(srv) + `data "haven_nas_device" "both" {
  id   = "x"
  name = "filer"
}`,
				ExpectError: errorLike("Invalid Attribute Combination", `Exactly one of these attributes must be configured: [id,name]`),
			},
			{
				Config:      providerConfig(srv) + `data "haven_nas_device" "missing" { name = "no-such-device" }`,
				ExpectError: errorLike("No such NAS device", `The Haven server has no NAS device with name "no-such-device"`),
			},
			{
				Config:            config,
				ConfigStateChecks: checks,
				// The password reaches the server, never the data source.
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(password),
					resource.TestCheckNoResourceAttr("data.haven_nas_device.by_id", "smb_password"),
				),
			},
			{
				Config:      config + `data "haven_nas_device" "name_as_id" { id = haven_nas_device.test.name }`,
				ExpectError: errorLike("No such NAS device", `The Haven server has no NAS device with id "filer"`),
			},
			{Config: config},
		},
	})
}
