package provider

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
	"github.com/hashicorp/terraform-plugin-testing/tfversion"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const vcenterAddr = "haven_vcenter.test"

// vcenterConfig registers the simulator; trust is HCL for the trust
// attributes.
func vcenterConfig(vc *testparts.VCSimEnv, name, password string, passwordVersion int, trust string) string {
	return fmt.Sprintf(`
resource "haven_vcenter" "test" {
  name             = %q
  url              = %q
  username         = %q
  password         = %q
  password_version = %d
  %s
}
`, name, vc.URL, vc.Username, password, passwordVersion, trust)
}

func thumbprintTrust(tp string) string { return fmt.Sprintf("thumbprint = %q", tp) }

func checkVCentersDestroyed(srv *servertest.Server) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for addr, rs := range s.RootModule().Resources {
			if rs.Type != "haven_vcenter" {
				continue
			}
			_, err := srv.Client.VCenters().Get(context.Background(), rs.Primary.ID)
			if !api.IsNotFound(err) {
				return fmt.Errorf("%s (%s) still exists after destroy (err = %v)", addr, rs.Primary.ID, err)
			}
		}
		return nil
	}
}

func checkVCenterOnServer(srv *servertest.Server, name string, want func(*api.VCenter) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		v, err := srv.Client.VCenters().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("vCenter %s on the server: %w", name, err)
		}
		return want(v)
	}
}

func TestAccVCenterResource(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	cfg := providerConfig(srv)
	ca, err := os.ReadFile(vc.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	sameID := statecheck.CompareValue(compare.ValuesSame())
	newVersion := statecheck.CompareValue(compare.ValuesDiffer())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkVCentersDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + vcenterConfig(vc, "lab", vc.Password, 1, thumbprintTrust(vc.Thumbprint)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vcenterAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("insecure"), knownvalue.Bool(false)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(vcenterAddr, tfjsonpath.New("id")),
					newVersion.AddStateValue(vcenterAddr, tfjsonpath.New("version")),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("status"), knownvalue.StringExact("connected")),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("status_message"), knownvalue.Null()),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("has_password"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("password"), knownvalue.Null()),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("thumbprint"), knownvalue.StringExact(vc.Thumbprint)),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("url"), knownvalue.StringExact(vc.URL)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(vc.Password),
					checkVCenterOnServer(srv, "lab", func(v *api.VCenter) error {
						if !v.HasPassword || v.Password != "" || v.Thumbprint != vc.Thumbprint || v.Status != "connected" {
							return fmt.Errorf("server holds has_password=%v thumbprint=%q status=%q and returned a password: %v",
								v.HasPassword, v.Thumbprint, v.Status, v.Password != "")
						}
						return nil
					}),
				),
			},
			{
				// A wrong password under the same version is not sent:
				// Terraform cannot see write-only changes.
				Config:   cfg + vcenterConfig(vc, "lab", "not-the-password", 1, thumbprintTrust(vc.Thumbprint)),
				PlanOnly: true,
			},
			{
				// A rename is an update in place that keeps the stored
				// password (the server logs in again with it).
				Config: cfg + vcenterConfig(vc, "lab-renamed", "not-the-password", 1, thumbprintTrust(vc.Thumbprint)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vcenterAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(vcenterAddr, tfjsonpath.New("version")),
					plancheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("has_password"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(vcenterAddr, tfjsonpath.New("id")),
					newVersion.AddStateValue(vcenterAddr, tfjsonpath.New("version")),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("name"), knownvalue.StringExact("lab-renamed")),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("status"), knownvalue.StringExact("connected")),
				},
			},
			{
				// A new version sends the wrong password, which the
				// vCenter refuses: the error points at password.
				Config: cfg + vcenterConfig(vc, "lab-renamed", "not-the-password", 2, thumbprintTrust(vc.Thumbprint)),
				ExpectError: errorLike("Could not update vCenter lab-renamed", `password = "not-the-password"`,
					"password: the vCenter rejected the user name or password"),
			},
			{
				// Switching trust to the CA certificate, with the right
				// password under the new version.
				Config: cfg + vcenterConfig(vc, "lab-renamed", vc.Password, 2, fmt.Sprintf("ca_pem = %q", string(ca))),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(vcenterAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(vcenterAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("thumbprint"), knownvalue.Null()),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("ca_pem"), knownvalue.StringExact(string(ca))),
					statecheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("status"), knownvalue.StringExact("connected")),
				},
				Check: checkSecretNotInState(vc.Password),
			},
			{
				// Drift: the registration is switched to insecure behind
				// Terraform's back; the plan must put the CA back.
				PreConfig: func() {
					ctx := context.Background()
					v, err := srv.Client.VCenters().Get(ctx, "lab-renamed")
					if err != nil {
						t.Fatalf("reading vCenter: %v", err)
					}
					v.CAPEM, v.Insecure = "", true
					if _, err := srv.Client.VCenters().Update(ctx, v.ID, v.Version, api.VCenterRequest{VCenterSpec: v.VCenterSpec}); err != nil {
						t.Fatalf("changing vCenter behind Terraform's back: %v", err)
					}
				},
				Config: cfg + vcenterConfig(vc, "lab-renamed", vc.Password, 2, fmt.Sprintf("ca_pem = %q", string(ca))),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(vcenterAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(vcenterAddr, tfjsonpath.New("insecure"), knownvalue.Bool(false)),
				}},
				Check: checkVCenterOnServer(srv, "lab-renamed", func(v *api.VCenter) error {
					if v.Insecure || v.CAPEM != string(ca) {
						return fmt.Errorf("drift was not corrected: server holds insecure=%v ca_pem set=%v", v.Insecure, v.CAPEM != "")
					}
					return nil
				}),
			},
			{
				ResourceName:            vcenterAddr,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"password", "password_version"},
			},
			{
				// Import also takes the name; the state gets the real id.
				ResourceName:            vcenterAddr,
				ImportState:             true,
				ImportStateId:           "lab-renamed",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"password", "password_version"},
			},
		},
	})
}

