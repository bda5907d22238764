package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// lazyString is a Terraform variable whose value is read when the step's
// configuration is written, so a step can use what an earlier step made
// outside Terraform (here, a recovery point).
type lazyString struct{ p *string }

func (v lazyString) MarshalJSON() ([]byte, error) { return json.Marshal(*v.p) }

// writeSourceTree fills dir with files of varied sizes and content, some in
// a subdirectory, and returns their contents by path relative to dir.
func writeSourceTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	files := map[string][]byte{
		"readme.txt":         []byte("Haven restore test\n"),
		"empty.dat":          {},
		"sub/notes.md":       bytes.Repeat([]byte("a line of notes\n"), 500),
		"sub/deeper/big.bin": make([]byte, 3<<20+12345),
		"sub/random.bin":     make([]byte, 200_000),
	}
	for _, name := range []string{"sub/deeper/big.bin", "sub/random.bin"} {
		for i := range files[name] {
			files[name][i] = byte(rng.Uint32())
		}
	}
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// checkRestoredTree compares what a restore wrote below target with the
// source files: a restore to target_path recreates each backed-up absolute
// path below it. want filters which source files must be there; the others
// must not.
func checkRestoredTree(target, src string, files map[string][]byte, want func(rel string) bool) resource.TestCheckFunc {
	return func(*terraform.State) error {
		for rel, data := range files {
			p := filepath.Join(target, src, rel)
			got, err := os.ReadFile(p)
			if !want(rel) {
				if err == nil {
					return fmt.Errorf("%s was restored but should not have been", p)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("restored file: %w", err)
			}
			if !bytes.Equal(got, data) {
				return fmt.Errorf("%s: restored %d bytes differ from the %d bytes backed up", p, len(got), len(data))
			}
		}
		return nil
	}
}

func restoreConfig(label, extra string) string {
	return fmt.Sprintf(`
resource "haven_restore" %q {
  point_id = var.point_id
%s
}
`, label, extra)
}

// TestAccRestoreResource_endToEnd protects a directory with Terraform,
// backs it up outside Terraform, and restores the point with haven_restore:
// the restored bytes must be the backed-up ones, failures must name their
// cause, and destroying the restores must leave the restored files alone.
func TestAccRestoreResource_endToEnd(t *testing.T) {
	srv := startParallel(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := writeSourceTree(t, src)
	var wantBytes int64
	for _, data := range files {
		wantBytes += int64(len(data))
	}
	inSub := func(rel string) bool { return strings.HasPrefix(rel, "sub/") }
	var subFiles int
	for rel := range files {
		if inSub(rel) {
			subFiles++
		}
	}

	fullTarget, partTarget, failTarget := filepath.Join(dir, "full"), filepath.Join(dir, "part"), filepath.Join(dir, "blocked")
	// A regular file where the restore must create the first directory of
	// the backed-up path: every entry fails, so the job does.
	if err := os.MkdirAll(failTarget, 0o755); err != nil {
		t.Fatal(err)
	}
	top := strings.SplitN(strings.TrimPrefix(src, "/"), "/", 2)[0]
	if err := os.WriteFile(filepath.Join(failTarget, top), []byte("in the way"), 0o644); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(dir, "not-a-directory")
	if err := os.WriteFile(notADir, []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}

	base := providerConfig(srv) + protectionConfig(filepath.Join(dir, "store")) +
		filesetConfig("docs", []string{src}, "")
	var pointID string
	withPoint := base + `
variable "point_id" {
  type = string
}
`
	vars := config.Variables{"point_id": lazyString{&pointID}}
	full := restoreConfig("full", fmt.Sprintf("  target_path = %q", fullTarget))
	partial := func(conflict string, wait bool) string {
		return restoreConfig("partial", fmt.Sprintf(`  target_file_server_id = haven_file_server.local.id
  target_path           = %q
  paths                 = [%q]
  conflict              = %q
  wait                  = %t
  timeouts {
    create = "5m"
  }`, partTarget, filepath.Join(src, "sub"), conflict, wait))
	}
	// A file server whose agent never comes online; it allows restores
	// under agent-target.
	agentServer := fmt.Sprintf(`
resource "haven_file_server" "agent" {
  name          = "remote"
  hostname      = "remote.example.com"
  os            = "linux"
  location      = "agent"
  restore_roots = [%q]
}
`, filepath.Join(dir, "agent-target"))
	const fullAddr, partAddr = "haven_restore.full", "haven_restore.partial"
	partIDs := statecheck.CompareValue(compare.ValuesDiffer())
	samePartID := statecheck.CompareValue(compare.ValuesSame())

	backUp := func(*terraform.State) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		set, err := srv.Client.Filesets().Get(ctx, "docs")
		if err != nil {
			return err
		}
		j, err := srv.Client.BackupNow(ctx, set.ID)
		if err != nil {
			return fmt.Errorf("backup now: %w", err)
		}
		if j, err = srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil {
			return fmt.Errorf("waiting for backup job: %w", err)
		}
		if j.State != api.JobSucceeded || j.PointID == "" {
			return fmt.Errorf("backup job ended %s without a point: %s", j.State, j.Error)
		}
		pointID = j.PointID
		return nil
	}

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy: resource.ComposeAggregateTestCheckFunc(
			checkObjectsDestroyed(srv),
			// Destroying a restore forgets it; the files are the user's.
			checkRestoredTree(fullTarget, src, files, func(string) bool { return true }),
			checkRestoredTree(partTarget, src, files, inSub),
		),
		Steps: []resource.TestStep{
			{
				Config: base,
				Check:  backUp,
			},
			{
				Config:          withPoint + full,
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(fullAddr, plancheck.ResourceActionCreate),
					plancheck.ExpectKnownValue(fullAddr, tfjsonpath.New("conflict"), knownvalue.StringExact("overwrite")),
					plancheck.ExpectKnownValue(fullAddr, tfjsonpath.New("wait"), knownvalue.Bool(true)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(fullAddr, tfjsonpath.New("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue(fullAddr, tfjsonpath.New("files_restored"), knownvalue.Int64Exact(int64(len(files)))),
					statecheck.ExpectKnownValue(fullAddr, tfjsonpath.New("bytes_restored"), knownvalue.Int64Exact(wantBytes)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkRestoredTree(fullTarget, src, files, func(string) bool { return true }),
					resource.TestCheckResourceAttrPtr(fullAddr, "point_id", &pointID),
					checkRestoreJob(srv, fullAddr, func(j *api.Job) error {
						if j.Kind != api.JobRestore || j.PointID != pointID || j.State != api.JobSucceeded {
							return fmt.Errorf("job is a %s of point %s in state %s", j.Kind, j.PointID, j.State)
						}
						return nil
					}),
				),
			},
			{
				// Only part of the point, to the same file server named
				// explicitly.
				Config:          withPoint + full + partial("skip", true),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(fullAddr, plancheck.ResourceActionNoop),
					plancheck.ExpectResourceAction(partAddr, plancheck.ResourceActionCreate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					partIDs.AddStateValue(partAddr, tfjsonpath.New("id")),
					samePartID.AddStateValue(partAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(partAddr, tfjsonpath.New("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue(partAddr, tfjsonpath.New("files_restored"), knownvalue.Int64Exact(int64(subFiles))),
				},
				Check: checkRestoredTree(partTarget, src, files, inSub),
			},
			{
				// How Terraform waits is no reason to restore again.
				Config:          withPoint + full + partial("skip", false),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(partAddr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(partAddr, tfjsonpath.New("state"), knownvalue.StringExact(api.JobSucceeded)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					samePartID.AddStateValue(partAddr, tfjsonpath.New("id")),
				},
			},
			{
				// A restore is an event: a new conflict policy is a new
				// restore. Without waiting, the job may still be going.
				Config:          withPoint + full + partial("rename", false),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(partAddr, plancheck.ResourceActionReplace),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					partIDs.AddStateValue(partAddr, tfjsonpath.New("id")),
					statecheck.ExpectKnownValue(partAddr, tfjsonpath.New("state"),
						knownvalue.StringRegexp(regexpOf(api.JobQueued, api.JobRunning, api.JobSucceeded))),
				},
				Check: checkRestoreJob(srv, partAddr, func(j *api.Job) error {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					j, err := srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond)
					if err != nil || j.State != api.JobSucceeded {
						return fmt.Errorf("unwaited restore: %v (%+v)", err, j)
					}
					return nil
				}),
			},
			{
				// The server refuses a target that is a file before any
				// byte moves, and the diagnostic points at target_path.
				Config: withPoint + full + partial("rename", false) +
					restoreConfig("bad", fmt.Sprintf("  target_path = %q", notADir)),
				ConfigVariables: vars,
				ExpectError: errorLike("Could not start restore of recovery point", `target_path = "`+notADir+`"`,
					"target_path: "+notADir+" exists and is not a directory"),
			},
			{
				// A file point cannot be restored as a database.
				Config: withPoint + full + partial("rename", false) +
					restoreConfig("as_database", "  database {\n    data_dir = \"/var/lib/postgresql/never\"\n  }"),
				ConfigVariables: vars,
				ExpectError:     errorLike("Could not start restore of recovery point", "database: the point is a file point, not a database point"),
			},
			{
				// A job that fails reports its error and first warnings.
				Config: withPoint + full + partial("rename", false) +
					restoreConfig("blocked", fmt.Sprintf("  target_path = %q", failTarget)),
				ConfigVariables: vars,
				ExpectError: errorLike("Restore job", "failed", "ended failed: restore incomplete",
					"Warnings:", top+":", "and", "more: `haven jobs show"),
			},
			{
				// The failed restore was recorded, tainted: applying again
				// would restore again; leaving it out forgets it.
				Config:          withPoint + full + partial("rename", false) + agentServer,
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_restore.blocked", plancheck.ResourceActionDestroy),
				}},
			},
			{
				// No agent ever comes online to take this restore, so the
				// wait runs out; the job goes on waiting on the server.
				Config: withPoint + full + partial("rename", false) + agentServer + restoreConfig("waiting", fmt.Sprintf(`
  target_file_server_id = haven_file_server.agent.id
  target_path           = %q
  timeouts {
    create = "2s"
  }`, filepath.Join(dir, "agent-target"))),
				ConfigVariables: vars,
				ExpectError: errorLike("Timed out waiting for restore job", "after 2s", "It keeps running",
					"haven jobs cancel", "Raise timeouts.create"),
			},
			{
				// Forgetting the restore leaves its job alone.
				Config:          withPoint + full + partial("rename", false) + agentServer,
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_restore.waiting", plancheck.ResourceActionDestroy),
				}},
				Check: func(*terraform.State) error {
					ctx := context.Background()
					jobs, err := srv.Client.ListJobs(ctx, api.JobFilter{Kind: api.JobRestore}, "", 100)
					if err != nil {
						return err
					}
					var waiting []api.Job
					for _, j := range jobs.Items {
						if !j.Finished() {
							waiting = append(waiting, j)
						}
					}
					if len(waiting) != 1 {
						return fmt.Errorf("%d restore jobs are unfinished, want the one to the agent: %+v", len(waiting), waiting)
					}
					// Done with it: a job that waits forever would only
					// slow the server's shutdown.
					if _, err := srv.Client.CancelJob(ctx, waiting[0].ID); err != nil {
						return fmt.Errorf("canceling the waiting job: %w", err)
					}
					return nil
				},
			},
		},
	})
}

