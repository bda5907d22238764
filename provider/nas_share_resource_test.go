package provider

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const nasShareAddr = "haven_nas_share.test"

// nasProtectionConfig declares what a NAS share needs: the storage and
// policy of protectionConfig, a proxy host, and haven_nas_device.filer,
// serving SMB and NFS, of group.
func nasProtectionConfig(storageDir, group string) string {
	return nasDeviceHostConfig(storageDir) + fmt.Sprintf(`
resource "haven_nas_device" "filer" {
  name                  = "filer"
  host                  = "filer.example.com"
  protocols             = ["smb", "nfs"]
  smb_user              = "backup"
  smb_password          = "share-test-Pa55"
  proxy_file_server_ids = [haven_file_server.proxy1.id]
  group                 = %q
}
`, group)
}

// nasDeviceHostConfig is nasProtectionConfig without the device.
func nasDeviceHostConfig(storageDir string) string {
	return protectionConfig(storageDir) + `
resource "haven_file_server" "proxy1" {
  name     = "proxy1"
  hostname = "proxy1.example.com"
  os       = "linux"
  location = "agent"
}
`
}

// nasShareConfig declares haven_nas_share.test on haven_nas_device.filer;
// extra holds further arguments.
func nasShareConfig(name, protocol, share, extra string) string {
	return fmt.Sprintf(`
resource "haven_nas_share" "test" {
  name          = %q
  nas_device_id = haven_nas_device.filer.id
  protocol      = %q
  share         = %q
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
%s
}
`, name, protocol, share, extra)
}

// nasShareIs checks that the server holds the share with the ids of the
// objects Terraform created, not merely something Terraform believes.
func nasShareIs(srv *servertest.Server, name string, want api.NASShareSpec, group string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		root := s.RootModule()
		got, err := srv.Client.NASShares().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("NAS share %s on the server: %w", name, err)
		}
		for _, ref := range []struct{ got, addr string }{
			{got.NASDeviceID, "haven_nas_device.filer"}, {got.PolicyID, "haven_backup_policy.test"}, {got.StorageID, "haven_storage.test"},
		} {
			if rs := root.Resources[ref.addr]; rs == nil || rs.Primary.ID != ref.got {
				return fmt.Errorf("NAS share %s refers to %s, not to %s", name, ref.got, ref.addr)
			}
		}
		if got.Protocol != want.Protocol || got.Share != want.Share || got.Path != want.Path || !slices.Equal(got.Include, want.Include) ||
			!slices.Equal(got.Exclude, want.Exclude) || got.Group != group {
			return fmt.Errorf("server holds %+v group %q; want %+v group %q", got.NASShareSpec, got.Group, want, group)
		}
		return nil
	}
}

