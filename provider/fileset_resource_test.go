package provider

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
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

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const filesetAddr = "haven_fileset.test"

// protectionConfig declares what a fileset needs: a filesystem storage in
// storageDir, a policy and a file server on the Haven host. Tests back up
// into the storage, and its points would outlive the fileset and refuse
// the destroy that ends each test: the storage has force_destroy.
func protectionConfig(storageDir string) string {
	return forceDestroyStorage(fsStorageConfig("store", storageDir)) + `
resource "haven_backup_policy" "test" {
  name     = "nightly"
  timezone = "UTC"

  full {
    days_of_week = ["sun"]
    at           = "01:00"
  }
  retention {
    daily_days = 7
  }
}

resource "haven_file_server" "local" {
  name     = "this-host"
  hostname = "localhost"
  os       = "linux"
  location = "server"
}
`
}

// filesetConfig declares haven_fileset.test; extra holds further arguments.
func filesetConfig(name string, include []string, extra string) string {
	return fmt.Sprintf(`
resource "haven_fileset" "test" {
  name           = %q
  file_server_id = haven_file_server.local.id
  include_paths  = %s
  policy_id      = haven_backup_policy.test.id
  storage_id     = haven_storage.test.id
%s
}
`, name, hclList(include), extra)
}

func hclList(items []string) string {
	quoted := make([]string, len(items))
	for i, s := range items {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

func stringsExact(items ...string) knownvalue.Check {
	checks := make([]knownvalue.Check, len(items))
	for i, s := range items {
		checks[i] = knownvalue.StringExact(s)
	}
	return knownvalue.ListExact(checks)
}

func checkFilesetOnServer(srv *servertest.Server, name string, want func(*api.Fileset) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		f, err := srv.Client.Filesets().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("fileset %s on the server: %w", name, err)
		}
		return want(f)
	}
}

// filesetRefersTo checks that the server holds the fileset with the ids of
// the objects Terraform created, not merely something Terraform believes.
func filesetRefersTo(srv *servertest.Server, name string, include, exclude []string, group string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		root := s.RootModule()
		f, err := srv.Client.Filesets().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("fileset %s on the server: %w", name, err)
		}
		for _, ref := range []struct{ got, addr string }{
			{f.FileServerID, "haven_file_server.local"}, {f.PolicyID, "haven_backup_policy.test"}, {f.StorageID, "haven_storage.test"},
		} {
			if rs := root.Resources[ref.addr]; rs == nil || rs.Primary.ID != ref.got {
				return fmt.Errorf("fileset %s refers to %s, not to %s", name, ref.got, ref.addr)
			}
		}
		if !slices.Equal(f.IncludePaths, include) || !slices.Equal(f.ExcludeGlobs, exclude) || f.Group != group {
			return fmt.Errorf("server holds include %q exclude %q group %q; want %q %q %q",
				f.IncludePaths, f.ExcludeGlobs, f.Group, include, exclude, group)
		}
		return nil
	}
}

