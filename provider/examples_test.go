package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestAccExamples runs the examples that the documentation is built from,
// so the docs cannot show configuration that does not work.
func TestAccExamples(t *testing.T) {
	srv := startParallel(t)
	example := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "examples", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// The storage data source example looks up a storage by name; its
	// resource example cannot be applied here (its s3 buckets are not
	// real), so the storage is made directly.
	if _, err := srv.Client.Storages().Create(context.Background(), api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: "local-disk", Kind: api.StorageFilesystem, Path: t.TempDir(),
	}}); err != nil {
		t.Fatal(err)
	}
	cfg := providerConfig(srv)
	policies := example("resources/haven_backup_policy/resource.tf")
	// The fileset example uses the storages of the storage example, which
	// cannot be applied here: stand-ins with the same addresses take their
	// place. The recovery point examples back up into "local", whose points
	// would outlive the fileset and refuse the destroy that ends the test.
	standIns := fmt.Sprintf(`
resource "haven_storage" "local" {
  name          = "example-local"
  kind          = "filesystem"
  path          = %q
  force_destroy = true
}

resource "haven_storage" "offsite" {
  name = "example-offsite"
  kind = "filesystem"
  path = %q
}
`, t.TempDir(), t.TempDir())
	protection := policies + standIns + example("resources/haven_file_server/resource.tf") +
		example("resources/haven_fileset/resource.tf")
	// The recovery point examples need points of haven_fileset.home, whose
	// example backs up the host's /home and /etc: a stand-in over a
	// scratch directory takes its place.
	homeDir := t.TempDir()
	writeSourceTree(t, homeDir)
	homeStandIn := policies + standIns + example("resources/haven_file_server/resource.tf") + fmt.Sprintf(`
resource "haven_fileset" "home" {
  name           = "home"
  file_server_id = haven_file_server.this_host.id
  include_paths  = [%q]
  policy_id      = haven_backup_policy.gold.id
  storage_id     = haven_storage.local.id
}
`, homeDir)
	// The vCenter examples name vCenters that do not exist: the resource
	// example is only planned, and the data source examples read from a
	// stand-in haven_vcenter.prod registered with the simulator.
	vc := testparts.VCSim(t)
	vcCA, err := os.ReadFile(vc.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	// The AWS target examples name accounts that do not exist: the
	// resource example is only planned, and the data source example reads
	// a stand-in of the same name registered with moto.
	awsTargetStandIn := fmt.Sprintf(`
resource "haven_aws_target" "stand_in" {
  name              = "aws-dr"
  region            = %q
  credentials       = "access_key"
  access_key_id     = %q
  secret_access_key = %q
  endpoint          = %q
}
`, testparts.MotoRegion, testparts.MotoAccessKeyID, testparts.MotoSecretAccessKey, testparts.Moto(t))
	drPlanStandIn := `
resource "haven_dr_plan" "stand_in" {
  name                         = "orders"
  target_id                    = haven_aws_target.stand_in.id
  replication_interval_minutes = 30
  vms                          = [{ protected_vm_id = haven_protected_vm.db.id }]
}
`
	vcenterStandIn := fmt.Sprintf(`
resource "haven_vcenter" "prod" {
  name             = "vcenter-prod"
  url              = %q
  username         = %q
  password         = %q
  password_version = 1
  thumbprint       = %q
}
`, vc.URL, vc.Username, vc.Password, vc.Thumbprint)
	// The recovery point example restores a point of haven_database_set.orders
	// that covers an instant: a stand-in protects a real cluster, through
	// an agent that enrols with the token of a file server made here.
	host := startDatabaseHost(t)
	dbHost, err := srv.Client.FileServers().Create(context.Background(), api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "db-stand-in", Hostname: "db-stand-in", OS: api.OSLinux, Location: api.LocationAgent}})
	if err != nil {
		t.Fatal(err)
	}
	ordersStandIn := fmt.Sprintf(`
resource "haven_database_server" "orders" {
  name           = "orders"
  file_server_id = %q
  host           = %q
  user           = %q
}

resource "haven_database_set" "orders" {
  name               = "orders"
  database_server_id = haven_database_server.orders.id
  policy_id          = haven_backup_policy.sql.id
  storage_id         = haven_storage.local.id
}
`, dbHost.ID, host.cluster.Dir(), pgembed.Superuser)
	var logPointID, incident string
	ordersPoints := func(*terraform.State) error {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- agent.Run(ctx, agent.Config{Server: srv.URL, ActivationToken: dbHost.ActivationToken, StateDir: host.stateDir,
				PollWait: time.Second})
		}()
		t.Cleanup(func() { stop(); <-done })
		set, err := srv.Client.DatabaseSets().Get(ctx, "orders")
		if err != nil {
			return err
		}
		if _, err := backUpKind(srv, set.ID, api.BackupFull); err != nil {
			return err
		}
		host.insert(t, 1, 10)
		incident = host.now(t).UTC().Format(time.RFC3339Nano)
		host.insert(t, 11, 20)
		p, err := backUpKind(srv, set.ID, api.BackupLog)
		if err != nil {
			return err
		}
		logPointID = p.ID
		return nil
	}

	var firstID, secondID, asOf string
	twoPoints := func(*terraform.State) error {
		first, err := backUpNow(srv, "home")
		if err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
		second, err := backUpNow(srv, "home")
		if err != nil {
			return err
		}
		firstID, secondID = first.ID, second.ID
		asOf = first.CompletedAt.Add(second.CompletedAt.Sub(first.CompletedAt) / 2).Format(time.RFC3339Nano)
		return nil
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkObjectsDestroyed(srv),
		Steps: []resource.TestStep{
			{
				Config:          cfg + example("resources/haven_storage/resource.tf"),
				ConfigVariables: config.Variables{"s3_secret_access_key": config.StringVariable("example-secret")},
				// With PlanOnly, the "post-apply" plan is the only plan.
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_storage.local", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_storage.offsite", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_storage.minio", plancheck.ResourceActionCreate),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg + policies,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_backup_policy.sql", at("incremental", "every_hours"), knownvalue.Int64Exact(4)),
				},
			},
			{
				Config: cfg + policies + example("data-sources/haven_backup_policy/data-source.tf") +
					example("data-sources/haven_storage/data-source.tf"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("gold_schedule", knownvalue.StringExact("full on sun at 01:00 (Europe/Paris)")),
					statecheck.ExpectKnownOutputValue("gold_keeps_yearlies_for", knownvalue.Int64Exact(7)),
					statecheck.ExpectKnownOutputValueAtPath("local_storage", at("kind"), knownvalue.StringExact("filesystem")),
				},
			},
			{
				Config: cfg + protection,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_fileset.finance", at("include_paths"),
						stringsExact(`D:\Shares\Finance`, `D:\Shares\Payroll`)),
					statecheck.ExpectKnownValue("haven_fileset.finance", at("group"), knownvalue.StringExact("finance")),
					statecheck.ExpectKnownValue("haven_file_server.nas", at("agent_status"), knownvalue.StringExact("pending")),
				},
				Check: resource.TestCheckNoResourceAttr("haven_file_server.nas", "activation_token"),
			},
			{
				// The ephemeral resource example delivers the token over
				// SSH to a host that does not exist: plan it.
				Config:          cfg + example("ephemeral-resources/haven_file_server_activation/ephemeral-resource.tf"),
				ConfigVariables: config.Variables{"web01_ssh_private_key": config.StringVariable("not-a-key")},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_file_server.web", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("terraform_data.web01_agent", plancheck.ResourceActionCreate),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg + protection + example("data-sources/haven_file_server/data-source.tf") +
					example("data-sources/haven_fileset/data-source.tf"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("nas_agent", at("os"), knownvalue.StringExact("windows")),
					statecheck.ExpectKnownOutputValueAtPath("nas_agent", at("agent_status"), knownvalue.StringExact("pending")),
					statecheck.ExpectKnownOutputValue("finance_paths", stringsExact(`D:\Shares\Finance`, `D:\Shares\Payroll`)),
				},
			},
			{
				// The restore example writes to /srv/restore and to the
				// original locations, which a test must not touch: plan it.
				Config:          cfg + protection + example("resources/haven_restore/resource.tf"),
				ConfigVariables: config.Variables{"point_id": config.StringVariable("0b7c3e9a-2f41-4d8e-b6a5-7c1d9e3f5a20")},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_restore.inspect", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_restore.alice", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_restore.alice", at("wait"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue("haven_restore.inspect", at("conflict"), knownvalue.StringExact("overwrite")),
					plancheck.ExpectResourceAction("haven_restore.orders_before_incident", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_restore.orders_before_incident", at("conflict"), knownvalue.Null()),
					plancheck.ExpectKnownValue("haven_restore.orders_before_incident", at("database", "end_state"), knownvalue.StringExact("recovery")),
					plancheck.ExpectKnownValue("haven_restore.orders_rollback", at("database", "overwrite"), knownvalue.Bool(true)),
					plancheck.ExpectKnownValue("haven_restore.orders_check", at("database", "verify"), knownvalue.Bool(true)),
					plancheck.ExpectKnownValue("haven_restore.orders_check", at("database", "roll_forward"), knownvalue.Bool(false)),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config:          cfg + policies + standIns + example("resources/haven_database_server/resource.tf") + example("resources/haven_database_set/resource.tf"),
				ConfigVariables: config.Variables{"orders_db_password": config.StringVariable("example-db-password")},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_database_server.orders", at("has_password"), knownvalue.Bool(true)),
					statecheck.ExpectKnownValue("haven_database_server.orders", at("password"), knownvalue.Null()),
					statecheck.ExpectKnownValue("haven_database_server.reports", at("has_password"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue("haven_database_server.reports", at("engine"), knownvalue.StringExact("postgresql")),
					statecheck.ExpectKnownValue("haven_database_set.orders", at("verify_restore"), knownvalue.Bool(true)),
				},
				Check: checkSecretNotInState("example-db-password"),
			},
			{
				Config: cfg + policies + standIns + example("resources/haven_database_server/resource.tf") + example("resources/haven_database_set/resource.tf") +
					example("data-sources/haven_database_server/data-source.tf") + example("data-sources/haven_database_set/data-source.tf"),
				ConfigVariables: config.Variables{"orders_db_password": config.StringVariable("example-db-password")},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("orders_server", at("host"), knownvalue.StringExact("localhost")),
					statecheck.ExpectKnownOutputValueAtPath("orders_server", at("has_password"), knownvalue.Bool(true)),
					// No backup has run.
					statecheck.ExpectKnownOutputValueAtPath("orders_server", at("data_dir"), knownvalue.Null()),
					statecheck.ExpectKnownOutputValue("orders_set_verified", knownvalue.Bool(true)),
				},
			},
			{
				Config: cfg + homeStandIn,
				Check:  twoPoints,
			},
			{
				// Added once the database examples are gone, whose server
				// the set would otherwise have to leave in the same apply.
				Config: cfg + homeStandIn + ordersStandIn,
				Check:  ordersPoints,
			},
			{
				// The data sources are read during the plan, which is all
				// that runs: the restores would write to /srv/restore and
				// /var/lib/postgresql.
				Config: cfg + homeStandIn + ordersStandIn + example("data-sources/haven_recovery_point/data-source.tf") +
					example("data-sources/haven_recovery_points/data-source.tf"),
				ConfigVariables: config.Variables{"restore_as_of": lazyString{&asOf}, "incident_time": lazyString{&incident}},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_restore.orders_at_incident", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_restore.orders_at_incident", at("point_id"), lazyCheck("the log point's id", func(v any) error {
						if v != logPointID {
							return fmt.Errorf("restores point %v, want the log point that covers the incident, %s", v, logPointID)
						}
						return nil
					})),
					plancheck.ExpectKnownValue("haven_restore.orders_at_incident", at("conflict"), knownvalue.Null()),
					plancheck.ExpectResourceAction("haven_restore.home_as_of", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_restore.home_as_of", at("point_id"), lazyCheck("the first point's id", func(v any) error {
						if v != firstID {
							return fmt.Errorf("restores point %v, want the first one, %s", v, firstID)
						}
						return nil
					})),
					plancheck.ExpectKnownOutputValue("home_latest_backup", knownvalue.StringRegexp(
						regexp.MustCompile(`^incremental backup completed at \d{4}-\d\d-\d\dT[0-9:.]+Z$`))),
					plancheck.ExpectKnownOutputValue("home_recent", lazyCheck("the two points, newest first", func(v any) error {
						l, ok := v.([]any)
						if !ok || len(l) != 2 || !strings.HasSuffix(fmt.Sprint(l[0]), " incremental "+secondID) ||
							!strings.HasSuffix(fmt.Sprint(l[1]), " full "+firstID) {
							return fmt.Errorf("home_recent = %v, want the points %s then %s", v, secondID, firstID)
						}
						return nil
					})),
					plancheck.ExpectKnownOutputValue("cold_point_count", knownvalue.Int64Exact(0)),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg + example("resources/haven_vcenter/resource.tf"),
				ConfigVariables: config.Variables{
					"vcenter_password":  config.StringVariable("example-password"),
					"vcenter_dr_ca_pem": config.StringVariable(string(vcCA)),
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_vcenter.prod", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_vcenter.dr", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_vcenter.dr", at("ca_pem"), knownvalue.StringExact(string(vcCA))),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config:          cfg + example("resources/haven_aws_target/resource.tf"),
				ConfigVariables: config.Variables{"aws_secret_access_key": config.StringVariable("example-secret")},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_aws_target.ambient", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_aws_target.recovery_account", plancheck.ResourceActionCreate),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg + awsTargetStandIn,
			},
			{
				Config: cfg + awsTargetStandIn + example("data-sources/haven_aws_target/data-source.tf"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("dr_target", at("status"), knownvalue.StringExact("connected")),
					statecheck.ExpectKnownOutputValueAtPath("dr_target", at("region"), knownvalue.StringExact(testparts.MotoRegion)),
					statecheck.ExpectKnownOutputValueAtPath("dr_target", at("account_id"), knownvalue.StringRegexp(accountID)),
				},
			},
			{
				Config: cfg + vcenterStandIn + example("data-sources/haven_vm/data-source.tf") +
					example("data-sources/haven_vms/data-source.tf"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("app_vm", at("folder"), knownvalue.StringExact("/DC0/vm/prod")),
					statecheck.ExpectKnownOutputValueAtPath("app_vm", at("instance_uuid"), knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f-]{36}$`))),
					// The simulator has no /DC1 datacenter: an empty list, not an error.
					statecheck.ExpectKnownOutputValue("prod_vm_names", knownvalue.ListExact([]knownvalue.Check{})),
				},
			},
			{
				// The data source examples of the VM protections read
				// what the resource examples declare, in the simulator.
				Config: cfg + vcenterStandIn + policies + standIns + example("resources/haven_protected_vm/resource.tf") +
					example("resources/haven_vm_protection_rule/resource.tf") + example("data-sources/haven_vcenter/data-source.tf"),
				ConfigVariables: config.Variables{"db_guest_password": config.StringVariable("example-guest-password")},
			},
			{
				Config: cfg + vcenterStandIn + policies + standIns + example("resources/haven_protected_vm/resource.tf") +
					example("resources/haven_vm_protection_rule/resource.tf") + example("data-sources/haven_vcenter/data-source.tf") +
					example("data-sources/haven_protected_vm/data-source.tf") + example("data-sources/haven_vm_protection_rule/data-source.tf"),
				ConfigVariables: config.Variables{"db_guest_password": config.StringVariable("example-guest-password")},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("prod_vcenter", at("status"), knownvalue.StringExact("connected")),
					statecheck.ExpectKnownOutputValueAtPath("db_protection", at("status"), knownvalue.StringExact("active")),
					statecheck.ExpectKnownOutputValueAtPath("db_protection", at("rule_id"), knownvalue.Null()),
					statecheck.ExpectKnownOutputValueAtPath("db_protection", at("recent_point"), knownvalue.ListExact([]knownvalue.Check{})),
					// No VM of the simulator is in /DC1/vm/prod.
					statecheck.ExpectKnownOutputValue("prod_rule_selects", knownvalue.Int64Exact(0)),
				},
			},
			{
				// The DR plan example names the AWS target example's
				// accounts, which do not exist: it is only planned, over
				// the protected VM example applied above, with the DR test,
				// failover and failback examples over it.
				Config: cfg + vcenterStandIn + policies + standIns + example("resources/haven_protected_vm/resource.tf") +
					example("resources/haven_vm_protection_rule/resource.tf") + example("data-sources/haven_vcenter/data-source.tf") +
					example("resources/haven_aws_target/resource.tf") + example("resources/haven_dr_plan/resource.tf") +
					example("resources/haven_dr_test/resource.tf") + example("resources/haven_dr_failover/resource.tf") +
					example("resources/haven_dr_failback/resource.tf"),
				ConfigVariables: config.Variables{"db_guest_password": config.StringVariable("example-guest-password"),
					"aws_secret_access_key": config.StringVariable("example-secret")},
				ConfigPlanChecks: resource.ConfigPlanChecks{PostApplyPreRefresh: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_dr_plan.orders", plancheck.ResourceActionCreate),
					plancheck.ExpectResourceAction("haven_dr_test.orders_drill", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_dr_test.orders_drill", at("keep_minutes"), knownvalue.Int64Exact(0)),
					plancheck.ExpectKnownValue("haven_dr_test.orders_inspect", at("keep_minutes"), knownvalue.Int64Exact(120)),
					plancheck.ExpectKnownValue("haven_dr_test.orders_inspect", at("points", "db-01"), knownvalue.NotNull()),
					plancheck.ExpectResourceAction("haven_dr_failover.orders", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_dr_failover.orders", at("terminate_on_destroy"), knownvalue.Bool(true)),
					plancheck.ExpectResourceAction("haven_dr_failback.orders", plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue("haven_dr_failback.orders", at("final"), knownvalue.Bool(false)),
					plancheck.ExpectKnownValue("haven_dr_failback.orders", at("names", "app"), knownvalue.StringExact("orders-app")),
				}},
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				// The data source example reads a stand-in plan of the
				// same name on moto's target.
				Config: cfg + vcenterStandIn + policies + standIns + example("resources/haven_protected_vm/resource.tf") +
					example("resources/haven_vm_protection_rule/resource.tf") + example("data-sources/haven_vcenter/data-source.tf") +
					awsTargetStandIn + drPlanStandIn,
				ConfigVariables: config.Variables{"db_guest_password": config.StringVariable("example-guest-password")},
			},
			{
				Config: cfg + vcenterStandIn + policies + standIns + example("resources/haven_protected_vm/resource.tf") +
					example("resources/haven_vm_protection_rule/resource.tf") + example("data-sources/haven_vcenter/data-source.tf") +
					awsTargetStandIn + drPlanStandIn + example("data-sources/haven_dr_plan/data-source.tf"),
				ConfigVariables: config.Variables{"db_guest_password": config.StringVariable("example-guest-password")},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValueAtPath("orders_dr", at("late_vms"), knownvalue.ListExact([]knownvalue.Check{})),
					statecheck.ExpectKnownOutputValueAtPath("orders_dr", at("last_replication"), knownvalue.Null()),
				},
			},
		},
	})
}

// lazyCheck is a knownvalue.Check whose expectation is only known once
// earlier steps have run.
func lazyCheck(desc string, check func(any) error) knownvalue.Check {
	return lazyValueCheck{desc, check}
}

type lazyValueCheck struct {
	desc  string
	check func(any) error
}

func (c lazyValueCheck) CheckValue(v any) error { return c.check(v) }
func (c lazyValueCheck) String() string         { return c.desc }
