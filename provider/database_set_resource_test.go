package provider

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

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

const databaseSetAddr = "haven_database_set.test"

// databaseProtectionConfig declares what a database set needs: the
// storage and policy of protectionConfig, and a database server on a host
// of location agent.
func databaseProtectionConfig(storageDir string) string {
	return databaseHostConfig(storageDir) + `
resource "haven_database_server" "orders" {
  name           = "orders"
  file_server_id = haven_file_server.db01.id
  host           = "/var/run/postgresql"
  user           = "haven"
}
`
}

// databaseHostConfig is databaseProtectionConfig without the database
// server.
func databaseHostConfig(storageDir string) string {
	return protectionConfig(storageDir) + `
resource "haven_file_server" "db01" {
  name     = "db01"
  hostname = "db01.example.com"
  os       = "linux"
  location = "agent"
}
`
}

// databaseSetConfig declares haven_database_set.test; extra holds further
// arguments.
func databaseSetConfig(name, extra string) string {
	return fmt.Sprintf(`
resource "haven_database_set" "test" {
  name               = %q
  database_server_id = haven_database_server.orders.id
  policy_id          = haven_backup_policy.test.id
  storage_id         = haven_storage.test.id
%s
}
`, name, extra)
}

// databaseSetIs checks that the server holds the set with the ids of the
// objects Terraform created, not merely something Terraform believes.
func databaseSetIs(srv *servertest.Server, name string, verify bool, group string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		root := s.RootModule()
		set, err := srv.Client.DatabaseSets().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("database set %s on the server: %w", name, err)
		}
		for _, ref := range []struct{ got, addr string }{
			{set.DatabaseServerID, "haven_database_server.orders"}, {set.PolicyID, "haven_backup_policy.test"}, {set.StorageID, "haven_storage.test"},
		} {
			if rs := root.Resources[ref.addr]; rs == nil || rs.Primary.ID != ref.got {
				return fmt.Errorf("database set %s refers to %s, not to %s", name, ref.got, ref.addr)
			}
		}
		if set.VerifyRestore != verify || set.Group != group {
			return fmt.Errorf("server holds verify_restore=%v group %q; want %v %q", set.VerifyRestore, set.Group, verify, group)
		}
		return nil
	}
}

