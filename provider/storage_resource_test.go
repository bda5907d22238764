package provider

import (
	"context"
	"fmt"
	"path/filepath"
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

const storageAddr = "haven_storage.test"

// checkStoragesDestroyed asserts that every storage in the last state is
// gone from the server, not merely from Terraform's state.
func checkStoragesDestroyed(srv *servertest.Server) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for addr, rs := range s.RootModule().Resources {
			if rs.Type != "haven_storage" {
				continue
			}
			_, err := srv.Client.Storages().Get(context.Background(), rs.Primary.ID)
			if !api.IsNotFound(err) {
				return fmt.Errorf("%s (%s) still exists after destroy (err = %v)", addr, rs.Primary.ID, err)
			}
		}
		return nil
	}
}

// checkStorageOnServer compares what the server holds with what the test
// configured, so a test cannot pass on state that only Terraform believes.
func checkStorageOnServer(srv *servertest.Server, name string, want func(*api.Storage) error) resource.TestCheckFunc {
	return func(*terraform.State) error {
		s, err := srv.Client.Storages().Get(context.Background(), name)
		if err != nil {
			return fmt.Errorf("storage %s on the server: %w", name, err)
		}
		return want(s)
	}
}

func TestAccStorageResource_filesystem(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	first, second, behindBack := filepath.Join(dir, "first"), filepath.Join(dir, "second"), filepath.Join(dir, "elsewhere")
	cfg := providerConfig(srv)

	sameID := statecheck.CompareValue(compare.ValuesSame())
	newVersion := statecheck.CompareValue(compare.ValuesDiffer())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkStoragesDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + fsStorageConfig("local", first),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(storageAddr, plancheck.ResourceActionCreate),
					// An omitted region stays null for filesystem storages
					// rather than "known after apply".
					plancheck.ExpectKnownValue(storageAddr, tfjsonpath.New("region"), knownvalue.Null()),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(storageAddr, tfjsonpath.New("id")),
					newVersion.AddStateValue(storageAddr, tfjsonpath.New("version")),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("kind"), knownvalue.StringExact("filesystem")),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("path"), knownvalue.StringExact(first)),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("force_path_style"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("has_secret"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("bucket"), knownvalue.Null()),
				},
				Check: checkStorageOnServer(srv, "local", func(s *api.Storage) error {
					if s.Kind != api.StorageFilesystem || s.Path != first {
						return fmt.Errorf("server holds kind %q path %q", s.Kind, s.Path)
					}
					return nil
				}),
			},
			{
				// Renaming and moving is an update in place: the id stays,
				// the version moves on.
				Config: cfg + fsStorageConfig("local-renamed", second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(storageAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectUnknownValue(storageAddr, tfjsonpath.New("version")),
					plancheck.ExpectKnownValue(storageAddr, tfjsonpath.New("has_secret"), knownvalue.Bool(false)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(storageAddr, tfjsonpath.New("id")),
					newVersion.AddStateValue(storageAddr, tfjsonpath.New("version")),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("name"), knownvalue.StringExact("local-renamed")),
				},
				Check: checkStorageOnServer(srv, "local-renamed", func(s *api.Storage) error {
					if s.Path != second {
						return fmt.Errorf("server holds path %q, want %q", s.Path, second)
					}
					return nil
				}),
			},
			{
				// Drift: someone moves the storage behind Terraform's back.
				// The refresh must see it and the plan must put it back.
				PreConfig: func() {
					ctx := context.Background()
					s, err := srv.Client.Storages().Get(ctx, "local-renamed")
					if err != nil {
						t.Fatalf("reading storage: %v", err)
					}
					s.Path = behindBack
					if _, err := srv.Client.Storages().Update(ctx, s.ID, s.Version, api.StorageRequest{StorageSpec: s.StorageSpec}); err != nil {
						t.Fatalf("changing storage behind Terraform's back: %v", err)
					}
				},
				Config: cfg + fsStorageConfig("local-renamed", second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectNonEmptyPlan(),
					plancheck.ExpectResourceAction(storageAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(storageAddr, tfjsonpath.New("path"), knownvalue.StringExact(second)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					sameID.AddStateValue(storageAddr, tfjsonpath.New("id")),
				},
				Check: checkStorageOnServer(srv, "local-renamed", func(s *api.Storage) error {
					if s.Path != second {
						return fmt.Errorf("drift was not corrected: server holds path %q, want %q", s.Path, second)
					}
					return nil
				}),
			},
			{
				// Deleted behind Terraform's back: Read forgets it and the
				// plan creates it again.
				PreConfig: func() {
					s, err := srv.Client.Storages().Get(context.Background(), "local-renamed")
					if err != nil {
						t.Fatalf("reading storage: %v", err)
					}
					if err := srv.Client.Storages().Delete(context.Background(), s.ID); err != nil {
						t.Fatalf("deleting storage behind Terraform's back: %v", err)
					}
				},
				Config: cfg + fsStorageConfig("local-renamed", second),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(storageAddr, plancheck.ResourceActionCreate),
				}},
			},
			{
				ResourceName:      storageAddr,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				// Import also takes the name; the state gets the real id.
				ResourceName:      storageAddr,
				ImportState:       true,
				ImportStateId:     "local-renamed",
				ImportStateVerify: true,
			},
		},
	})
}

