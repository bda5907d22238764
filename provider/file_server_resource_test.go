package provider

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const (
	agentServerAddr = "haven_file_server.agent"
	localServerAddr = "haven_file_server.local"
)

// checkObjectsDestroyed asserts that every Haven object in the last state
// is gone from the server, whatever its type.
func checkObjectsDestroyed(srv *servertest.Server) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ctx := context.Background()
		for addr, rs := range s.RootModule().Resources {
			var err error
			switch rs.Type {
			case "haven_storage":
				_, err = srv.Client.Storages().Get(ctx, rs.Primary.ID)
			case "haven_backup_policy":
				_, err = srv.Client.Policies().Get(ctx, rs.Primary.ID)
			case "haven_file_server":
				_, err = srv.Client.FileServers().Get(ctx, rs.Primary.ID)
			case "haven_fileset":
				_, err = srv.Client.Filesets().Get(ctx, rs.Primary.ID)
			case "haven_vcenter":
				_, err = srv.Client.VCenters().Get(ctx, rs.Primary.ID)
			case "haven_database_server":
				_, err = srv.Client.DatabaseServers().Get(ctx, rs.Primary.ID)
			case "haven_database_set":
				_, err = srv.Client.DatabaseSets().Get(ctx, rs.Primary.ID)
			case "haven_nas_device":
				_, err = srv.Client.NASDevices().Get(ctx, rs.Primary.ID)
			case "haven_nas_share":
				_, err = srv.Client.NASShares().Get(ctx, rs.Primary.ID)
			case "haven_aws_target":
				_, err = srv.Client.AWSTargets().Get(ctx, rs.Primary.ID)
			default:
				continue
			}
			if !api.IsNotFound(err) {
				return fmt.Errorf("%s (%s) still exists after destroy (err = %v)", addr, rs.Primary.ID, err)
			}
		}
		return nil
	}
}

func fileServerConfig(label, name, hostname, os, location string) string {
	return fmt.Sprintf(`
resource "haven_file_server" %q {
  name     = %q
  hostname = %q
  os       = %q
  location = %q
}
`, label, name, hostname, os, location)
}

func checkFileServerOnServer(srv *servertest.Server, name string, want api.FileServerSpec) resource.TestCheckFunc {
	return func(*terraform.State) error {
		f, err := srv.Client.FileServers().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("file server %s on the server: %w", name, err)
		}
		if !reflect.DeepEqual(f.FileServerSpec, want) {
			return fmt.Errorf("server holds %+v, want %+v", f.FileServerSpec, want)
		}
		return nil
	}
}