// checkRestoreJob hands the job behind a haven_restore to check.
func checkRestoreJob(srv *servertest.Server, addr string, check func(*api.Job) error) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs := s.RootModule().Resources[addr]
		if rs == nil {
			return fmt.Errorf("%s is not in the state", addr)
		}
		j, err := srv.Client.GetJob(context.Background(), rs.Primary.ID)
		if err != nil {
			return fmt.Errorf("job of %s: %w", addr, err)
		}
		return check(j)
	}
}

func TestAccRestoreResource_invalid(t *testing.T) {
	const id = "6f1c2b0e-6c1a-4d0e-9a57-3f4b8c1d2e9a"
	step := func(body string, want ...string) resource.TestStep {
		return resource.TestStep{
			Config:      offlineProviderConfig + "resource \"haven_restore\" \"test\" {\n" + body + "\n}\n",
			ExpectError: errorLike(want...),
		}
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			step(`point_id = "latest"`, "Attribute point_id must be the id of a recovery point"),
			step(`point_id    = "`+id+`"
target_path = "restore/here"`, "Attribute target_path must be an absolute path"),
			step(`point_id = "`+id+`"
paths    = ["srv/share"]`, "Attribute paths[0] must be an absolute path"),
			step(`point_id = "`+id+`"
paths    = []`, "Attribute paths list must contain at least 1 elements"),
			step(`point_id = "`+id+`"
conflict = "merge"`, "Attribute conflict value must be one of"),
			step(`point_id              = "`+id+`"
target_file_server_id = "nas"`, "Attribute target_file_server_id must be the id of a file server"),
			step(`point_id = "`+id+`"
timeouts {
  create = "soon"
}`, "Invalid Attribute Value Time Duration", `create = "soon"`),
			step(`point_id    = "`+id+`"
target_path = "/restore"
vm {
  name = "copy"
}`, `Attribute "target_path" cannot be specified when "vm" is specified`),
			step(`point_id = "`+id+`"
vm {
  folder = "/DC0/vm"
}`, "Missing vm.name", "Attribute vm.name is required for a restore as a new VM"),
			step(`point_id = "`+id+`"
vm {
  name = "web/01"
}`, "Attribute vm.name must be at most 80 characters without /"),
			step(`point_id = "`+id+`"
vm {
  name   = "copy"
  folder = "DC0/vm"
}`, "Attribute vm.folder must be an inventory path such as /DC0/vm/restored"),
			step(`point_id = "`+id+`"
vm {
  mode = "clone"
}`, "Attribute vm.mode value must be one of"),
			step(`point_id = "`+id+`"
vm {
  mode = "original"
}`, "Missing vm.overwrite", "Attribute vm.overwrite must be true to restore over the original VM"),
			step(`point_id = "`+id+`"
vm {
  mode      = "original"
  overwrite = true
  name      = "copy"
  power_on  = true
}`, "Argument not used by this VM restore mode", "Attribute vm.name applies to mode new_vm only"),
			step(`point_id = "`+id+`"
vm {
  mode = "disk"
}`, "Attribute vm.disk_key is required for a single-disk restore"),
			step(`point_id = "`+id+`"
vm {
  mode                 = "disk"
  disk_key             = 2000
  target_instance_uuid = "app-01"
}`, "Attribute vm.target_instance_uuid must be the instance UUID of the VM that gets the disk"),
			step(`point_id    = "`+id+`"
target_path = "/restore"
database {
  data_dir = "/var/lib/postgresql/restored"
}`, `Attribute "target_path" cannot be specified when "database" is specified`),
			step(`point_id = "`+id+`"
vm {
  name = "copy"
}
database {}`, `Attribute "vm" cannot be specified when "database" is specified`),
			step(`point_id = "`+id+`"
conflict = "skip"
database {}`, `Attribute "conflict" cannot be specified when "database" is specified`),
			step(`point_id = "`+id+`"
database {
  data_dir = "pgdata"
}`, `Attribute database.data_dir must be a clean absolute path, got "pgdata"`),
			step(`point_id = "`+id+`"
database {
  point_in_time = "yesterday"
}`, "Attribute database.point_in_time must be an RFC 3339 time"),
			step(`point_id = "`+id+`"
database {
  lsn = "16B3740"
}`, `Attribute database.lsn must be an LSN like 0/16B3740, got "16B3740"`),
			step(`point_id = "`+id+`"
database {
  xid = "latest"
}`, `Attribute database.xid must be a transaction id (a number), got "latest"`),
			step(`point_id = "`+id+`"
database {
  restore_point = "`+strings.Repeat("x", 64)+`"
}`, "Attribute database.restore_point is at most 63 bytes long (PostgreSQL's limit), got 64"),
			step(`point_id = "`+id+`"
database {
  end_state = "open"
}`, "Attribute database.end_state value must be one of"),
			step(`point_id = "`+id+`"
database {
  port = 0
}`, "Attribute database.port value must be between 1 and 65535, got: 0"),
			step(`point_id = "`+id+`"
database {
  target_database_server_id = "orders"
}`, "Attribute database.target_database_server_id must be the id of a database server"),
			step(`point_id = "`+id+`"
database {
  point_in_time = "2026-03-01T17:59:00Z"
  restore_point = "before_migration"
}`, "Conflicting recovery targets", "Attribute database.restore_point cannot be given with database.point_in_time",
				"name at most one of point_in_time, restore_point, lsn, xid"),
			step(`point_id = "`+id+`"
database {
  verify   = true
  data_dir = "/var/lib/postgresql/check"
}`, "Attribute database.verify a verification restores into a scratch cluster of its own",
				"it takes no data_dir, port, target, end_state or overwrite"),
			step(`point_id = "`+id+`"
database {
  verify    = true
  end_state = "standby"
}`, "Attribute database.verify a verification restores into a scratch cluster of its own"),
			step(`point_id = "`+id+`"
database {
  roll_forward = true
  lsn          = "0/3000000"
}`, "Attribute database.roll_forward rolls a standby or no_recovery restore forward: it needs its data_dir"),
		},
	})
}

