package provider

import (
	"context"
	"encoding/base64"
	"fmt"
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

const nasDeviceAddr = "haven_nas_device.test"

// nasProxiesConfig declares two hosts whose agents act as NAS proxies:
// file servers of location agent, whose agents never need to run for the
// NAS devices that name them to be managed.
const nasProxiesConfig = `
resource "haven_file_server" "proxy1" {
  name     = "proxy1"
  hostname = "proxy1.example.com"
  os       = "linux"
  location = "agent"
}

resource "haven_file_server" "proxy2" {
  name     = "proxy2"
  hostname = "proxy2.example.com"
  os       = "linux"
  location = "agent"
}
`

// testKeytabB64 is the base64 of a keytab as the server checks it: the
// format's version bytes, then made-up entries.
var testKeytabB64 = base64.StdEncoding.EncodeToString(append([]byte{0x05, 0x02, 0, 0, 0, 0x20}, []byte("CORP.EXAMPLE\x00backup\x00key")...))

// nasDeviceConfig declares haven_nas_device.test, proxied by proxy1;
// extra holds further arguments.
func nasDeviceConfig(name, extra string) string {
	return fmt.Sprintf(`
resource "haven_nas_device" "test" {
  name                  = %q
  host                  = "filer.example.com"
  proxy_file_server_ids = [haven_file_server.proxy1.id]
%s
}
`, name, extra)
}

// smbArgs are the arguments of an SMB and NFS device signing in with a
// password, sent with credentials version v.
func smbArgs(password string, v int) string {
	return fmt.Sprintf("  protocols               = [\"smb\", \"nfs\"]\n  smb_user                = \"backup\"\n"+
		"  smb_password            = %q\n  smb_credentials_version = %d\n", password, v)
}

// nasDeviceIs checks what the server holds against what a step
// configured, with the proxies' ids from the state.
func nasDeviceIs(srv *servertest.Server, name string, proxies []string, want api.NASDeviceSpec, hasPassword, hasKeytab bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		want.Name = name
		for _, p := range proxies {
			rs := s.RootModule().Resources["haven_file_server."+p]
			if rs == nil {
				return fmt.Errorf("haven_file_server.%s is not in the state", p)
			}
			want.ProxyFileServerIDs = append(want.ProxyFileServerIDs, rs.Primary.ID)
		}
		got, err := srv.Client.NASDevices().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("NAS device %s on the server: %w", name, err)
		}
		slices.Sort(got.ProxyFileServerIDs)
		slices.Sort(want.ProxyFileServerIDs)
		if fmt.Sprintf("%+v", got.NASDeviceSpec) != fmt.Sprintf("%+v", want) || got.HasSMBPassword != hasPassword || got.HasSMBKeytab != hasKeytab {
			return fmt.Errorf("server holds %+v has_smb_password=%v has_smb_keytab=%v; want %+v %v %v",
				got.NASDeviceSpec, got.HasSMBPassword, got.HasSMBKeytab, want, hasPassword, hasKeytab)
		}
		return nil
	}
}