func TestAccFilesetResource(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	base := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store"))
	srcA, srcB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	// A storage nothing in Terraform uses, which a fileset created outside
	// Terraform will hold on to.
	spare := `
resource "haven_storage" "spare" {
  name = "spare"
  kind = "filesystem"
  path = "` + filepath.Join(dir, "spare") + `"
}
`
	full := `
  exclude_globs = ["*.tmp", ".cache"]
  group         = "team-a"
`
	sameID := statecheck.CompareValue(compare.ValuesSame())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + spare + filesetConfig("docs", []string{srcA}, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(filesetAddr, plancheck.ResourceActionCreate),
					// No exclusions plans an empty list, which is what the
					// server reads back, not "known after apply".
					plancheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("exclude_globs"), knownvalue.ListSizeExact(0)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(filesetAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("include_paths"), stringsExact(srcA)),
					statecheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("exclude_globs"), knownvalue.ListSizeExact(0)),
					statecheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("group"), knownvalue.Null()),
					statecheck.CompareValuePairs(filesetAddr, tfjsonpath.New("storage_id"), storageAddr, tfjsonpath.New("id"), compare.ValuesSame()),
				},
				Check: filesetRefersTo(srv, "docs", []string{srcA}, nil, ""),
			},
			{
				// Renaming, more paths, exclusions and a group: in place.
				Config: base + spare + filesetConfig("documents", []string{srcA, srcB}, full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(filesetAddr, plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(filesetAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("include_paths"), stringsExact(srcA, srcB)),
					statecheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("exclude_globs"), stringsExact("*.tmp", ".cache")),
					statecheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("group"), knownvalue.StringExact("team-a")),
					statecheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("version"), knownvalue.Int64Exact(2)),
				},
				Check: filesetRefersTo(srv, "documents", []string{srcA, srcB}, []string{"*.tmp", ".cache"}, "team-a"),
			},
			{
				// Drift: paths and exclusions changed behind Terraform's
				// back are put back by the next apply.
				PreConfig: func() {
					ctx := context.Background()
					f, err := srv.Client.Filesets().Get(ctx, "documents")
					if err != nil {
						t.Fatalf("reading fileset: %v", err)
					}
					f.IncludePaths, f.ExcludeGlobs = []string{srcB}, nil
					if _, err := srv.Client.Filesets().Update(ctx, f.ID, f.Version, api.FilesetRequest{FilesetSpec: f.FilesetSpec}); err != nil {
						t.Fatalf("changing fileset behind Terraform's back: %v", err)
					}
				},
				Config: base + spare + filesetConfig("documents", []string{srcA, srcB}, full),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(filesetAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("include_paths"), stringsExact(srcA, srcB)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(filesetAddr, tfjsonpath.New("id")),
				},
				Check: filesetRefersTo(srv, "documents", []string{srcA, srcB}, []string{"*.tmp", ".cache"}, "team-a"),
			},
			{
				// Leaving exclusions and the group out clears them.
				Config: base + spare + filesetConfig("documents", []string{srcB}, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(filesetAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("exclude_globs"), knownvalue.ListSizeExact(0)),
					plancheck.ExpectKnownValue(filesetAddr, tfjsonpath.New("group"), knownvalue.Null()),
				}},
				Check: filesetRefersTo(srv, "documents", []string{srcB}, nil, ""),
			},
			{
				ResourceName:      filesetAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				ResourceName:      filesetAddr,
				ImportState:       true,
				ImportStateId:     "documents",
				ImportStateVerify: true,
			},
			{
				// Someone protects files into the spare storage outside
				// Terraform; removing the storage is then refused, and
				// Terraform says why.
				PreConfig: func() {
					ctx := context.Background()
					stg, err := srv.Client.Storages().Get(ctx, "spare")
					if err != nil {
						t.Fatal(err)
					}
					f, err := srv.Client.Filesets().Get(ctx, "documents")
					if err != nil {
						t.Fatal(err)
					}
					spec := f.FilesetSpec
					spec.Name, spec.StorageID = "intruder", stg.ID
					if _, err := srv.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: spec}); err != nil {
						t.Fatal(err)
					}
				},
				Config:      base + filesetConfig("documents", []string{srcB}, ""),
				ExpectError: errorLike("Could not delete storage spare", `the storage is used by fileset "intruder"`),
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan creates it again.
				PreConfig: func() {
					ctx := context.Background()
					for _, name := range []string{"intruder", "documents"} {
						f, err := srv.Client.Filesets().Get(ctx, name)
						if err != nil {
							t.Fatal(err)
						}
						if err := srv.Client.Filesets().Delete(ctx, f.ID); err != nil {
							t.Fatal(err)
						}
					}
				},
				Config: base + filesetConfig("documents", []string{srcB}, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(filesetAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_storage.spare", plancheck.ResourceActionDestroy),
				}},
				Check: filesetRefersTo(srv, "documents", []string{srcB}, nil, ""),
			},
		},
	})
}