func TestAccNASShareResource(t *testing.T) {
	srv := startParallel(t)
	store := filepath.Join(t.TempDir(), "store")
	base := providerConfig(srv) + nasProtectionConfig(store, "team-a")
	sameID := statecheck.CompareValue(compare.ValuesSame())
	selected := "  path    = \"departments/finance\"\n  include = [\"**/*.xlsx\", \"**/*.docx\"]\n  exclude = [\"~$*\"]\n"

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + nasShareConfig("projects", "smb", "projects", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasShareAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(nasShareAddr, at("include"), knownvalue.ListExact([]knownvalue.Check{})),
					plancheck.ExpectUnknownValue(nasShareAddr, at("group")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(nasShareAddr, at("id")),
					statecheck.ExpectKnownValue(nasShareAddr, at("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(nasShareAddr, at("group"), knownvalue.StringExact("team-a")),
					statecheck.ExpectKnownValue(nasShareAddr, at("path"), knownvalue.Null()),
					statecheck.CompareValuePairs(nasShareAddr, at("nas_device_id"), "haven_nas_device.filer", at("id"), compare.ValuesSame()),
				},
				Check: nasShareIs(srv, "projects", api.NASShareSpec{Protocol: "smb", Share: "projects"}, "team-a"),
			},
			{
				// A new name, a directory and globs: in place.
				Config: base + nasShareConfig("finance", "smb", "projects", selected),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasShareAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(nasShareAddr, at("id")),
					statecheck.ExpectKnownValue(nasShareAddr, at("version"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue(nasShareAddr, at("group"), knownvalue.StringExact("team-a")),
				},
				Check: nasShareIs(srv, "finance", api.NASShareSpec{Protocol: "smb", Share: "projects", Path: "departments/finance",
					Include: []string{"**/*.xlsx", "**/*.docx"}, Exclude: []string{"~$*"}}, "team-a"),
			},
			{
				// The same data over NFS: in place.
				Config: base + nasShareConfig("finance", "nfs", "/export/projects", selected),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasShareAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(nasShareAddr, at("id"))},
				Check: nasShareIs(srv, "finance", api.NASShareSpec{Protocol: "nfs", Share: "/export/projects", Path: "departments/finance",
					Include: []string{"**/*.xlsx", "**/*.docx"}, Exclude: []string{"~$*"}}, "team-a"),
			},
			{
				// Drift: the directory and the globs changed behind
				// Terraform's back are put back by the next apply.
				PreConfig: func() {
					ctx := context.Background()
					s, err := srv.Client.NASShares().Get(ctx, "finance")
					if err != nil {
						t.Fatalf("reading NAS share: %v", err)
					}
					s.Path, s.Include = "", nil
					if _, err := srv.Client.NASShares().Update(ctx, s.ID, s.Version, api.NASShareRequest{NASShareSpec: s.NASShareSpec}); err != nil {
						t.Fatalf("changing NAS share behind Terraform's back: %v", err)
					}
				},
				Config: base + nasShareConfig("finance", "nfs", "/export/projects", selected),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(nasShareAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(nasShareAddr, at("path"), knownvalue.StringExact("departments/finance")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(nasShareAddr, at("id"))},
				Check: nasShareIs(srv, "finance", api.NASShareSpec{Protocol: "nfs", Share: "/export/projects", Path: "departments/finance",
					Include: []string{"**/*.xlsx", "**/*.docx"}, Exclude: []string{"~$*"}}, "team-a"),
			},
			{
				ResourceName:      nasShareAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				ResourceName:      nasShareAddr,
				ImportState:       true,
				ImportStateId:     "finance",
				ImportStateVerify: true,
			},
			{
				// The device moves to another group: the share follows
				// without an update of its own.
				Config: providerConfig(srv) + nasProtectionConfig(store, "team-b") + nasShareConfig("finance", "nfs", "/export/projects", selected),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_nas_device.filer", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(nasShareAddr, plancheck.ResourceActionNoop),
				}},
				Check: nasShareIs(srv, "finance", api.NASShareSpec{Protocol: "nfs", Share: "/export/projects", Path: "departments/finance",
					Include: []string{"**/*.xlsx", "**/*.docx"}, Exclude: []string{"~$*"}}, "team-b"),
			},
			{
				// and the next refresh reads the new group.
				Config: providerConfig(srv) + nasProtectionConfig(store, "team-b") + nasShareConfig("finance", "nfs", "/export/projects", selected),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(nasShareAddr, at("group"), knownvalue.StringExact("team-b")),
				},
			},
			{
				// A NAS device a share uses cannot be deleted, and
				// Terraform says why: here a share made outside Terraform.
				PreConfig: func() {
					ctx := context.Background()
					s, err := srv.Client.NASShares().Get(ctx, "finance")
					if err != nil {
						t.Fatal(err)
					}
					spec := s.NASShareSpec
					spec.Name = "intruder"
					if _, err := srv.Client.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: spec}); err != nil {
						t.Fatal(err)
					}
				},
				Config:      providerConfig(srv) + nasDeviceHostConfig(store),
				ExpectError: errorLike("Could not delete NAS device filer", "the NAS device is used by NAS share", `"intruder"`),
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan creates it again.
				PreConfig: func() {
					ctx := context.Background()
					for _, name := range []string{"intruder", "finance"} {
						s, err := srv.Client.NASShares().Get(ctx, name)
						if api.IsNotFound(err) {
							continue // the failed step destroyed it already
						}
						if err != nil {
							t.Fatal(err)
						}
						if err := srv.Client.NASShares().Delete(ctx, s.ID); err != nil {
							t.Fatal(err)
						}
					}
				},
				Config: providerConfig(srv) + nasProtectionConfig(store, "team-b") + nasShareConfig("finance", "smb", "projects", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasShareAddr, plancheck.ResourceActionCreate),
				}},
				Check: nasShareIs(srv, "finance", api.NASShareSpec{Protocol: "smb", Share: "projects"}, "team-b"),
			},
		},
	})
}