// regexpOf matches exactly one of the given words.
func regexpOf(words ...string) *regexp.Regexp {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = regexp.QuoteMeta(w)
	}
	return regexp.MustCompile(`^(` + strings.Join(quoted, "|") + `)$`)
}

// backUpVM protects the simulator's app-01 through the API (storage,
// policy, vCenter, protected VM) and backs it up once. It returns the
// vCenter, the point and the bytes of app-01's disk in that point; the
// live disk is changed afterwards, so that only a restore from the point
// can bring those bytes back.
func backUpVM(t *testing.T, srv *servertest.Server, vc *testparts.VCSimEnv) (*api.VCenter, string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: "vms", Kind: api.StorageFilesystem, Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "vm-daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	center, err := srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim", URL: vc.URL,
		Username: vc.Username, Password: vc.Password, Thumbprint: vc.Thumbprint}})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := srv.Client.VMs(ctx, center.ID, api.VMFilter{Name: "app-01"})
	if err != nil || len(vms) != 1 {
		t.Fatalf("app-01 in the simulator: %v %+v", err, vms)
	}
	vc.WriteDisk(t, "app-01", 0, 1<<20, bytes.Repeat([]byte("backed up"), 10_000))
	want := vc.DiskBytes(t, "app-01", 0)
	pv, err := srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: api.ProtectedVMSpec{
		VCenterID: center.ID, InstanceUUID: vms[0].InstanceUUID, PolicyID: pol.ID, StorageID: st.ID}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := srv.Client.BackupNow(ctx, pv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil || j.State != api.JobSucceeded || j.PointID == "" {
		t.Fatalf("backup of app-01: %v %+v", err, j)
	}
	vc.WriteDisk(t, "app-01", 0, 1<<20, bytes.Repeat([]byte("changed!!"), 10_000))
	return center, j.PointID, want
}

