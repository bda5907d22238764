package server_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// snapshotCount counts every snapshot of a VM, Haven's or not.
func (f *vmFixture) snapshotCount(name string) int {
	f.t.Helper()
	for _, o := range f.sim.Model.Map().All("VirtualMachine") {
		vm := o.(*simulator.VirtualMachine)
		if vm.Name != name {
			continue
		}
		if vm.Snapshot == nil {
			return 0
		}
		n := 0
		var walk func([]types.VirtualMachineSnapshotTree)
		walk = func(ts []types.VirtualMachineSnapshotTree) {
			for _, s := range ts {
				n++
				walk(s.ChildSnapshotList)
			}
		}
		walk(vm.Snapshot.RootSnapshotList)
		return n
	}
	f.t.Fatalf("no VM %s", name)
	return 0
}

func withGuest(s *api.ProtectedVMSpec) {
	s.GuestUsername, s.GuestPassword = vcsimlab.DefaultGuestUser, vcsimlab.DefaultGuestPassword
}

// TestPreFreezeFailureTakesNoSnapshot: a pre-freeze script that exits
// non-zero stops the backup before the snapshot, and the job carries the
// script's output.
func TestPreFreezeFailureTakesNoSnapshot(t *testing.T) {
	f := newVMFixture(t, func(p *api.PolicySpec) {
		p.PreFreezeScript = "echo \"flushing orders db ($1)\"\necho 'cannot lock tables' >&2\nexit 3\n"
		p.PostThawScript = "echo never\n"
	})
	f.setPower("app-01", true)
	pv := f.protect("app-01", withGuest)
	j := f.backup(pv)
	if j.State != api.JobFailed {
		t.Fatalf("the backup should fail: %+v", j)
	}
	for _, want := range []string{"exited with 3", "flushing orders db (freeze)", "cannot lock tables", "no snapshot was taken"} {
		if !strings.Contains(j.Error, want) {
			t.Errorf("job error lacks %q: %q", want, j.Error)
		}
	}
	if s := f.snapshots(); len(s) != 0 {
		t.Fatalf("a snapshot exists after a failed pre-freeze: %+v", s)
	}
	if n := f.snapshotCount("app-01"); n != 0 {
		t.Fatalf("the VM has %d snapshots; a failed pre-freeze must take none", n)
	}
}

// TestPostThawGetsThawAndWarns: scripts run around the snapshot, the
// post-thaw one with "thaw"; its failure is a warning, not a failed backup.
func TestPostThawGetsThawAndWarns(t *testing.T) {
	f := newVMFixture(t, func(p *api.PolicySpec) {
		p.PreFreezeScript = "echo frozen\n"
		p.PostThawScript = "echo \"post-thaw got $1\"\nexit 1\n"
	})
	f.setPower("app-01", true)
	pv := f.protect("app-01", withGuest)
	j := f.backup(pv)
	if j.State != api.JobSucceeded || !strings.Contains(strings.Join(j.Warnings, "\n"), "post-thaw got thaw") {
		t.Fatalf("backup with scripts: %+v", j)
	}
	if s := f.snapshots(); len(s) != 0 {
		t.Fatalf("snapshot left behind: %+v", s)
	}
	// Wrong guest credentials fail the backup, without the password.
	bad := f.protect("db-01", func(s *api.ProtectedVMSpec) { s.GuestUsername, s.GuestPassword = "root", "Wrong-guess-42" })
	f.setPower("db-01", true)
	j = f.backup(bad)
	if j.State != api.JobFailed || strings.Contains(j.Error, "Wrong-guess-42") || !strings.Contains(j.Error, "pre-freeze") {
		t.Fatalf("backup with a wrong guest password: %+v", j)
	}
}

