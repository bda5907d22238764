package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// databaseHost is a PostgreSQL cluster whose write-ahead log is archived
// into the spool of the agent of its host (the haven binary built from
// this repository is its archive_command), with a table whose rows count
// how far a restore went.
type databaseHost struct {
	cluster  *testparts.Cluster
	base     string // beside the cluster's directory, reachable by its user
	stateDir string // the agent's
}

func startDatabaseHost(t *testing.T) *databaseHost {
	t.Helper()
	bin, err := providerBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The cluster's unprivileged user runs the binary.
	if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	h := &databaseHost{base: filepath.Dir(testparts.ClusterDir(t))}
	h.stateDir = filepath.Join(h.base, "agent-state")
	h.cluster = testparts.StartClusterIn(t, filepath.Join(h.base, "c"), "archive_mode=on", "archive_timeout=0",
		"archive_command="+bin+" agent wal-push --state-dir "+h.stateDir+" %p")
	h.cluster.Exec("postgres", "CREATE TABLE ledger (id bigint PRIMARY KEY)")
	return h
}

// insert adds the ledger's rows from to to, one transaction each.
func (h *databaseHost) insert(t *testing.T, from, to int64) {
	t.Helper()
	conn := h.cluster.Conn("postgres")
	for id := from; id <= to; id++ {
		if _, err := conn.Exec(context.Background(), "INSERT INTO ledger (id) VALUES ($1)", id); err != nil {
			t.Fatal(err)
		}
	}
}

// now is the cluster's clock, between two transactions.
func (h *databaseHost) now(t *testing.T) time.Time {
	t.Helper()
	var at time.Time
	if err := h.cluster.Conn("postgres").QueryRow(context.Background(), "SELECT clock_timestamp()").Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// backUpKind runs a backup of one type (full, log, ...) of an asset to the
// end and returns the point it made.
func backUpKind(srv *servertest.Server, assetID, kind string) (*api.Point, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j, err := srv.Client.Backup(ctx, assetID, api.BackupRequest{Type: kind})
	if err != nil {
		return nil, fmt.Errorf("%s backup: %w", kind, err)
	}
	if j, err = srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil {
		return nil, fmt.Errorf("waiting for the %s backup: %w", kind, err)
	}
	if j.State != api.JobSucceeded || j.PointID == "" {
		return nil, fmt.Errorf("%s backup ended %s: %s", kind, j.State, j.Error)
	}
	return srv.Client.GetPoint(ctx, j.PointID)
}

// checkLedger starts the cluster a restore made in dir, checks that its
// ledger ends at want, and stops it.
func checkLedger(t *testing.T, dir string, want int64) resource.TestCheckFunc {
	return func(*terraform.State) error {
		c := testparts.StartClusterIn(t, dir)
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c.Stop(ctx)
		}()
		var n int64
		var err error
		// The cluster takes read-only connections as soon as it is
		// consistent, and goes on replaying to its target: the count
		// grows until recovery ends (or pauses) where it should.
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if err = c.Conn("postgres").QueryRow(context.Background(), "SELECT coalesce(max(id), 0) FROM ledger").Scan(&n); err == nil && n == want {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("the cluster restored in %s: %w", dir, err)
		}
		if n != want {
			return fmt.Errorf("the cluster restored in %s has a ledger up to %d, want %d", dir, n, want)
		}
		return nil
	}
}

