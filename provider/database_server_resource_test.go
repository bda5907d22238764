package provider

import (
	"context"
	"fmt"
	"maps"
	"slices"
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

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const databaseServerAddr = "haven_database_server.test"

// databaseHostsConfig declares two hosts of databases: file servers of
// location agent, whose agents never need to run for the database
// servers on them to be managed.
const databaseHostsConfig = `
resource "haven_file_server" "db01" {
  name     = "db01"
  hostname = "db01.example.com"
  os       = "linux"
  location = "agent"
}

resource "haven_file_server" "db02" {
  name     = "db02"
  hostname = "db02.example.com"
  os       = "linux"
  location = "agent"
}
`

// databaseServerConfig declares haven_database_server.test on host (db01
// or db02); extra holds further arguments.
func databaseServerConfig(name, host, extra string) string {
	return fmt.Sprintf(`
resource "haven_database_server" "test" {
  name           = %q
  file_server_id = haven_file_server.%s.id
  host           = "/var/run/postgresql"
  user           = "haven"
%s
}
`, name, host, extra)
}

func passwordArgs(password string, version int) string {
	return fmt.Sprintf("  password         = %q\n  password_version = %d\n", password, version)
}

func checkDatabaseServerOnServer(srv *servertest.Server, name string, want func(*api.DatabaseServer) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		s, err := srv.Client.DatabaseServers().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("database server %s on the server: %w", name, err)
		}
		if s.Password != "" {
			return fmt.Errorf("the server returned the password of database server %s", name)
		}
		return want(s)
	}
}

// databaseServerIs checks what the server holds against the arguments a
// step configured, and the file server against the one Terraform made.
func databaseServerIs(srv *servertest.Server, name, host string, want api.DatabaseServerSpec, hasPassword bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		fs := s.RootModule().Resources["haven_file_server."+host]
		if fs == nil {
			return fmt.Errorf("haven_file_server.%s is not in the state", host)
		}
		want.Name, want.FileServerID = name, fs.Primary.ID
		return checkDatabaseServerOnServer(srv, name, func(got *api.DatabaseServer) error {
			if got.DatabaseServerSpec != want || got.HasPassword != hasPassword {
				return fmt.Errorf("server holds %+v has_password=%v; want %+v has_password=%v",
					got.DatabaseServerSpec, got.HasPassword, want, hasPassword)
			}
			return nil
		})(s)
	}
}