func TestAccNASDeviceResource(t *testing.T) {
	srv := startParallel(t)
	base := providerConfig(srv) + nasProxiesConfig
	const password, newPassword = "first-nas-Pa55", "second-nas-Pa55"
	sameID := statecheck.CompareValue(compare.ValuesSame())
	newVersion := statecheck.CompareValue(compare.ValuesDiffer())
	both := api.NASDeviceSpec{Host: "filer.example.com", Protocols: []string{"nfs", "smb"}, SMBUser: "backup"}
	tuned := both
	tuned.SMBDomain, tuned.NFSUID, tuned.NFSGID, tuned.NFSPort, tuned.Group = "CORP", 1000, 100, 2049, "team-a"
	tunedArgs := "  smb_domain = \"CORP\"\n  nfs_uid = 1000\n  nfs_gid = 100\n  nfs_port = 2049\n  group = \"team-a\"\n"
	twoProxies := "  proxy_file_server_ids = [haven_file_server.proxy1.id, haven_file_server.proxy2.id]\n"
	keytabArgs := "  protocols               = [\"nfs\", \"smb\"]\n  smb_user                = \"backup\"\n" +
		"  smb_kerberos_keytab     = \"" + testKeytabB64 + "\"\n  smb_credentials_version = 2\n"
	withTwo := func(name, extra string) string {
		return base + fmt.Sprintf(`
resource "haven_nas_device" "test" {
  name = %q
  host = "filer.example.com"
%s%s}
`, name, twoProxies, extra)
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + nasDeviceConfig("filer", smbArgs(password, 1)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasDeviceAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("has_smb_password"), knownvalue.Bool(true)),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("has_smb_keytab"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("nfs_uid"), knownvalue.Int64Exact(0)),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("smb_password"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(nasDeviceAddr, at("id")),
					newVersion.AddStateValue(nasDeviceAddr, at("version")),
					statecheck.ExpectKnownValue(nasDeviceAddr, at("smb_password"), knownvalue.Null()),
					statecheck.ExpectKnownValue(nasDeviceAddr, at("protocols"), knownvalue.SetExact([]knownvalue.Check{
						knownvalue.StringExact("nfs"), knownvalue.StringExact("smb")})),
					statecheck.ExpectKnownValue(nasDeviceAddr, at("nfs_port"), knownvalue.Null()),
					statecheck.ExpectKnownValue(nasDeviceAddr, at("group"), knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(password),
					nasDeviceIs(srv, "filer", []string{"proxy1"}, both, true, false),
				),
			},
			{
				// Another password under the same version is not sent:
				// Terraform cannot see write-only changes.
				Config:   base + nasDeviceConfig("filer", smbArgs(newPassword, 1)),
				PlanOnly: true,
			},
			{
				// A new name, a second proxy, a domain, NFS settings and a
				// group: in place, keeping the stored password.
				Config: withTwo("filer-01", smbArgs(newPassword, 1)+tunedArgs),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasDeviceAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(nasDeviceAddr, at("version")),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("has_smb_password"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(nasDeviceAddr, at("id")),
					newVersion.AddStateValue(nasDeviceAddr, at("version")),
					statecheck.ExpectKnownValue(nasDeviceAddr, at("nfs_port"), knownvalue.Int64Exact(2049)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(newPassword),
					nasDeviceIs(srv, "filer-01", []string{"proxy1", "proxy2"}, tuned, true, false),
				),
			},
			{
				// A keytab under a new version replaces the password.
				Config: withTwo("filer-01", keytabArgs+tunedArgs),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasDeviceAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("has_smb_password"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("has_smb_keytab"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(nasDeviceAddr, at("id"))},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(testKeytabB64),
					nasDeviceIs(srv, "filer-01", []string{"proxy1", "proxy2"}, tuned, false, true),
				),
			},
			{
				// Drift: host and NFS port changed behind Terraform's back
				// are put back by the next apply, keeping the keytab.
				PreConfig: func() {
					ctx := context.Background()
					d, err := srv.Client.NASDevices().Get(ctx, "filer-01")
					if err != nil {
						t.Fatalf("reading NAS device: %v", err)
					}
					d.Host, d.NFSPort = "192.0.2.99", 0
					if _, err := srv.Client.NASDevices().Update(ctx, d.ID, d.Version, api.NASDeviceRequest{NASDeviceSpec: d.NASDeviceSpec}); err != nil {
						t.Fatalf("changing NAS device behind Terraform's back: %v", err)
					}
				},
				Config: withTwo("filer-01", keytabArgs+tunedArgs),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(nasDeviceAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("host"), knownvalue.StringExact("filer.example.com")),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("nfs_port"), knownvalue.Int64Exact(2049)),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("has_smb_keytab"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{sameID.AddStateValue(nasDeviceAddr, at("id"))},
				Check:             nasDeviceIs(srv, "filer-01", []string{"proxy1", "proxy2"}, tuned, false, true),
			},
			{
				ResourceName:            nasDeviceAddr,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"smb_password", "smb_kerberos_keytab", "smb_credentials_version"},
			},
			{
				// Import also takes the name; the state gets the real id.
				ResourceName:            nasDeviceAddr,
				ImportState:             true,
				ImportStateId:           "filer-01",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"smb_password", "smb_kerberos_keytab", "smb_credentials_version"},
			},
			{
				// NFS only, on one proxy: the SMB settings and the keytab go.
				Config: base + nasDeviceConfig("filer-01", "  protocols = [\"nfs\"]\n  nfs_mount_port = 20048\n"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasDeviceAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("has_smb_keytab"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue(nasDeviceAddr, at("nfs_uid"), knownvalue.Int64Exact(0)),
				}},
				Check: nasDeviceIs(srv, "filer-01", []string{"proxy1"},
					api.NASDeviceSpec{Host: "filer.example.com", Protocols: []string{"nfs"}, NFSMountPort: 20048}, false, false),
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan creates it again.
				PreConfig: func() {
					ctx := context.Background()
					d, err := srv.Client.NASDevices().Get(ctx, "filer-01")
					if err != nil {
						t.Fatal(err)
					}
					if err := srv.Client.NASDevices().Delete(ctx, d.ID); err != nil {
						t.Fatal(err)
					}
				},
				Config: base + nasDeviceConfig("filer-01", "  protocols = [\"nfs\"]\n  nfs_mount_port = 20048\n"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(nasDeviceAddr, plancheck.ResourceActionCreate),
				}},
				Check: nasDeviceIs(srv, "filer-01", []string{"proxy1"},
					api.NASDeviceSpec{Host: "filer.example.com", Protocols: []string{"nfs"}, NFSMountPort: 20048}, false, false),
			},
		},
	})
}