func TestAccStorageResource_invalid(t *testing.T) {
	dir := t.TempDir()
	step := func(body string, want ...string) resource.TestStep {
		return resource.TestStep{
			Config:      offlineProviderConfig + "resource \"haven_storage\" \"test\" {\n" + body + "\n}\n",
			ExpectError: errorLike(want...),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(`name = "x"
kind = "filesystem"
path = "relative/dir"`, "Attribute path must be an absolute path"),
			step(`name = "x"
kind = "filesystem"
path = "`+dir+`/../other"`, "Attribute path must be a clean path"),
			step(`name = "x"
kind = "tape"
path = "`+dir+`"`, "Attribute kind value must be one of"),
			step(`name = "has space"
kind = "filesystem"
path = "`+dir+`"`, "Attribute name must start with a letter or digit"),
			step(`name = "x"
kind = "filesystem"`, "Attribute path is required when kind is \"filesystem\""),
			step(`name   = "x"
kind   = "filesystem"
path   = "`+dir+`"
prefix = "backups"`, "Attribute prefix applies only to storages with kind = \"s3\""),
			step(`name = "x"
kind = "filesystem"
path = "`+dir+`"
bucket = "my-bucket"`, "Attribute \"bucket\" cannot be specified when \"path\" is specified"),
			step(`name = "x"
kind = "s3"`, "Attribute bucket is required when kind is \"s3\""),
			step(`name   = "x"
kind   = "s3"
bucket = "Not_A_Bucket"`, "Attribute bucket \"Not_A_Bucket\" is not a valid bucket name"),
			step(`name               = "x"
kind               = "s3"
bucket             = "my-bucket"
cold_storage_class = "FROZEN"`, "Attribute cold_storage_class value must be one of"),
			step(`name   = "x"
kind   = "s3"
bucket = "my-bucket"
prefix = "/backups/"`, "Attribute prefix must not start or end with '/'"),
			step(`name          = "x"
kind          = "s3"
bucket        = "my-bucket"
access_key_id = "AKIA0000"`, "Attribute \"secret_access_key\" must be specified when \"access_key_id\" is specified"),
		},
	})
}

// TestAccStorageResource_serverErrors checks that what only the server can
// find out (a duplicate name, a directory it cannot use) is reported against
// the attribute at fault.
func TestAccStorageResource_serverErrors(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	if _, err := srv.Client.Storages().Create(context.Background(), api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: "taken", Kind: api.StorageFilesystem, Path: filepath.Join(dir, "taken"),
	}}); err != nil {
		t.Fatal(err)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkStoragesDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:      providerConfig(srv) + fsStorageConfig("taken", filepath.Join(dir, "mine")),
				ExpectError: errorLike("Could not create storage taken", `name = "taken"`, "name: another storage already has this name"),
			},
			{
				// A path below a regular file can never be a directory.
				Config:      providerConfig(srv) + fsStorageConfig("blocked", "/dev/null/haven"),
				ExpectError: errorLike("Could not create storage blocked", `path = "/dev/null/haven"`, "path: storage"),
			},
		},
	})
}