func TestAccDatabaseServerResource(t *testing.T) {
	srv := startParallel(t)
	base := providerConfig(srv) + databaseHostsConfig
	const password, newPassword = "first-Pa55word", "second-Pa55word"
	sameID := statecheck.CompareValue(compare.ValuesSame())
	newVersion := statecheck.CompareValue(compare.ValuesDiffer())
	socket := api.DatabaseServerSpec{Engine: api.EnginePostgreSQL, Host: "/var/run/postgresql", User: "haven", Database: "postgres"}
	moved := socket
	moved.Port, moved.Database, moved.Group = 5433, "app", "team-a"
	full := "  port     = 5433\n  database = \"app\"\n  group    = \"team-a\"\n"

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + databaseServerConfig("orders", "db01", passwordArgs(password, 1)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseServerAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("engine"), knownvalue.StringExact("postgresql")),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("database"), knownvalue.StringExact("postgres")),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("has_password"), knownvalue.Bool(true)),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("password"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseServerAddr, tfjsonpath.New("id")),
					newVersion.AddStateValue(databaseServerAddr, tfjsonpath.New("version")),
					statecheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("password"), knownvalue.Null()),
					statecheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("has_password"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("port"), knownvalue.Null()),
					statecheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("group"), knownvalue.Null()),
					// No backup has run: the agent has detected nothing yet.
					statecheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("detected"), knownvalue.Null()),
					statecheck.CompareValuePairs(databaseServerAddr, tfjsonpath.New("file_server_id"),
						"haven_file_server.db01", tfjsonpath.New("id"), compare.ValuesSame()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(password),
					databaseServerIs(srv, "orders", "db01", socket, true),
				),
			},
			{
				// Another password under the same version is not sent:
				// Terraform cannot see write-only changes.
				Config:   base + databaseServerConfig("orders", "db01", passwordArgs(newPassword, 1)),
				PlanOnly: true,
			},
			{
				// Renaming, another port, database and group: in place,
				// keeping the stored password.
				Config: base + databaseServerConfig("orders-db", "db01", passwordArgs(newPassword, 1)+full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseServerAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(databaseServerAddr, tfjsonpath.New("version")),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("has_password"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseServerAddr, tfjsonpath.New("id")),
					newVersion.AddStateValue(databaseServerAddr, tfjsonpath.New("version")),
					statecheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("port"), knownvalue.Int64Exact(5433)),
					statecheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("group"), knownvalue.StringExact("team-a")),
				},
				Check: databaseServerIs(srv, "orders-db", "db01", moved, true),
			},
			{
				// A new version sends the new password.
				Config: base + databaseServerConfig("orders-db", "db01", passwordArgs(newPassword, 2)+full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseServerAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseServerAddr, tfjsonpath.New("id")),
					newVersion.AddStateValue(databaseServerAddr, tfjsonpath.New("version")),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(password),
					checkSecretNotInState(newPassword),
					databaseServerIs(srv, "orders-db", "db01", moved, true),
				),
			},
			{
				// Drift: host and port changed behind Terraform's back are
				// put back by the next apply.
				PreConfig: func() {
					ctx := context.Background()
					s, err := srv.Client.DatabaseServers().Get(ctx, "orders-db")
					if err != nil {
						t.Fatalf("reading database server: %v", err)
					}
					s.Host, s.Port = "db01.example.com", 0
					if _, err := srv.Client.DatabaseServers().Update(ctx, s.ID, s.Version,
						api.DatabaseServerRequest{DatabaseServerSpec: s.DatabaseServerSpec}); err != nil {
						t.Fatalf("changing database server behind Terraform's back: %v", err)
					}
				},
				Config: base + databaseServerConfig("orders-db", "db01", passwordArgs(newPassword, 2)+full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(databaseServerAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("host"), knownvalue.StringExact("/var/run/postgresql")),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("port"), knownvalue.Int64Exact(5433)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseServerAddr, tfjsonpath.New("id")),
				},
				Check: databaseServerIs(srv, "orders-db", "db01", moved, true),
			},
			{
				ResourceName:            databaseServerAddr,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"password", "password_version"},
			},
			{
				// Import also takes the name; the state gets the real id.
				ResourceName:            databaseServerAddr,
				ImportState:             true,
				ImportStateId:           "orders-db",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"password", "password_version"},
			},
			{
				// Moving the database server to another host, leaving out
				// port, database and group: in place, back to the defaults.
				Config: base + databaseServerConfig("orders-db", "db02", passwordArgs(newPassword, 2)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseServerAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("database"), knownvalue.StringExact("postgres")),
					plancheck.ExpectKnownValue(databaseServerAddr, tfjsonpath.New("port"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseServerAddr, tfjsonpath.New("id")),
					statecheck.CompareValuePairs(databaseServerAddr, tfjsonpath.New("file_server_id"),
						"haven_file_server.db02", tfjsonpath.New("id"), compare.ValuesSame()),
				},
				Check: databaseServerIs(srv, "orders-db", "db02", socket, true),
			},
			{
				// A server reached with the host's own authentication has
				// no password.
				Config: base + databaseServerConfig("orders-db", "db02", passwordArgs(newPassword, 2)) + `
resource "haven_database_server" "peer" {
  name           = "reports"
  file_server_id = haven_file_server.db01.id
  host           = "localhost"
  user           = "postgres"
}
`,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_database_server.peer", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_database_server.peer", tfjsonpath.New("has_password"), knownvalue.Bool(false)),
				}},
				Check: checkDatabaseServerOnServer(srv, "reports", func(s *api.DatabaseServer) error {
					if s.HasPassword || s.Host != "localhost" || s.Port != 0 {
						return fmt.Errorf("server holds host %q port %d has_password=%v", s.Host, s.Port, s.HasPassword)
					}
					return nil
				}),
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan creates it again.
				PreConfig: func() {
					ctx := context.Background()
					s, err := srv.Client.DatabaseServers().Get(ctx, "orders-db")
					if err != nil {
						t.Fatal(err)
					}
					if err := srv.Client.DatabaseServers().Delete(ctx, s.ID); err != nil {
						t.Fatal(err)
					}
				},
				Config: base + databaseServerConfig("orders-db", "db02", passwordArgs(newPassword, 2)),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseServerAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_database_server.peer", plancheck.ResourceActionDestroy),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(newPassword),
					databaseServerIs(srv, "orders-db", "db02", socket, true),
				),
			},
		},
	})
}