// TestAccNASShareResource_serverErrors checks that what only the server
// can find out is reported against the attribute at fault: a protocol the
// device does not serve, a device that does not exist.
func TestAccNASShareResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	base := providerConfig(srv) + nasDeviceHostConfig(filepath.Join(t.TempDir(), "store")) + `
resource "haven_nas_device" "filer" {
  name                  = "exports"
  host                  = "192.0.2.30"
  protocols             = ["nfs"]
  proxy_file_server_ids = [haven_file_server.proxy1.id]
}
`
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + nasShareConfig("projects", "smb", "projects", ""),
				ExpectError: errorLike("Could not create NAS share projects", `protocol      = "smb"`,
					`protocol: NAS device "exports" serves [nfs], not "smb"`),
			},
			{
				Config: base + `
resource "haven_nas_share" "test" {
  name          = "orphan"
  nas_device_id = "00000000-0000-4000-8000-000000000000"
  protocol      = "nfs"
  share         = "/export/home"
  policy_id     = haven_backup_policy.test.id
  storage_id    = haven_storage.test.id
}
`,
				ExpectError: errorLike("Could not create NAS share orphan", "nas_device_id", "does not exist"),
			},
			{
				// Nothing was created by the failed attempts.
				Config: base,
				Check: func(*terraform.State) error {
					all, err := srv.Client.NASShares().ListAll(context.Background())
					if err != nil {
						return err
					}
					if len(all) != 0 {
						return fmt.Errorf("failed creates left %d NAS shares on the server", len(all))
					}
					return nil
				},
			},
		},
	})
}

func TestAccNASShareResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(attrs string, want ...string) resource.TestStep {
		return invalidConfigStep("haven_nas_share", map[string]string{
			"name": `"projects"`, "nas_device_id": `"` + id + `"`, "protocol": `"smb"`, "share": `"projects"`,
			"policy_id": `"` + id + `"`, "storage_id": `"` + id + `"`,
		}, attrs, want...)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(`nas_device_id = "filer"`, "Attribute nas_device_id must be the id of a NAS device", "not a name"),
			step(`protocol = "afp"`, "Attribute protocol value must be one of"),
			step(`share = "projects/2024"`, `Attribute share must be the name of an SMB share`, `got "projects/2024"`),
			step("protocol = \"nfs\"\nshare = \"export/projects\"", "Attribute share must be the clean absolute path of an NFS export"),
			step(`path = "/departments"`, "Attribute path must be a directory inside the share, relative to its root"),
			step(`path = "a/../b"`, "Attribute path must be a directory inside the share"),
			step(`include = ["[a-"]`, "Attribute include[0] is not a valid glob pattern"),
			step(`exclude = ["{a,"]`, "Attribute exclude[0] is not a valid glob pattern"),
			step(`policy_id = "gold"`, "Attribute policy_id must be the id of a backup policy"),
			step(`storage_id = "local"`, "Attribute storage_id must be the id of a storage"),
			step(`group = "team-a"`, "Invalid Configuration for Read-Only Attribute"),
			step(`name = "projects/2024"`, "Attribute name must start with a letter or digit"),
		},
	})
}