// TestAccVCenterResource_loginErrors checks that what only a login can find
// out is reported against the attribute to fix.
func TestAccVCenterResource_loginErrors(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	cfg := providerConfig(srv)
	// A well-formed SHA-256 thumbprint of some other certificate.
	other := strings.Repeat("AB:", 31) + "AB"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkVCentersDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + vcenterConfig(vc, "lab", "not-the-password", 1, thumbprintTrust(vc.Thumbprint)),
				ExpectError: errorLike("Could not create vCenter lab", `password = "not-the-password"`,
					"password: the vCenter rejected the user name or password"),
			},
			{
				// The message names the certificate's real thumbprint, so
				// the user can check it and pin it.
				Config:      cfg + vcenterConfig(vc, "lab", vc.Password, 1, thumbprintTrust(other)),
				ExpectError: errorLike("Could not create vCenter lab", "thumbprint = ", "thumbprint:", vc.Thumbprint),
			},
			{
				// Nothing was created by the failed attempts.
				Config: cfg,
				Check: func(*terraform.State) error {
					all, err := srv.Client.VCenters().ListAll(context.Background())
					if err != nil {
						return err
					}
					if len(all) != 0 {
						return fmt.Errorf("failed creates left %d vCenters on the server", len(all))
					}
					return nil
				},
			},
		},
	})
}

func TestAccVCenterResource_invalid(t *testing.T) {
	step := func(body string, want ...string) resource.TestStep {
		return resource.TestStep{
			Config: offlineProviderConfig + `resource "haven_vcenter" "test" {
  name     = "lab"
  username = "administrator@vsphere.local"
  password = "secret"
` + body + "\n}\n",
			ExpectError: errorLike(want...),
		}
	}
	const goodTP = `thumbprint = "` + "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF" + `"`
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{
			step(`url = "http://vcenter.example.com/sdk"
`+goodTP, "Attribute url must be an https URL"),
			step(`url = "https://vcenter.example.com/sdk"
thumbprint = "not-hex"`, "Attribute thumbprint must be a SHA-1 or SHA-256 certificate thumbprint"),
			step(`url = "https://vcenter.example.com/sdk"`, "Attribute thumbprint: say how to trust the vCenter"),
			step(`url = "https://vcenter.example.com/sdk"
`+goodTP+`
insecure = true`, "Attribute insecure: give one of thumbprint, ca_pem or insecure"),
			step(`url = "https://vcenter.example.com/sdk"
ca_pem = "/etc/ssl/vcenter.pem"`, `Attribute ca_pem must hold at least one PEM "CERTIFICATE" block`),
		},
	})
}