// TestAccDatabaseRestoreEndToEnd protects a real PostgreSQL cluster with
// Terraform (its host's agent enrolled with the token
// haven_file_server_activation issued), backs it up through the agent (a
// full and two log backups), finds with haven_recovery_point the log
// point that covers an instant, and restores the cluster to that instant
// and to a named restore point with haven_restore: the restored clusters
// start and hold the rows committed by then. Restores the server refuses
// fail the apply on the argument at fault.
func TestAccDatabaseRestoreEndToEnd(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 5 * time.Second })
	host := startDatabaseHost(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "activation")
	atInstant, atName := filepath.Join(host.base, "at-instant"), filepath.Join(host.base, "at-name")

	base := providerConfig(srv) + forceDestroyStorage(fsStorageConfig("store", filepath.Join(dir, "store"))) + fmt.Sprintf(`
resource "haven_backup_policy" "test" {
  name     = "pitr"
  timezone = "UTC"

  full {
    days_of_week = ["sun"]
    at           = "01:00"
  }
  retention {
    daily_days = 7
    log_days   = 7
  }
}

resource "haven_file_server" "db01" {
  name     = "db01"
  hostname = "db01.example.com"
  os       = "linux"
  location = "agent"
}

resource "haven_database_server" "orders" {
  name           = "orders"
  file_server_id = haven_file_server.db01.id
  host           = %q
  user           = %q
}

resource "haven_database_set" "orders" {
  name               = "orders"
  database_server_id = haven_database_server.orders.id
  policy_id          = haven_backup_policy.test.id
  storage_id         = haven_storage.test.id
}
`, host.cluster.Dir(), pgembed.Superuser) + deliverActivation("db01", "haven_file_server.db01.id", "", tokenFile)

	var full, log1, log2 *api.Point
	var instant, beforeAll string
	backUp := func(kind string) (*api.Point, error) {
		set, err := srv.Client.DatabaseSets().Get(context.Background(), "orders")
		if err != nil {
			return nil, err
		}
		return backUpKind(srv, set.ID, kind)
	}
	// The agent enrols with the delivered token; then a full, rows 1-100
	// with an instant after row 50 and a restore point after row 100, a
	// log backup, rows 101-150 and another log backup.
	backUps := func(*terraform.State) error {
		status, token, err := delivered(tokenFile)
		if err != nil {
			return err
		}
		if status != "pending" {
			return fmt.Errorf("the provisioner got agent_status %q, want pending", status)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			// The agent restores data directories only below its roots.
			done <- agent.Run(ctx, agent.Config{Server: srv.URL, ActivationToken: token, StateDir: host.stateDir, PollWait: time.Second,
				RestoreRoots: []string{host.base}})
		}()
		t.Cleanup(func() { stop(); <-done })

		if full, err = backUp(api.BackupFull); err != nil {
			return err
		}
		beforeAll = full.StartedAt.Add(-time.Hour).UTC().Format(time.RFC3339)
		host.insert(t, 1, 50)
		at := host.now(t)
		instant = at.UTC().Format(time.RFC3339Nano)
		time.Sleep(20 * time.Millisecond)
		host.insert(t, 51, 100)
		host.cluster.Exec("postgres", "SELECT pg_create_restore_point('after_100')")
		if log1, err = backUp(api.BackupLog); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
		host.insert(t, 101, 150)
		if log2, err = backUp(api.BackupLog); err != nil {
			return err
		}
		if log1.LogStart == nil || log1.LogEnd == nil || at.Before(*log1.LogStart) || at.After(*log1.LogEnd) {
			return fmt.Errorf("the first log point spans %v to %v, not the instant %s", log1.LogStart, log1.LogEnd, at)
		}
		if log2.LogStart == nil || !log2.LogStart.After(at) {
			return fmt.Errorf("the second log point starts at %v, not after the instant %s", log2.LogStart, at)
		}
		return nil
	}

	withLookups := base + `
variable "instant" {
  type = string
}

variable "before_all" {
  type = string
}

data "haven_recovery_point" "covering" {
  asset_id    = haven_database_set.orders.id
  covers_time = var.instant
}

data "haven_recovery_point" "completed_by" {
  asset_id = haven_database_set.orders.id
  at       = var.instant
}

data "haven_recovery_point" "latest" {
  asset_id = haven_database_set.orders.id
}

data "haven_database_server" "orders" {
  name = haven_database_server.orders.name
}
`
	vars := config.Variables{"instant": lazyString{&instant}, "before_all": lazyString{&beforeAll}}
	restores := withLookups + fmt.Sprintf(`
resource "haven_restore" "at_instant" {
  point_id = data.haven_recovery_point.covering.id

  database {
    data_dir      = %q
    point_in_time = var.instant
    end_state     = "standby"
  }
}

resource "haven_restore" "verify_full" {
  point_id = data.haven_recovery_point.completed_by.id

  database {
    verify = true
  }
}

resource "haven_restore" "at_name" {
  point_id = data.haven_recovery_point.covering.id

  database {
    data_dir      = %q
    restore_point = "after_100"
  }
}
`, filepath.Join(atInstant, "data"), filepath.Join(atName, "data"))
	rolled := restores + fmt.Sprintf(`
resource "haven_restore" "rolled" {
  point_id = data.haven_recovery_point.covering.id

  database {
    data_dir     = %q
    roll_forward = true
  }
}
`, filepath.Join(atInstant, "data"))
	withBadRestore := func(body string) string {
		return rolled + `
resource "haven_restore" "bad" {
  point_id = data.haven_recovery_point.latest.id
` + body + `
}
`
	}
	isPoint := func(addr string, p **api.Point) resource.TestCheckFunc {
		return func(s *terraform.State) error {
			return pointIs(srv, addr, &(*p).ID)(s)
		}
	}
	const covering = "data.haven_recovery_point.covering"

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{Config: base, Check: backUps},
			{
				Config:          withLookups,
				ConfigVariables: vars,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(covering, at("kind"), knownvalue.StringExact(api.BackupLog)),
					statecheck.ExpectKnownValue(covering, at("database", "timeline"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(covering, at("database", "converted"), knownvalue.Null()),
					statecheck.ExpectKnownValue(covering, at("database", "verified"), knownvalue.Null()),
					statecheck.ExpectKnownValue(covering, at("database", "restore_points"),
						knownvalue.ListPartial(map[int]knownvalue.Check{0: knownvalue.StringExact("after_100")})),
					statecheck.ExpectKnownValue(covering, at("database", "start_lsn"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9A-F]+/[0-9A-F]+$`))),
					statecheck.ExpectKnownValue(covering, at("database", "end_lsn"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9A-F]+/[0-9A-F]+$`))),
					statecheck.ExpectKnownValue("data.haven_recovery_point.completed_by", at("kind"), knownvalue.StringExact(api.BackupFull)),
					// The backups found the cluster's data directory.
					statecheck.ExpectKnownValue("data.haven_database_server.orders", at("detected", "data_dir"),
						knownvalue.StringExact(host.cluster.DataDir())),
					statecheck.ExpectKnownValue("data.haven_database_server.orders", at("detected", "log_refusal"), knownvalue.Null()),
					statecheck.CompareValuePairs("haven_database_server.orders", at("detected"),
						"data.haven_database_server.orders", at("detected"), compare.ValuesSame()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					// The log point whose span holds the instant, not the
					// newer one, nor the full that completed before it.
					isPoint(covering, &log1),
					isPoint("data.haven_recovery_point.completed_by", &full),
					isPoint("data.haven_recovery_point.latest", &log2),
					resource.TestCheckResourceAttrPtr(covering, "covers_time", &instant),
					func(s *terraform.State) error {
						attrs := s.RootModule().Resources[covering].Primary.Attributes
						if attrs["log_start"] != pointTime(*log1.LogStart) || attrs["log_end"] != pointTime(*log1.LogEnd) ||
							attrs["database.start_lsn"] != log1.Database.StartLSN || attrs["database.end_lsn"] != log1.Database.EndLSN ||
							attrs["database.system_id"] != log1.Database.SystemID {
							return fmt.Errorf("%s: log span %s to %s, LSNs %s to %s, system %s; the server's point: %v to %v, %+v",
								covering, attrs["log_start"], attrs["log_end"], attrs["database.start_lsn"], attrs["database.end_lsn"],
								attrs["database.system_id"], log1.LogStart, log1.LogEnd, log1.Database)
						}
						dbs := s.RootModule().Resources["data.haven_database_server.orders"].Primary.Attributes
						for i := 0; dbs[fmt.Sprintf("detected.databases.%d", i)] != ""; i++ {
							if dbs[fmt.Sprintf("detected.databases.%d", i)] == "postgres" {
								return nil
							}
						}
						return fmt.Errorf("the detected databases do not list postgres: %v", dbs)
					},
				),
			},
			{
				// Before the first point there is nothing to cover.
				Config: withLookups + `
data "haven_recovery_point" "before_all" {
  asset_id    = haven_database_set.orders.id
  covers_time = var.before_all
}
`,
				ConfigVariables: vars,
				ExpectError:     regexp.MustCompile(`(?s)No matching recovery point.*that\s+covers\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ:\s+no\s+log\s+point\s+spans\s+it`),
			},
			{
				Config:          restores,
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("haven_restore.at_instant", plancheck.ResourceActionCreate),
						plancheck.ExpectKnownValue("haven_restore.at_instant", at("conflict"), knownvalue.Null()),
						plancheck.ExpectKnownValue("haven_restore.at_name", at("database", "end_state"), knownvalue.StringExact(api.EndRecovery)),
						plancheck.ExpectKnownValue("haven_restore.at_name", at("database", "overwrite"), knownvalue.Bool(false)),
						plancheck.ExpectKnownValue("haven_restore.verify_full", at("database", "end_state"), knownvalue.StringExact(api.EndRecovery)),
						plancheck.ExpectKnownValue("haven_restore.at_instant", at("restored_vm_name"), knownvalue.Null()),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_restore.at_instant", at("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue("haven_restore.at_name", at("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue("haven_restore.verify_full", at("state"), knownvalue.StringExact(api.JobSucceeded)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttrWith("haven_restore.at_instant", "point_id", func(v string) error {
						if v != log1.ID {
							return fmt.Errorf("the restore to the instant restored point %s, want the covering log point %s", v, log1.ID)
						}
						return nil
					}),
					// A read-only standby, stopped at the instant.
					checkLedger(t, atInstant, 50),
					checkLedger(t, atName, 100),
				),
			},
			{
				// The standby rolled forward to the end of the logs and
				// promoted; the full's verification is on the point now.
				Config:          rolled,
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_restore.rolled", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_restore.at_instant", plancheck.ResourceActionNoop),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_restore.rolled", at("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue("data.haven_recovery_point.completed_by", at("database", "verified", "ok"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue("data.haven_recovery_point.completed_by", at("database", "verified", "problem"), knownvalue.Null()),
					statecheck.ExpectKnownValue(covering, at("database", "verified"), knownvalue.Null()),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkLedger(t, atInstant, 150),
					func(s *terraform.State) error {
						attrs := s.RootModule().Resources["data.haven_recovery_point.completed_by"].Primary.Attributes
						if attrs["database.verified.tables"] == "" || attrs["database.verified.tables"] == "0" || attrs["database.verified.at"] == "" {
							return fmt.Errorf("the full's verification counted %q tables at %q", attrs["database.verified.tables"], attrs["database.verified.at"])
						}
						return nil
					},
				),
			},
			{
				// Over the original cluster, without saying so.
				Config:          withBadRestore("  database {}"),
				ConfigVariables: vars,
				ExpectError: errorLike("Could not start restore of recovery point",
					"database.overwrite: must be true to restore over the data directory of database server", `"orders"`),
			},
			{
				Config: withBadRestore(fmt.Sprintf(`
  database {
    data_dir      = %q
    point_in_time = "2099-01-01T00:00:00Z"
  }`, filepath.Join(host.base, "never"))),
				ConfigVariables: vars,
				ExpectError: errorLike("Could not start restore of recovery point", `point_in_time = "2099-01-01T00:00:00Z"`,
					"database.point_in_time: no log backup covers 2099-01-01T00:00:00Z"),
			},
			{
				// A database point restored as files.
				Config:          withBadRestore(fmt.Sprintf("  target_path = %q", filepath.Join(dir, "files"))),
				ConfigVariables: vars,
				ExpectError:     errorLike("Could not start restore of recovery point", "database: the point is a database point"),
			},
			{
				// Destroying the restores leaves the restored clusters.
				Config:          withLookups,
				ConfigVariables: vars,
				Check: func(*terraform.State) error {
					for _, d := range []string{atInstant, atName} {
						if _, err := os.Stat(filepath.Join(d, "data", "PG_VERSION")); err != nil {
							return fmt.Errorf("after destroying the restore: %w", err)
						}
					}
					return nil
				},
			},
		},
	})
}