// checkRestoredVM checks that the simulator has the VM a haven_restore
// reports, in folder, and that its disk holds want.
func checkRestoredVM(srv *servertest.Server, vc *testparts.VCSimEnv, vcenterID, addr, name, folder string, want []byte) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ctx := context.Background()
		rs := s.RootModule().Resources[addr]
		if rs == nil {
			return fmt.Errorf("%s is not in the state", addr)
		}
		vms, err := srv.Client.VMs(ctx, vcenterID, api.VMFilter{Name: name})
		if err != nil || len(vms) != 1 {
			return fmt.Errorf("VM %s in the simulator: %v (%d found)", name, err, len(vms))
		}
		got := vms[0]
		if got.Folder != folder || got.InstanceUUID != rs.Primary.Attributes["restored_vm_instance_uuid"] ||
			got.MoRef != rs.Primary.Attributes["restored_vm_moref"] {
			return fmt.Errorf("the simulator has %s in %s as %s (%s); %s reports %s (%s), in %s", name, got.Folder,
				got.InstanceUUID, got.MoRef, addr, rs.Primary.Attributes["restored_vm_instance_uuid"],
				rs.Primary.Attributes["restored_vm_moref"], folder)
		}
		disk, err := vc.Lab.DiskBytes(ctx, name, 0)
		if err != nil {
			return fmt.Errorf("disk of %s: %w", name, err)
		}
		if !bytes.Equal(disk, want) {
			return fmt.Errorf("the disk of %s (%d bytes) differs from app-01's backed-up disk (%d bytes)", name, len(disk), len(want))
		}
		return nil
	}
}