// TestAccFilesetResource_serverErrors checks that what only the server can
// find out is reported against the attribute at fault.
func TestAccFilesetResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	base := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store"))
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: base + `
resource "haven_fileset" "test" {
  name           = "orphan"
  file_server_id = "00000000-0000-4000-8000-000000000000"
  include_paths  = ["/srv"]
  policy_id      = haven_backup_policy.test.id
  storage_id     = haven_storage.test.id
}
`,
				ExpectError: errorLike("Could not create fileset orphan", "file_server_id", "does not exist"),
			},
		},
	})
}

func TestAccFilesetResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(attrs string, want ...string) resource.TestStep {
		body := map[string]string{
			"name": `"x"`, "file_server_id": `"` + id + `"`, "include_paths": `["/srv"]`,
			"policy_id": `"` + id + `"`, "storage_id": `"` + id + `"`,
		}
		for _, line := range strings.Split(attrs, "\n") {
			k, v, _ := strings.Cut(line, "=")
			body[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(body)) {
			fmt.Fprintf(&b, "  %s = %s\n", k, body[k])
		}
		return resource.TestStep{
			Config:      offlineProviderConfig + "resource \"haven_fileset\" \"test\" {\n" + b.String() + "}\n",
			ExpectError: errorLike(want...),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(`include_paths = ["srv/share"]`, `Attribute include_paths[0] must be an absolute path`),
			step(`include_paths = ["/srv//share/"]`, `must be a clean path: use "/srv/share"`),
			step(`include_paths = []`, "Attribute include_paths list must contain at least 1 elements"),
			step(`include_paths = ["/srv", "/srv"]`, "Duplicate List Value", `include_paths = ["/srv", "/srv"]`, `duplicate values of: "/srv"`),
			step(`exclude_globs = ["[a-"]`, "is not a valid glob pattern"),
			step(`file_server_id = "this-host"`, "Attribute file_server_id must be the id of a file server", "not a name"),
			step(`policy_id = "gold"`, "Attribute policy_id must be the id of a backup policy"),
			step(`storage_id = "local"`, "Attribute storage_id must be the id of a storage"),
			step(`group = "team a"`, "Attribute group must start with a letter or digit"),
		},
	})
}

// TestAccFilesetResource_groupAdmin checks the administrative group from
// the side of a group_admin token: it manages the filesets of its groups,
// and a refusal for another group points at the group attribute.
func TestAccFilesetResource_groupAdmin(t *testing.T) {
	srv := startParallel(t)
	ctx := context.Background()
	stg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: "shared", Kind: api.StorageFilesystem, Path: t.TempDir(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{
		Name: "shared", Timezone: "UTC", Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"},
		Retention: api.Retention{DailyDays: 7},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// The group's own host: a group admin keeps filesets only there.
	fsrv, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "team-a-host", Hostname: "localhost", OS: api.OSLinux, Location: api.LocationServer, Group: "team-a",
	}})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "team-a-admin", Role: api.RoleGroupAdmin, Groups: []string{"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(group string) string {
		return fmt.Sprintf(`
provider "haven" {
  endpoint    = %q
  token       = %q
  max_retries = 1
}

resource "haven_fileset" "test" {
  name           = "team-files"
  file_server_id = %q
  include_paths  = ["/srv/team"]
  policy_id      = %q
  storage_id     = %q
  group          = %q
}
`, srv.URL, tok.Secret, fsrv.ID, pol.ID, stg.ID, group)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg("team-b"),
				ExpectError: errorLike("Could not create fileset team-files", `group = "team-b"`,
					"may only manage assets of its administrative groups", "does not have a role that allows this operation"),
			},
			{
				Config: cfg("team-a"),
				Check: checkFilesetOnServer(srv, "team-files", func(f *api.Fileset) error {
					if f.Group != "team-a" || f.StorageID != stg.ID {
						return fmt.Errorf("server holds group %q storage %q", f.Group, f.StorageID)
					}
					return nil
				}),
			},
		},
	})
}