// TestAccNASDeviceResource_serverErrors checks that what only the server
// can find out is reported against the attribute at fault.
func TestAccNASDeviceResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	base := providerConfig(srv) + nasProxiesConfig + fileServerConfig("local", "this-host", "localhost", "linux", "server")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				// The Haven host itself is no NAS proxy.
				Config: base + `
resource "haven_nas_device" "test" {
  name                  = "filer"
  host                  = "filer.example.com"
  protocols             = ["nfs"]
  proxy_file_server_ids = [haven_file_server.proxy1.id, haven_file_server.local.id]
}
`,
				ExpectError: errorLike("Could not create NAS device filer", "proxy_file_server_ids = [",
					`file server "this-host" is of location "server"`, `a NAS proxy is the Haven agent`),
			},
			{
				// SMB needs a password or a keytab: only the server knows
				// whether it holds one.
				Config: base + nasDeviceConfig("filer", "  protocols = [\"smb\"]\n  smb_user = \"backup\"\n"),
				ExpectError: errorLike("Could not create NAS device filer", "smb_password: is required with",
					"give smb_password or smb_kerberos_keytab"),
			},
			{
				Config: base + `
resource "haven_nas_device" "test" {
  name                  = "filer"
  host                  = "filer.example.com"
  protocols             = ["nfs"]
  proxy_file_server_ids = ["00000000-0000-4000-8000-000000000000"]
}
`,
				ExpectError: errorLike("Could not create NAS device filer", "proxy_file_server_ids[0]", "does not exist"),
			},
			{
				// Nothing was created by the failed attempts.
				Config: base,
				Check: func(*terraform.State) error {
					all, err := srv.Client.NASDevices().ListAll(context.Background())
					if err != nil {
						return err
					}
					if len(all) != 0 {
						return fmt.Errorf("failed creates left %d NAS devices on the server", len(all))
					}
					return nil
				},
			},
		},
	})
}

func TestAccNASDeviceResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(attrs string, want ...string) resource.TestStep {
		return invalidConfigStep("haven_nas_device", map[string]string{"name": `"filer"`, "host": `"filer.example.com"`,
			"protocols": `["smb"]`, "smb_user": `"backup"`, "smb_password": `"Pa55"`, "proxy_file_server_ids": `["` + id + `"]`}, attrs, want...)
	}
	nfs := "protocols = [\"nfs\"]\nsmb_user = null\nsmb_password = null\n"
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{
			step(`host = "filer 01"`, "Attribute host must be a host name or an IP address, optionally with a port"),
			step(nfs+`host = "filer.example.com:2049"`, "Attribute host names a port, which is SMB's"),
			step(`protocols = ["afp"]`, "Attribute protocols", "value must be one of"),
			step(`protocols = []`, "Attribute protocols set must contain at least 1 elements"),
			step(`smb_user = null`, `Attribute smb_user is required with "smb": the account the NAS proxies sign in as`),
			step(nfs+`smb_domain = "CORP"`, `Attribute smb_domain applies to SMB only, and protocols does not include "smb"`),
			step(`smb_kerberos_keytab = "`+testKeytabB64+`"`, "Attribute smb_kerberos_keytab cannot be given with smb_password"),
			step("smb_password = null\nsmb_kerberos_keytab = \"not base64!\"", "Attribute smb_kerberos_keytab must be the base64 of a keytab file"),
			step("smb_password = null\nsmb_kerberos_keytab = \""+base64.StdEncoding.EncodeToString([]byte("password"))+"\"",
				"Attribute smb_kerberos_keytab is not a keytab file"),
			step(`smb_password = ""`, "Attribute smb_password string length must be at least 1"),
			step(nfs+`nfs_port = 0`, "Attribute nfs_port must be between 1 and 65535, got 0"),
			step(`nfs_mount_port = 20048`, `Attribute nfs_mount_port applies to NFS only, and protocols does not include "nfs"`),
			step(nfs+`nfs_uid = -1`, "Attribute nfs_uid must be between 0 and 4294967295, got -1"),
			step(`proxy_file_server_ids = ["proxy1"]`, "must be the id of a file server", "not a name"),
			step(`proxy_file_server_ids = []`, "Attribute proxy_file_server_ids set must contain at least 1 elements"),
			step(`name = "filer 01"`, "Attribute name must start with a letter or digit"),
			step(`group = "team a"`, "Attribute group must start with a letter or digit"),
		},
	})
}