// TestCrashLeavesSnapshotJanitorRemovesIt: a worker process killed while
// its backup holds a snapshot leaves the snapshot behind; the janitor of
// another server removes it once the dead worker's asset lock is gone.
func TestCrashLeavesSnapshotJanitorRemovesIt(t *testing.T) {
	f := newVMFixture(t, func(p *api.PolicySpec) {
		p.PostThawScript = "sleep 60\n" // the snapshot exists while this runs
	}, func(c *server.Config) { c.Role = server.RoleAPI })
	f.setPower("app-01", true)
	pv := f.protect("app-01", withGuest)

	port := freePort(t)
	worker := exec.Command(os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), childServerEnv+"="+strings.Join([]string{"--listen", "127.0.0.1:" + port,
		"--data-dir", f.srv.DataDir, "--database-url", f.srv.DatabaseURL, "--role", "worker"}, "\x1f"))
	logFile, err := os.Create(filepath.Join(t.TempDir(), "worker.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	worker.Stderr = logFile
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	defer worker.Process.Kill()
	if _, err := f.srv.Client.BackupNow(context.Background(), pv.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(f.snapshots()) == 0 {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("the worker never took a snapshot; its log:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	worker.Process.Signal(syscall.SIGKILL)
	worker.Wait()
	if s := f.snapshots(); len(s) != 1 {
		t.Fatalf("after the crash: %+v", s)
	}

	janitor := servertest.Run(t, server.Config{Listen: "127.0.0.1:0", DataDir: f.srv.DataDir, DatabaseURL: f.srv.DatabaseURL,
		LogLevel: "info", JanitorEvery: 300 * time.Millisecond})
	deadline = time.Now().Add(60 * time.Second)
	for len(f.snapshots()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the janitor left the orphaned snapshot: %+v\n%s", f.snapshots(), janitor.Logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The janitor logs the removal once the simulator has done it: give
	// the line the moment it takes to be written.
	for !strings.Contains(janitor.Logs(), "removed an orphaned snapshot") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(janitor.Logs(), "removed an orphaned snapshot") {
		t.Fatalf("the janitor did not say what it removed:\n%s", janitor.Logs())
	}
}

// TestWorkerRoleServesNoAPI: a proxy node runs jobs but answers only health
// and metrics; clients and agents use API replicas.
func TestWorkerRoleServesNoAPI(t *testing.T) {
	w := servertest.StartWith(t, func(c *server.Config) { c.Role = server.RoleWorker })
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200, "/v1/storages": 404, "/v1/openapi.json": 404} {
		req, _ := http.NewRequest(http.MethodGet, w.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+w.AdminToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET %s on a worker: %d, want %d", path, res.StatusCode, want)
		}
	}
}

// TestVCenterConcurrencyLimit: with one slot per vCenter, two VM backups
// queued together never hold snapshots at the same time, and both finish.
func TestVCenterConcurrencyLimit(t *testing.T) {
	f := newVMFixture(t, func(p *api.PolicySpec) { p.PostThawScript = "sleep 1\n" },
		func(c *server.Config) { c.VCenterConcurrency = 1 })
	f.setPower("app-01", true)
	f.setPower("db-01", true)
	a, b := f.protect("app-01", withGuest), f.protect("db-01", withGuest)
	ctx := context.Background()
	var jobs []*api.Job
	for _, pv := range []*api.ProtectedVM{a, b} {
		j, err := f.srv.Client.BackupNow(ctx, pv.ID)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	most := 0
	for {
		most = max(most, len(f.snapshots()))
		done := 0
		for _, j := range jobs {
			if cur, err := f.srv.Client.GetJob(ctx, j.ID); err == nil && cur.Finished() {
				done++
			}
		}
		if done == len(jobs) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, j := range jobs {
		if got := waitJob(t, f.srv, j.ID); got.State != api.JobSucceeded {
			t.Fatalf("backup: %+v", got)
		}
	}
	if most != 1 {
		t.Fatalf("%d snapshots existed at once under a limit of one backup per vCenter", most)
	}
}

// TestCanceledBackupRemovesItsSnapshot: canceling a VM backup while it
// holds its snapshot removes the snapshot and commits no point.
func TestCanceledBackupRemovesItsSnapshot(t *testing.T) {
	f := newVMFixture(t, func(p *api.PolicySpec) { p.PostThawScript = "sleep 60\n" })
	f.setPower("app-01", true)
	pv := f.protect("app-01", withGuest)
	ctx := context.Background()
	j := f.backupHoldingSnapshot(pv)
	if _, err := f.srv.Client.CancelJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	if got := waitJob(t, f.srv, j.ID); got.State != api.JobCanceled {
		t.Fatalf("canceled backup: %+v", got)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(f.snapshots()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the canceled backup left its snapshot: %+v", f.snapshots())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pts, _ := f.srv.Client.ListPoints(ctx, pv.ID, "", 0); len(pts.Items) != 0 {
		t.Fatalf("a canceled backup made a point: %+v", pts.Items)
	}
}

// TestLongAttemptStaysAlive: a running attempt keeps its start fresh, so
// River's rescuer (which re-runs attempts older than RescueAfter, taking
// them for dead) leaves a long backup alone.
func TestLongAttemptStaysAlive(t *testing.T) {
	f := newVMFixture(t, func(p *api.PolicySpec) { p.PostThawScript = "sleep 3\n" },
		func(c *server.Config) { c.RescueAfter = 400 * time.Millisecond })
	f.setPower("app-01", true)
	pv := f.protect("app-01", withGuest)
	ctx := context.Background()
	j := f.backupHoldingSnapshot(pv)
	conn, err := pgx.Connect(ctx, f.srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	age := func() time.Duration {
		var d float64
		if err := conn.QueryRow(ctx, `SELECT extract(epoch FROM now() - attempted_at) FROM river_job
			WHERE kind = 'haven.backup' AND state = 'running'`).Scan(&d); err != nil {
			t.Fatalf("the backup's River row: %v", err)
		}
		return time.Duration(d * float64(time.Second))
	}
	time.Sleep(1500 * time.Millisecond)
	if a := age(); a > 400*time.Millisecond {
		t.Fatalf("1.5 s into a running attempt its start is %v old: the rescuer would take it for dead", a)
	}
	if got := waitJob(t, f.srv, j.ID); got.State != api.JobSucceeded || got.Attempt != 1 {
		t.Fatalf("long backup: %+v", got)
	}
}

// backupHoldingSnapshot queues a backup of pv and returns once the backup
// holds its snapshot (its post-thaw script keeps it there).
func (f *vmFixture) backupHoldingSnapshot(pv *api.ProtectedVM) *api.Job {
	f.t.Helper()
	j, err := f.srv.Client.BackupNow(context.Background(), pv.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(f.snapshots()) == 0 {
		if time.Now().After(deadline) {
			f.t.Fatal("the backup never took its snapshot")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return j
}