func TestAccFileServerResource(t *testing.T) {
	srv := startParallel(t)
	if _, err := srv.Client.FileServers().Create(context.Background(), api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "taken", Hostname: "taken.example.com", OS: api.OSLinux, Location: api.LocationServer,
	}}); err != nil {
		t.Fatal(err)
	}
	cfg := providerConfig(srv)
	agent := func(hostname string) string {
		return fileServerConfig("agent", "nas", hostname, "linux", "agent")
	}
	local := func(location string) string {
		return fileServerConfig("local", "this-host", "localhost", "linux", location)
	}

	// The activation token the server answers the create with must never
	// reach the state (haven_file_server_activation issues one instead).
	noToken := resource.ComposeAggregateTestCheckFunc(
		resource.TestCheckNoResourceAttr(agentServerAddr, "activation_token"),
		resource.TestCheckNoResourceAttr(localServerAddr, "activation_token"),
	)
	sameAgentID := statecheck.CompareValue(compare.ValuesSame())
	localIDs := statecheck.CompareValue(compare.ValuesDiffer())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + agent("nas01.example.com") + local("server"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(agentServerAddr, plancheck.ResourceActionCreate),
					// A file server on the Haven host has no agent: known
					// at plan time, not "known after apply".
					plancheck.ExpectKnownValue(localServerAddr, tfjsonpath.New("agent_status"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameAgentID.AddStateValue(agentServerAddr, tfjsonpath.New("id")),
					localIDs.AddStateValue(localServerAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(agentServerAddr, tfjsonpath.New("agent_status"), knownvalue.StringExact("pending")),
					statecheck.ExpectKnownValue(agentServerAddr, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(localServerAddr, tfjsonpath.New("agent_status"), knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					noToken,
					checkFileServerOnServer(srv, "nas", api.FileServerSpec{Name: "nas", Hostname: "nas01.example.com", OS: "linux", Location: "agent"}),
					checkFileServerOnServer(srv, "this-host", api.FileServerSpec{Name: "this-host", Hostname: "localhost", OS: "linux", Location: "server"}),
				),
			},
			{
				RefreshState: true,
				Check:        noToken,
			},
			{
				// A new host name is an update in place that keeps the id.
				Config: cfg + agent("nas02.example.com") + local("server"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(agentServerAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction(localServerAddr, plancheck.ResourceActionNoop),
					plancheck.ExpectUnknownValue(agentServerAddr, tfjsonpath.New("version")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameAgentID.AddStateValue(agentServerAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(agentServerAddr, tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					noToken,
					checkFileServerOnServer(srv, "nas", api.FileServerSpec{Name: "nas", Hostname: "nas02.example.com", OS: "linux", Location: "agent"}),
				),
			},
			{
				// Drift: the host name is changed behind Terraform's back;
				// the plan puts it back, in place.
				PreConfig: func() {
					ctx := context.Background()
					f, err := srv.Client.FileServers().Get(ctx, "nas")
					if err != nil {
						t.Fatalf("reading file server: %v", err)
					}
					f.Hostname = "elsewhere.example.com"
					if _, err := srv.Client.FileServers().Update(ctx, f.ID, f.Version, api.FileServerRequest{FileServerSpec: f.FileServerSpec}); err != nil {
						t.Fatalf("changing file server behind Terraform's back: %v", err)
					}
				},
				Config: cfg + agent("nas02.example.com") + local("server"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(agentServerAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(agentServerAddr, tfjsonpath.New("hostname"), knownvalue.StringExact("nas02.example.com")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameAgentID.AddStateValue(agentServerAddr, tfjsonpath.New("id")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					noToken,
					checkFileServerOnServer(srv, "nas", api.FileServerSpec{Name: "nas", Hostname: "nas02.example.com", OS: "linux", Location: "agent"}),
				),
			},
			{
				// The server cannot move a file server between locations,
				// so the provider replaces it; the new agent file server
				// waits for its agent.
				Config: cfg + agent("nas02.example.com") + local("agent"),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(localServerAddr, plancheck.ResourceActionReplace),
					plancheck.ExpectUnknownValue(localServerAddr, tfjsonpath.New("agent_status")),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					localIDs.AddStateValue(localServerAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(localServerAddr, tfjsonpath.New("agent_status"), knownvalue.StringExact("pending")),
				},
				Check: noToken,
			},
			{
				// Import by id and by name.
				ResourceName:      agentServerAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				ResourceName:      agentServerAddr,
				ImportState:       true,
				ImportStateId:     "nas",
				ImportStateVerify: true,
			},
			{
				Config: cfg + agent("nas02.example.com") + local("agent") +
					fileServerConfig("dup", "taken", "other.example.com", "windows", "server"),
				ExpectError: errorLike("Could not create file server taken", `name = "taken"`, "name: another file server already has this name"),
			},
			{
				Config: cfg + agent("nas02.example.com") + local("agent"),
				Check:  noToken,
			},
		},
	})
}

func TestAccFileServerResource_invalid(t *testing.T) {
	step := func(body string, want ...string) resource.TestStep {
		return resource.TestStep{
			Config:      offlineProviderConfig + "resource \"haven_file_server\" \"test\" {\n" + body + "\n}\n",
			ExpectError: errorLike(want...),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(`name     = "x"
hostname = "h"
os       = "macos"
location = "server"`, "Attribute os value must be one of"),
			step(`name     = "x"
hostname = "h"
os       = "linux"
location = "cloud"`, "Attribute location value must be one of"),
			step(`name     = "x"
hostname = "two words"
os       = "linux"
location = "server"`, "Attribute hostname must be a host name"),
			step(`name     = "x"
hostname = "nas/share"
os       = "linux"
location = "server"`, "Attribute hostname must be a host name"),
			step(`name     = "-x"
hostname = "h"
os       = "linux"
location = "server"`, "Attribute name must start with a letter or digit"),
			step(`name     = "x"
hostname = "h"
os       = "linux"`, `The argument "location" is required`),
		},
	})
}

// TestFileServerStateDropsActivationToken upgrades a state written by
// provider versions that kept the activation token: Terraform hands the
// provider its raw state on every plan and refresh, and the token must not
// survive that while everything else does.
func TestFileServerStateDropsActivationToken(t *testing.T) {
	ctx := context.Background()
	server, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := server.GetProviderSchema(ctx, &tfprotov6.GetProviderSchemaRequest{}); err != nil {
		t.Fatal(err)
	}
	old := `{"id":"3c0b8f2e-7a41-4d5c-9e16-2b8d4f6a1c07","version":2,"name":"nas","hostname":"nas01.example.com",
		"os":"linux","location":"agent","group":null,"restore_roots":[],"agent_status":"pending",
		"activation_token":"hvn_the-token-that-must-go"}`
	resp, err := server.UpgradeResourceState(ctx, &tfprotov6.UpgradeResourceStateRequest{
		TypeName: "haven_file_server", Version: 0, RawState: &tfprotov6.RawState{JSON: []byte(old)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Errorf("upgrading the state: %s: %s", d.Summary, d.Detail)
	}
	var sr fwresource.SchemaResponse
	NewFileServerResource().Schema(ctx, fwresource.SchemaRequest{}, &sr)
	v, err := resp.UpgradedState.Unmarshal(sr.Schema.Type().TerraformType(ctx))
	if err != nil {
		t.Fatal(err)
	}
	var attrs map[string]tftypes.Value
	if err := v.As(&attrs); err != nil {
		t.Fatal(err)
	}
	if _, ok := attrs["activation_token"]; ok {
		t.Error("the upgraded state still has activation_token")
	}
	var hostname string
	if err := attrs["hostname"].As(&hostname); err != nil || hostname != "nas01.example.com" {
		t.Errorf("hostname after the upgrade: %q, %v", hostname, err)
	}
}