// TestAccDatabaseServerResource_serverErrors checks that what only the
// server can find out is reported against the attribute at fault.
func TestAccDatabaseServerResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	base := providerConfig(srv) + fileServerConfig("local", "this-host", "localhost", "linux", "server")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				// The Haven host itself has no agent to reach a database.
				Config: base + `
resource "haven_database_server" "test" {
  name           = "orders"
  file_server_id = haven_file_server.local.id
  host           = "/var/run/postgresql"
  user           = "haven"
}
`,
				ExpectError: errorLike("Could not create database server orders", "file_server_id = haven_file_server.local.id",
					`file_server_id: file server "this-host" is of location "server"`, `location "agent"`),
			},
			{
				Config: base + `
resource "haven_database_server" "test" {
  name           = "orders"
  file_server_id = "00000000-0000-4000-8000-000000000000"
  host           = "/var/run/postgresql"
  user           = "haven"
}
`,
				ExpectError: errorLike("Could not create database server orders", "file_server_id", "does not exist"),
			},
			{
				// Nothing was created by the failed attempts.
				Config: base,
				Check: func(*terraform.State) error {
					all, err := srv.Client.DatabaseServers().ListAll(context.Background())
					if err != nil {
						return err
					}
					if len(all) != 0 {
						return fmt.Errorf("failed creates left %d database servers on the server", len(all))
					}
					return nil
				},
			},
		},
	})
}

func TestAccDatabaseServerResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(attrs string, want ...string) resource.TestStep {
		return invalidConfigStep("haven_database_server", map[string]string{"name": `"orders"`, "file_server_id": `"` + id + `"`, "host": `"/var/run/postgresql"`, "user": `"haven"`}, attrs, want...)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		Steps: []resource.TestStep{
			step(`engine = "mysql"`, `Attribute engine must be "postgresql" (the one engine Haven protects so far), got "mysql"`),
			step(`port = 70000`, "Attribute port value must be between 1 and 65535, got: 70000"),
			step(`file_server_id = "db01"`, "Attribute file_server_id must be the id of a file server", "not a name"),
			step(`host = ""`, "Attribute host string length must be at least 1"),
			step(`user = ""`, "Attribute user string length must be at least 1"),
			step(`password = ""`, "Attribute password string length must be at least 1"),
			step(`name = "orders db"`, "Attribute name must start with a letter or digit"),
			step(`group = "team a"`, "Attribute group must start with a letter or digit"),
		},
	})
}

// invalidConfigStep is a plan of one resource of rtype, offline, whose
// attributes are defaults with attrs ("name = value" lines) over them,
// expected to fail with errors like want.
func invalidConfigStep(rtype string, defaults map[string]string, attrs string, want ...string) resource.TestStep {
	body := maps.Clone(defaults)
	for _, line := range strings.Split(attrs, "\n") {
		k, v, _ := strings.Cut(line, "=")
		body[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(body)) {
		fmt.Fprintf(&b, "  %s = %s\n", k, body[k])
	}
	return resource.TestStep{
		Config:      offlineProviderConfig + "resource \"" + rtype + "\" \"test\" {\n" + b.String() + "}\n",
		ExpectError: errorLike(want...),
	}
}
