package provider

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestMain makes the acceptance tests part of every plain `go test`: they
// are the provider's only tests worth having, and a suite that silently
// skips them would prove nothing.
func TestMain(m *testing.M) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		fmt.Fprintln(os.Stderr, "provider tests drive the real terraform binary, which is not on PATH: "+
			"install Terraform 1.11 or later (https://developer.hashicorp.com/terraform/install, or "+
			"`apt-get install terraform` from the HashiCorp apt repository)")
		os.Exit(1)
	}
	os.Setenv("TF_ACC", "1")
	// Pinning the binary stops terraform-plugin-testing from ever trying to
	// download one, and CHECKPOINT_DISABLE stops terraform phoning home.
	if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
		os.Setenv("TF_ACC_TERRAFORM_PATH", tf)
	}
	os.Setenv("CHECKPOINT_DISABLE", "1")
	code := m.Run()
	servertest.StopShared()
	if providerBinaryDir != "" {
		os.RemoveAll(providerBinaryDir)
	}
	os.Exit(code)
}

// protoV6ProviderFactories runs the provider in the test process, so the
// tests exercise this package's code rather than an installed binary.
var protoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"haven": providerserver.NewProtocol6WithError(New("test")()),
}

// providerConfig points the provider at a test server.
func providerConfig(srv *servertest.Server) string {
	return fmt.Sprintf(`
provider "haven" {
  endpoint    = %q
  token       = %q
  max_retries = 1
}
`, srv.URL, srv.AdminToken)
}

// offlineProviderConfig is for configurations that must fail validation,
// before the provider talks to any server. Should validation miss the
// problem, the unreachable endpoint makes the step fail with a different
// error than the one it expects.
const offlineProviderConfig = `
provider "haven" {
  endpoint    = "http://127.0.0.1:1"
  token       = "not-used"
  max_retries = 0
}
`

// errorLike matches Terraform's rendering of a diagnostic that contains the
// given phrases in order. Terraform wraps long lines, so any run of spaces
// in a phrase matches any whitespace.
func errorLike(phrases ...string) *regexp.Regexp {
	parts := make([]string, len(phrases))
	for i, p := range phrases {
		words := strings.Fields(p)
		for j, w := range words {
			words[j] = regexp.QuoteMeta(w)
		}
		parts[i] = strings.Join(words, `\s+`)
	}
	return regexp.MustCompile(`(?s)` + strings.Join(parts, `.*`))
}

// forceDestroyStorage adds force_destroy = true to a haven_storage block.
func forceDestroyStorage(hcl string) string {
	return strings.Replace(hcl, `kind = "filesystem"`, "kind = \"filesystem\"\n  force_destroy = true", 1)
}

func fsStorageConfig(name, dir string) string {
	return fmt.Sprintf(`
resource "haven_storage" "test" {
  name = %q
  kind = "filesystem"
  path = %q
}
`, name, dir)
}

func TestAccProvider_MissingToken(t *testing.T) {
	t.Setenv(EnvToken, "")
	t.Setenv(EnvEndpoint, "")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      `provider "haven" {}` + fsStorageConfig("x", t.TempDir()),
			ExpectError: errorLike("Missing Haven API token", "Set the provider's token argument or the HAVEN_TOKEN"),
		}},
	})
}

func TestAccProvider_InvalidSettings(t *testing.T) {
	t.Setenv(EnvToken, "some-token")
	t.Setenv(EnvMaxRetries, "lots")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:      `provider "haven" {}` + fsStorageConfig("x", t.TempDir()),
				ExpectError: errorLike("Invalid HAVEN_MAX_RETRIES", "HAVEN_MAX_RETRIES must be a whole number"),
			},
			{
				Config: `provider "haven" {
  endpoint    = "ftp://haven.example.com"
  max_retries = 1
}` + fsStorageConfig("x", t.TempDir()),
				ExpectError: errorLike("Attribute endpoint must be an http or https URL"),
			},
			{
				// max_retries in the configuration wins over the bad
				// environment variable, leaving the CA file at fault.
				Config: `provider "haven" {
  ca_file     = "/nonexistent/haven-ca.pem"
  max_retries = 1
}` + fsStorageConfig("x", t.TempDir()),
				ExpectError: errorLike("Cannot use the Haven CA file", "ca_file", "/nonexistent/haven-ca.pem"),
			},
		},
	})
}

// TestAccProvider_EnvConfig configures the provider from the environment
// alone, as CI pipelines do.
func TestAccProvider_EnvConfig(t *testing.T) {
	srv := servertest.Start(t)
	t.Setenv(EnvEndpoint, srv.URL)
	t.Setenv(EnvToken, srv.AdminToken)
	t.Setenv(EnvMaxRetries, "1")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkStoragesDestroyed(srv),
		Steps: []resource.TestStep{{
			Config: fsStorageConfig("from-env", t.TempDir()),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownValue("haven_storage.test", tfjsonpath.New("name"), knownvalue.StringExact("from-env")),
			},
		}},
	})
}

// TestAccProvider_WrongToken checks that an authentication failure says what
// to fix rather than just "401".
func TestAccProvider_WrongToken(t *testing.T) {
	srv := startParallel(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf(`
provider "haven" {
  endpoint    = %q
  token       = "not-the-admin-token"
  max_retries = 0
}
`, srv.URL) + fsStorageConfig("x", t.TempDir()),
			ExpectError: errorLike("Could not create storage x", "Check the provider's token"),
		}},
	})
}

// TestAccProvider_ReadOnlyToken checks that a token without write access
// gets an answer that names the problem.
func TestAccProvider_ReadOnlyToken(t *testing.T) {
	srv := startParallel(t)
	tok, err := srv.Client.CreateToken(context.Background(), api.TokenRequest{Name: "auditor", Role: api.RoleReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: fmt.Sprintf(`
provider "haven" {
  endpoint    = %q
  token       = %q
  max_retries = 0
}
`, srv.URL, tok.Secret) + fsStorageConfig("x", t.TempDir()),
			ExpectError: errorLike("Could not create storage x", "does not have a role that allows this operation"),
		}},
	})
}

// startParallel marks a test parallel and only then starts its server.
// resource.ParallelTest pauses the test where it is called, so a server
// started before it would hold its database connections while the test
// waits for its turn, and enough waiting tests exhaust the shared
// PostgreSQL. Tests that use it call resource.Test.
func startParallel(t *testing.T) *servertest.Server {
	t.Parallel()
	return servertest.Start(t)
}