func s3StorageConfig(m testparts.MotoAuthServer, keyID, secret string, secretVersion int) string {
	return fmt.Sprintf(`
resource "haven_storage" "test" {
  name                      = "offsite"
  kind                      = "s3"
  bucket                    = %q
  prefix                    = "haven/test"
  endpoint                  = %q
  force_path_style          = true
  access_key_id             = %q
  secret_access_key         = %q
  secret_access_key_version = %d
  cold_storage_class        = "GLACIER"
}
`, m.Bucket, m.Endpoint, keyID, secret, secretVersion)
}

// TestAccStorageResource_s3 runs against a moto server that checks
// signatures, so the server's probe proves which secret it actually holds:
// the write-only secret must reach the server when, and only when, the
// version says it changed, and must never reach the state.
func TestAccStorageResource_s3(t *testing.T) {
	srv := startParallel(t)
	moto := testparts.MotoWithAuth(t)
	cfg := providerConfig(srv)
	good, keyID := moto.Allowed.SecretAccessKey, moto.Allowed.AccessKeyID
	const wrong = "definitely-not-the-secret"

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		TerraformVersionChecks:   []tfversion.TerraformVersionCheck{tfversion.RequireAbove(tfversion.Version1_11_0)},
		CheckDestroy:             checkStoragesDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config: cfg + s3StorageConfig(moto, keyID, good, 1),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectKnownValue(storageAddr, tfjsonpath.New("region"), knownvalue.StringExact(api.DefaultS3Region)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("secret_access_key"), knownvalue.Null()),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("has_secret"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("region"), knownvalue.StringExact(api.DefaultS3Region)),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("bucket"), knownvalue.StringExact(moto.Bucket)),
					statecheck.ExpectKnownValue(storageAddr, tfjsonpath.New("secret_access_key_version"), knownvalue.Int64Exact(1)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkSecretNotInState(good),
					checkStorageOnServer(srv, "offsite", func(s *api.Storage) error {
						if !s.HasSecret || s.SecretAccessKey != "" || s.AccessKeyID != keyID {
							return fmt.Errorf("server holds has_secret=%v access_key_id=%q and returned a secret: %v",
								s.HasSecret, s.AccessKeyID, s.SecretAccessKey != "")
						}
						return nil
					}),
				),
			},
			{
				// Terraform cannot see a changed write-only value: without a
				// new version there is nothing to do.
				Config:   cfg + s3StorageConfig(moto, keyID, wrong, 1),
				PlanOnly: true,
			},
			{
				// A new version sends the (wrong) secret, which the server's
				// probe rejects against the bucket.
				Config:      cfg + s3StorageConfig(moto, keyID, wrong, 2),
				ExpectError: errorLike("Could not update storage offsite", "bucket: storage failed its write-read-delete probe"),
			},
			{
				// The good secret under the new version goes through, in
				// place, and has_secret is not disturbed.
				Config: cfg + s3StorageConfig(moto, keyID, good, 2),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(storageAddr, plancheck.ResourceActionUpdate),
				}},
				Check: checkSecretNotInState(good),
			},
			{
				ResourceName:            storageAddr,
				ImportState:             true,
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"secret_access_key", "secret_access_key_version"},
			},
		},
	})
}

// checkSecretNotInState looks at every attribute of every resource, so the
// secret cannot hide under another name either.
func checkSecretNotInState(secret string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		for addr, rs := range s.RootModule().Resources {
			for k, v := range rs.Primary.Attributes {
				if strings.Contains(v, secret) {
					return fmt.Errorf("%s: attribute %s holds the secret access key", addr, k)
				}
			}
			if v, ok := rs.Primary.Attributes["secret_access_key"]; ok && v != "" {
				return fmt.Errorf("%s: secret_access_key is %q in state", addr, v)
			}
		}
		return nil
	}
}