// TestAccRestoreResource_vm backs up a VM of the simulator through the API
// and restores the point with haven_restore as a new VM: the new VM must be
// in the inventory with the backed-up disk, its identity in the state, and
// server refusals must point at the argument at fault.
func TestAccRestoreResource_vm(t *testing.T) {
	srv := startParallel(t)
	vc := testparts.VCSim(t)
	center, pointID, want := backUpVM(t, srv, vc)
	const addr, restored = "haven_restore.app", "app-01-restored"

	base := providerConfig(srv) + `
variable "point_id" {
  type = string
}
`
	vars := config.Variables{"point_id": config.StringVariable(pointID)}
	vmRestore := func(label, name string, wait bool) string {
		return restoreConfig(label, fmt.Sprintf(`  wait = %t
  vm {
    name   = %q
    folder = "/DC0/vm"
  }`, wait, name))
	}
	restoredIDs := statecheck.CompareValue(compare.ValuesSame())

	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config:          base + vmRestore("app", restored, true),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(addr, plancheck.ResourceActionCreate),
						plancheck.ExpectKnownValue(addr, tfjsonpath.New("vm").AtMapKey("mode"), knownvalue.StringExact(api.VMRestoreNew)),
						plancheck.ExpectKnownValue(addr, tfjsonpath.New("vm").AtMapKey("power_on"), knownvalue.Bool(false)),
						plancheck.ExpectKnownValue(addr, tfjsonpath.New("conflict"), knownvalue.Null()),
						plancheck.ExpectUnknownValue(addr, tfjsonpath.New("restored_vm_name")),
					},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					restoredIDs.AddStateValue(addr, tfjsonpath.New("restored_vm_instance_uuid")),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("restored_vm_name"), knownvalue.StringExact(restored)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("restored_vm_instance_uuid"),
						knownvalue.StringRegexp(regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("restored_vm_moref"), knownvalue.StringRegexp(regexp.MustCompile(`^vm-\d+$`))),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("files_restored"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue(addr, tfjsonpath.New("bytes_restored"), knownvalue.Int64Exact(int64(len(want)))),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkRestoredVM(srv, vc, center.ID, addr, restored, "/DC0/vm", want),
					checkRestoreJob(srv, addr, func(j *api.Job) error {
						if j.PointID != pointID || j.Result["vm_name"] != restored {
							return fmt.Errorf("job restored point %s as %q", j.PointID, j.Result["vm_name"])
						}
						return nil
					}),
				),
			},
			{
				// How Terraform waits changes nothing that was restored.
				Config:          base + vmRestore("app", restored, false),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(addr, plancheck.ResourceActionUpdate),
					plancheck.ExpectKnownValue(addr, tfjsonpath.New("restored_vm_name"), knownvalue.StringExact(restored)),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					restoredIDs.AddStateValue(addr, tfjsonpath.New("restored_vm_instance_uuid")),
				},
			},
			{
				// Not waiting: the job may still be going, and what it made
				// is only known to later refreshes.
				Config:          base + vmRestore("app", restored, false) + vmRestore("later", "app-01-later", false),
				ConfigVariables: vars,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_restore.later", tfjsonpath.New("state"),
						knownvalue.StringRegexp(regexpOf(api.JobQueued, api.JobRunning, api.JobSucceeded))),
				},
				Check: checkRestoreJob(srv, "haven_restore.later", func(j *api.Job) error {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					if j, err := srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil || j.State != api.JobSucceeded {
						return fmt.Errorf("unwaited VM restore: %v (%+v)", err, j)
					}
					return nil
				}),
			},
			{
				Config:          base + vmRestore("app", restored, false) + vmRestore("later", "app-01-later", false),
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("haven_restore.later", plancheck.ResourceActionNoop),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("haven_restore.later", tfjsonpath.New("state"), knownvalue.StringExact(api.JobSucceeded)),
					statecheck.ExpectKnownValue("haven_restore.later", tfjsonpath.New("restored_vm_name"), knownvalue.StringExact("app-01-later")),
				},
				Check: checkRestoredVM(srv, vc, center.ID, "haven_restore.later", "app-01-later", "/DC0/vm", want),
			},
			{
				// The name is taken now, by the VM the first restore made.
				Config:          base + vmRestore("app", restored, false) + vmRestore("later", "app-01-later", false) + vmRestore("again", restored, true),
				ConfigVariables: vars,
				ExpectError: errorLike("Could not start restore of recovery point", `name = "`+restored+`"`,
					"vm.name: vsphere: already exists", `named "`+restored+`"`),
			},
			{
				// A VM point cannot be restored as files.
				Config: base + vmRestore("app", restored, false) + vmRestore("later", "app-01-later", false) +
					restoreConfig("files", `  target_path = "/tmp/never"`),
				ConfigVariables: vars,
				ExpectError:     errorLike("Could not start restore of recovery point", "vm: the point is a VM point"),
			},
		},
	})
	// Destroying the resource forgot the restore; the VM is the user's.
	if vms, err := srv.Client.VMs(context.Background(), center.ID, api.VMFilter{Name: restored}); err != nil || len(vms) != 1 {
		t.Errorf("after destroy, %s should still be in the simulator: %v %+v", restored, err, vms)
	}
}