func TestAccDatabaseSetResource(t *testing.T) {
	srv := startParallel(t)
	store := filepath.Join(t.TempDir(), "store")
	base := providerConfig(srv) + databaseProtectionConfig(store)
	full := `
  verify_restore = true
  group          = "team-a"
`
	sameID := statecheck.CompareValue(compare.ValuesSame())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + databaseSetConfig("orders", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseSetAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("verify_restore"), knownvalue.Bool(false)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseSetAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("version"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("verify_restore"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("group"), knownvalue.Null()),
					statecheck.CompareValuePairs(databaseSetAddr, tfjsonpath.New("database_server_id"),
						"haven_database_server.orders", tfjsonpath.New("id"), compare.ValuesSame()),
				},
				Check: databaseSetIs(srv, "orders", false, ""),
			},
			{
				// Renaming, verification and a group: in place.
				Config: base + databaseSetConfig("orders-cluster", full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseSetAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseSetAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("verify_restore"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("group"), knownvalue.StringExact("team-a")),
					statecheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
				},
				Check: databaseSetIs(srv, "orders-cluster", true, "team-a"),
			},
			{
				// Drift: verification turned off behind Terraform's back is
				// turned on again by the next apply.
				PreConfig: func() {
					ctx := context.Background()
					s, err := srv.Client.DatabaseSets().Get(ctx, "orders-cluster")
					if err != nil {
						t.Fatalf("reading database set: %v", err)
					}
					s.VerifyRestore = false
					if _, err := srv.Client.DatabaseSets().Update(ctx, s.ID, s.Version, api.DatabaseSetRequest{DatabaseSetSpec: s.DatabaseSetSpec}); err != nil {
						t.Fatalf("changing database set behind Terraform's back: %v", err)
					}
				},
				Config: base + databaseSetConfig("orders-cluster", full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(databaseSetAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("verify_restore"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(databaseSetAddr, tfjsonpath.New("id")),
				},
				Check: databaseSetIs(srv, "orders-cluster", true, "team-a"),
			},
			{
				ResourceName:      databaseSetAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				ResourceName:      databaseSetAddr,
				ImportState:       true,
				ImportStateId:     "orders-cluster",
				ImportStateVerify: true,
			},
			{
				// Leaving verification and the group out clears them.
				Config: base + databaseSetConfig("orders-cluster", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseSetAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("verify_restore"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue(databaseSetAddr, tfjsonpath.New("group"), knownvalue.Null()),
				}},
				Check: databaseSetIs(srv, "orders-cluster", false, ""),
			},
			{
				// A database server a set uses cannot be deleted, and
				// Terraform says why: here a set made outside Terraform.
				PreConfig: func() {
					ctx := context.Background()
					s, err := srv.Client.DatabaseSets().Get(ctx, "orders-cluster")
					if err != nil {
						t.Fatal(err)
					}
					spec := s.DatabaseSetSpec
					spec.Name = "intruder"
					if _, err := srv.Client.DatabaseSets().Create(ctx, api.DatabaseSetRequest{DatabaseSetSpec: spec}); err != nil {
						t.Fatal(err)
					}
				},
				Config:      providerConfig(srv) + databaseHostConfig(store),
				ExpectError: errorLike("Could not delete database server orders", `the database server is used by`, `"intruder"`),
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan creates it again.
				PreConfig: func() {
					ctx := context.Background()
					for _, name := range []string{"intruder", "orders-cluster"} {
						s, err := srv.Client.DatabaseSets().Get(ctx, name)
						if api.IsNotFound(err) {
							continue // the failed step destroyed it already
						}
						if err != nil {
							t.Fatal(err)
						}
						if err := srv.Client.DatabaseSets().Delete(ctx, s.ID); err != nil {
							t.Fatal(err)
						}
					}
				},
				Config: base + databaseSetConfig("orders-cluster", ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(databaseSetAddr, plancheck.ResourceActionCreate),
				}},
				Check: databaseSetIs(srv, "orders-cluster", false, ""),
			},
		},
	})
}

// TestAccDatabaseSetResource_serverErrors checks that what only the server
// can find out is reported against the attribute at fault.
func TestAccDatabaseSetResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	base := providerConfig(srv) + databaseProtectionConfig(filepath.Join(t.TempDir(), "store"))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + `
resource "haven_database_set" "test" {
  name               = "orphan"
  database_server_id = "00000000-0000-4000-8000-000000000000"
  policy_id          = haven_backup_policy.test.id
  storage_id         = haven_storage.test.id
}
`,
				ExpectError: errorLike("Could not create database set orphan", "database_server_id", "does not exist"),
			},
		},
	})
}

func TestAccDatabaseSetResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(attrs string, want ...string) resource.TestStep {
		return invalidConfigStep("haven_database_set", map[string]string{
			"name": `"orders"`, "database_server_id": `"` + id + `"`, "policy_id": `"` + id + `"`, "storage_id": `"` + id + `"`,
		}, attrs, want...)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(`database_server_id = "orders"`, "Attribute database_server_id must be the id of a database server", "not a name"),
			step(`policy_id = "gold"`, "Attribute policy_id must be the id of a backup policy"),
			step(`storage_id = "local"`, "Attribute storage_id must be the id of a storage"),
			step(`verify_restore = "sometimes"`, "Incorrect attribute value type"),
			step(`name = "orders/main"`, "Attribute name must start with a letter or digit"),
			step(`group = "team a"`, "Attribute group must start with a letter or digit"),
		},
	})
}
