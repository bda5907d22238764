package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// havenBinaryDir holds the binary havenBinary built; TestMain removes it.
var havenBinaryDir string

// havenBinary builds the haven binary once per test process, into a
// directory the user PostgreSQL runs as (under root) can reach: clusters
// run it as their archive_command (haven agent wal-push).
var havenBinary = sync.OnceValues(func() (string, error) {
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "haven-bin-")
	if err != nil {
		return "", err
	}
	havenBinaryDir = dir
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "haven")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the haven binary: %v\n%s", err, out)
	}
	return bin, nil
})

// dbFixture is a PostgreSQL cluster on an agent's host, declared to a
// server as a database server and set.
type dbFixture struct {
	srv      *servertest.Server
	cluster  *testparts.Cluster
	base     string // a directory beside the cluster's, reachable by its user
	stateDir string
	server   *api.DatabaseServer
	set      *api.DatabaseSet
}

// newDBFixture starts a server, an agent and a cluster whose
// archive_command is haven agent wal-push into the agent's spool (none
// with archive false), and declares the cluster as a database set.
func newDBFixture(t *testing.T, archive bool) *dbFixture {
	t.Helper()
	return newDBFixtureWith(t, dbOptions{archive: archive})
}

// dbOptions vary a dbFixture: archiving, the cluster's client
// authentication (hba, the file's lines), and the database server's user
// and password (default the test superuser, no password).
type dbOptions struct {
	archive        bool
	hba            string
	user, password string
}

func newDBFixtureWith(t *testing.T, o dbOptions) *dbFixture {
	t.Helper()
	archive := o.archive
	ctx := context.Background()
	bin, err := havenBinary()
	if err != nil {
		t.Fatal(err)
	}
	fx := &dbFixture{srv: servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter, c.JobWorkers = 3*time.Second, 2 })}
	fx.base = filepath.Dir(testparts.ClusterDir(t))
	fx.stateDir = filepath.Join(fx.base, "agent-state")
	settings := []string{"archive_mode=off"}
	if archive {
		settings = []string{"archive_mode=on", "archive_timeout=0",
			"archive_command=" + bin + " agent wal-push --state-dir " + fx.stateDir + " %p"}
	}
	if o.hba != "" {
		hba := filepath.Join(fx.base, "hba.conf")
		must(t, os.WriteFile(hba, []byte(o.hba), 0o644))
		settings = append(settings, "hba_file="+hba)
	}
	fx.cluster = testparts.StartClusterIn(t, filepath.Join(fx.base, "c"), settings...)
	fx.cluster.Exec("postgres", "CREATE TABLE ledger (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())")

	c := fx.srv.Client
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "s", Kind: "filesystem", Path: t.TempDir()}})
	must(t, err)
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "p", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7, LogDays: 7}}})
	must(t, err)
	fsrv, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "dbhost", Hostname: "dbhost", OS: "linux",
		Location: api.LocationAgent}})
	must(t, err)
	runAgent(t, fx.srv.URL, fsrv.ActivationToken, fx.stateDir)
	if o.user == "" {
		o.user = pgembed.Superuser
	} else {
		fx.cluster.Exec("postgres", fmt.Sprintf("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'", o.user, o.password))
	}
	fx.server, err = c.DatabaseServers().Create(ctx, api.DatabaseServerRequest{DatabaseServerSpec: api.DatabaseServerSpec{Name: "pg",
		FileServerID: fsrv.ID, Host: fx.cluster.Dir(), User: o.user, Password: o.password}})
	must(t, err)
	fx.set, err = c.DatabaseSets().Create(ctx, api.DatabaseSetRequest{DatabaseSetSpec: api.DatabaseSetSpec{Name: "pg-all",
		DatabaseServerID: fx.server.ID, PolicyID: pol.ID, StorageID: stg.ID}})
	must(t, err)
	return fx
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// backup runs a backup of the set and returns its point.
func (fx *dbFixture) backup(t *testing.T, kind string) api.Point {
	t.Helper()
	ctx := context.Background()
	j, err := fx.srv.Client.Backup(ctx, fx.set.ID, api.BackupRequest{Type: kind})
	must(t, err)
	if j = waitJob(t, fx.srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("%s backup: %s: %s", kind, j.State, j.Error)
	}
	p, err := fx.srv.Client.GetPoint(ctx, j.PointID)
	must(t, err)
	return *p
}

// restore restores a point of the set into a new data directory and
// starts the cluster there; it returns the ledger's last id.
func (fx *dbFixture) restore(t *testing.T, name string, point string, d api.DatabaseRestore) int64 {
	t.Helper()
	dir := filepath.Join(fx.base, name)
	d.DataDir = filepath.Join(dir, "data")
	j, err := fx.srv.Client.Restore(context.Background(), api.RestoreRequest{PointID: point, Database: &d})
	must(t, err)
	if j = waitJob(t, fx.srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("restore %s: %s: %s", name, j.State, j.Error)
	}
	if j.PointID != point {
		t.Errorf("restore %s: the job names point %s, want the one asked for, %s", name, j.PointID, point)
	}
	c := testparts.StartClusterIn(t, dir)
	waitPromoted(t, c) // read-only connections open before recovery ends
	return ledgerEnd(t, c)
}

// waitPaused waits until a standby's recovery has paused at its target.
func waitPaused(t *testing.T, c *testparts.Cluster) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var state string
		must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT pg_get_wal_replay_pause_state()").Scan(&state))
		if state == "paused" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby's recovery is %q after a minute, not paused at its target", state)
		}
	}
}

// ledgerEnd is the last id of a cluster's ledger.
func ledgerEnd(t *testing.T, c *testparts.Cluster) int64 {
	t.Helper()
	var n int64
	must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT coalesce(max(id), 0) FROM ledger").Scan(&n))
	return n
}

// waitPromoted waits until a cluster has left recovery.
func waitPromoted(t *testing.T, c *testparts.Cluster) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var inRecovery bool
		must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&inRecovery))
		if !inRecovery {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cluster is still in recovery after a minute")
		}
	}
}

func (fx *dbFixture) insert(t *testing.T, from, to int64) {
	t.Helper()
	conn := fx.cluster.Conn("postgres")
	for id := from; id <= to; id++ {
		_, err := conn.Exec(context.Background(), "INSERT INTO ledger (id) VALUES ($1)", id)
		must(t, err)
	}
}

// TestDatabaseSetBackupsAndPointInTimeRestores drives a database set
// through the API and a real agent: a full, a differential that reads
// only what changed, a log backup whose WAL came through the cluster's
// archive_command (haven agent wal-push), and restores to an instant, to
// a named restore point and to the end of the logs, each started and
// counted. Requests that cannot work are refused at once, naming the
// field.
func TestDatabaseSetBackupsAndPointInTimeRestores(t *testing.T) {
	ctx := context.Background()
	fx := newDBFixture(t, true)
	c := fx.srv.Client

	if out, err := fx.cluster.Run(ctx, "pgbench", "-i", "-s", "2", "postgres"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	full := fx.backup(t, api.BackupFull)
	if full.Kind != api.BackupFull || full.Database == nil || full.Database.StartLSN == "" || full.LogicalBytes < 20<<20 {
		t.Fatalf("full point: %+v (database %+v)", full, full.Database)
	}
	srv, err := c.DatabaseServers().Get(ctx, fx.server.ID)
	must(t, err)
	if srv.Detected == nil || srv.Detected.DataDir != fx.cluster.DataDir() || srv.Detected.LogRefusal != "" || srv.HasPassword {
		t.Fatalf("detected: %+v", srv.Detected)
	}

	fx.insert(t, 1, 10)
	diff := fx.backup(t, "") // a backup now of a database is a differential
	if diff.Kind != api.BackupDifferential || diff.ParentID != full.ID || diff.Database.Converted != "" {
		t.Fatalf("differential point: %+v (database %+v)", diff, diff.Database)
	}
	// The pgbench tables did not change: the differential stores a
	// fraction of the full.
	if diff.NewBytes*5 > full.NewBytes {
		t.Errorf("the differential added %d bytes, the full %d: it should store only what changed", diff.NewBytes, full.NewBytes)
	}

	// From here on pgbench writes too: log backups and restores run
	// under load, and the ledger alone tells how far a restore went.
	stopLoad := fx.cluster.Load("postgres", 2)
	fx.insert(t, 11, 30)
	firstLog := fx.backup(t, api.BackupLog)
	fx.insert(t, 31, 50)
	var instant time.Time
	must(t, fx.cluster.Conn("postgres").QueryRow(ctx, "SELECT clock_timestamp()").Scan(&instant))
	time.Sleep(20 * time.Millisecond)
	fx.insert(t, 51, 100)
	fx.cluster.Exec("postgres", "SELECT pg_create_restore_point('after_100')")
	fx.insert(t, 101, 150)

	logPoint := fx.backup(t, api.BackupLog)
	stopLoad()
	if logPoint.Kind != api.BackupLog || logPoint.ParentID != diff.ID || logPoint.LogEnd == nil || logPoint.LogEnd.Before(instant) {
		t.Fatalf("log point: %+v", logPoint)
	}
	// The instant lies between the two log backups.
	if firstLog.LogEnd == nil || !firstLog.LogEnd.Before(instant) || firstLog.ParentID != diff.ID {
		t.Fatalf("first log point: %+v (the instant is %s)", firstLog, instant)
	}
	names := []string{}
	for _, rp := range logPoint.Database.RestorePoints {
		names = append(names, rp.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "after_100") {
		t.Errorf("log point's restore points %v lack after_100", names)
	}

	if n := fx.restore(t, "at-instant", logPoint.ID, api.DatabaseRestore{PointInTime: &instant}); n != 50 {
		t.Errorf("restore to the instant after row 50: the ledger ends at %d", n)
	}
	if n := fx.restore(t, "at-name", logPoint.ID, api.DatabaseRestore{RestorePoint: "after_100"}); n != 100 {
		t.Errorf("restore to after_100: the ledger ends at %d", n)
	}
	if n := fx.restore(t, "at-end", logPoint.ID, api.DatabaseRestore{}); n != 150 {
		t.Errorf("restore to the end of the logs: the ledger ends at %d", n)
	}
	if n := fx.restore(t, "the-diff", diff.ID, api.DatabaseRestore{}); n != 10 {
		t.Errorf("restore of the differential: the ledger ends at %d", n)
	}

	// A standby restore to the instant is read-only; rolled forward to
	// the restore point with end state recovery, it is promoted.
	standbyDir := filepath.Join(fx.base, "standby")
	j, err := c.Restore(ctx, api.RestoreRequest{PointID: logPoint.ID, Database: &api.DatabaseRestore{
		DataDir: filepath.Join(standbyDir, "data"), PointInTime: &instant, EndState: api.EndStandby}})
	must(t, err)
	if j = waitJob(t, fx.srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("standby restore: %s: %s", j.State, j.Error)
	}
	standby := testparts.StartClusterIn(t, standbyDir)
	waitPaused(t, standby)
	if n := ledgerEnd(t, standby); n != 50 {
		t.Errorf("standby at the instant: the ledger ends at %d", n)
	}
	if _, err := standby.Conn("postgres").Exec(ctx, "INSERT INTO ledger (id) VALUES (1000)"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("a write to the standby: %v, want it refused as read-only", err)
	}
	must(t, standby.Stop(ctx)) // the test's cluster handle holds the directory
	j, err = c.Restore(ctx, api.RestoreRequest{PointID: logPoint.ID, Database: &api.DatabaseRestore{
		DataDir: filepath.Join(standbyDir, "data"), RestorePoint: "after_100", EndState: api.EndRecovery, RollForward: true}})
	must(t, err)
	if j = waitJob(t, fx.srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("roll forward: %s: %s", j.State, j.Error)
	}
	promoted := testparts.StartClusterIn(t, standbyDir)
	waitPromoted(t, promoted)
	if n := ledgerEnd(t, promoted); n != 100 {
		t.Errorf("rolled forward to after_100: the ledger ends at %d", n)
	}
	if _, err := promoted.Conn("postgres").Exec(ctx, "INSERT INTO ledger (id) VALUES (1000)"); err != nil {
		t.Errorf("a write after the promotion: %v", err)
	}

	// Refused at once, naming the field.
	later := logPoint.LogEnd.Add(time.Hour)
	for _, bad := range []struct {
		req   api.DatabaseRestore
		field string
	}{
		{api.DatabaseRestore{}, "database.overwrite"}, // the original data directory
		{api.DatabaseRestore{DataDir: filepath.Join(fx.base, "x"), PointInTime: &later}, "database.point_in_time"},
		{api.DatabaseRestore{DataDir: filepath.Join(fx.base, "x"), RestorePoint: "no_such_point"}, "database.restore_point"},
		{api.DatabaseRestore{DataDir: filepath.Join(fx.base, "x"), EndState: "open"}, "database.end_state"},
		{api.DatabaseRestore{DataDir: "relative/dir"}, "database.data_dir"},
	} {
		_, err := c.Restore(ctx, api.RestoreRequest{PointID: logPoint.ID, Database: &bad.req})
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Field != bad.field || ae.Status/100 != 4 {
			t.Errorf("restore %+v: %v, want a 4xx naming %s", bad.req, err, bad.field)
		}
	}
}

// TestDatabaseLogBackupsRefusedWithoutArchiving: a cluster that does not
// archive WAL (SQL Server's simple recovery model) has fulls, and its log
// backups are refused with the reason.
func TestDatabaseLogBackupsRefusedWithoutArchiving(t *testing.T) {
	ctx := context.Background()
	fx := newDBFixture(t, false)
	// A backup now is a differential, taken as a full while there is none.
	if first := fx.backup(t, ""); first.Kind != api.BackupFull || first.Database == nil || !strings.Contains(first.Database.Converted, "no complete full") {
		t.Fatalf("the first backup now: %+v (database %+v), want a full converted from a differential with the reason", first, first.Database)
	}
	srv, err := fx.srv.Client.DatabaseServers().Get(ctx, fx.server.ID)
	must(t, err)
	if srv.Detected == nil || !strings.Contains(srv.Detected.LogRefusal, "archive_mode") {
		t.Fatalf("detected: %+v", srv.Detected)
	}
	j, err := fx.srv.Client.Backup(ctx, fx.set.ID, api.BackupRequest{Type: api.BackupLog})
	must(t, err)
	if j = waitJob(t, fx.srv, j.ID); j.State != api.JobFailed || !strings.Contains(j.Error, "archive_mode") {
		t.Fatalf("log backup without archiving: %s: %s", j.State, j.Error)
	}
}

// TestDatabaseTailLogRestoreOverTheOriginal kills a cluster, deletes its
// data files but not pg_wal, and restores its newest point over it: the
// restore first backs up the WAL Haven did not hold (the tail: rows
// written after the last log backup, never archived), commits it as a
// partial log point, and replays it, so the last committed row is back.
func TestDatabaseTailLogRestoreOverTheOriginal(t *testing.T) {
	ctx := context.Background()
	fx := newDBFixture(t, true)
	fx.backup(t, api.BackupFull)
	fx.insert(t, 1, 50)
	logPoint := fx.backup(t, api.BackupLog)
	fx.insert(t, 51, 80) // only in pg_wal: no segment switch since

	dataDir := fx.cluster.DataDir()
	fx.cluster.Kill()
	entries, err := os.ReadDir(dataDir)
	must(t, err)
	for _, e := range entries {
		if e.Name() != "pg_wal" {
			must(t, os.RemoveAll(filepath.Join(dataDir, e.Name())))
		}
	}

	j, err := fx.srv.Client.Restore(ctx, api.RestoreRequest{PointID: logPoint.ID, Database: &api.DatabaseRestore{Overwrite: true}})
	must(t, err)
	if j = waitJob(t, fx.srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("restore over the original: %s: %s", j.State, j.Error)
	}
	points, err := fx.srv.Client.ListPoints(ctx, fx.set.ID, "", 100)
	must(t, err)
	var tail *api.Point
	for i, p := range points.Items {
		if p.Kind == api.BackupLog && p.JobID == j.ID {
			tail = &points.Items[i]
		}
	}
	if tail == nil || tail.Database == nil || !tail.Database.Partial || tail.ParentID == "" {
		t.Fatalf("no partial tail-log point made by the restore job among %+v", points.Items)
	}

	c := testparts.StartClusterIn(t, filepath.Dir(dataDir))
	var n int64
	must(t, c.Conn("postgres").QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM ledger").Scan(&n))
	if n != 80 {
		t.Errorf("after the restore over the original the ledger ends at %d, want the last committed row, 80", n)
	}
}

// TestDatabaseVerifyRestore: with verify_restore, each full is restored
// into a scratch cluster on the agent's host, started and checked, and
// the point records the result (every pgbench table counted).
func TestDatabaseVerifyRestore(t *testing.T) {
	ctx := context.Background()
	fx := newDBFixture(t, true)
	c := fx.srv.Client
	spec := fx.set.DatabaseSetSpec
	spec.VerifyRestore = true
	_, err := c.DatabaseSets().Update(ctx, fx.set.ID, fx.set.Version, api.DatabaseSetRequest{DatabaseSetSpec: spec})
	must(t, err)
	if out, err := fx.cluster.Run(ctx, "pgbench", "-i", "-s", "1", "postgres"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	full := fx.backup(t, api.BackupFull)
	var p *api.Point
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(250 * time.Millisecond) {
		p, err = c.GetPoint(ctx, full.ID)
		must(t, err)
		if p.Database != nil && p.Database.Verified != nil || time.Now().After(deadline) {
			break
		}
	}
	v := p.Database.Verified
	if v == nil || !v.OK || v.Problem != "" || v.Tables < 5 || v.Rows < 100000 {
		t.Fatalf("verification of the full: %+v", v)
	}
	// A log point is not verified alone.
	logPoint := fx.backup(t, api.BackupLog)
	// A log backup right after, with nothing written since, has nothing
	// to back up: it ends skipped, saying so, and makes no point.
	j, err := c.Backup(ctx, fx.set.ID, api.BackupRequest{Type: api.BackupLog})
	must(t, err)
	if j = waitJob(t, fx.srv, j.ID); j.State != api.JobSkipped || !strings.Contains(j.Error, "no WAL") || j.PointID != "" {
		t.Errorf("a log backup with nothing new: %s %q point %q, want skipped with the reason", j.State, j.Error, j.PointID)
	}
	_, err = c.Restore(ctx, api.RestoreRequest{PointID: logPoint.ID, Database: &api.DatabaseRestore{Verify: true}})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Field != "database.verify" {
		t.Errorf("verify of a log point: %v, want a refusal naming database.verify", err)
	}
}

// TestKilledServerOrAgentDatabaseJobsFinish kills the server process or
// the agent process with SIGKILL during database backups and restores,
// and starts it again: every job ends succeeded, the cluster keeps no
// replication slot of a killed backup, and each restore starts with every
// table as it was backed up.
func TestKilledServerOrAgentDatabaseJobsFinish(t *testing.T) {
	ctx := context.Background()
	bin, err := havenBinary()
	must(t, err)
	dbURL := testparts.PostgresURL(t)
	dataDir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := l.Addr().String()
	l.Close()
	endpoint := "http://" + addr
	srvProc := newProc(t, "server", childServerEnv+"="+strings.Join([]string{addr, dataDir, dbURL}, "|"))
	token := waitReady(t, endpoint, dataDir)
	c, err := api.NewClient(api.ClientOptions{Endpoint: endpoint, Token: token, MaxRetries: 5})
	must(t, err)

	base := filepath.Dir(testparts.ClusterDir(t))
	stateDir := filepath.Join(base, "agent-state")
	cluster := testparts.StartClusterIn(t, filepath.Join(base, "c"), "archive_mode=on", "archive_timeout=0",
		"archive_command="+bin+" agent wal-push --state-dir "+stateDir+" %p")
	if out, err := cluster.Run(ctx, "pgbench", "-i", "-s", "10", "postgres"); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	storeDir := t.TempDir()
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "s", Kind: "filesystem", Path: storeDir}})
	must(t, err)
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "p", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	must(t, err)
	fsrv, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "dbhost", Hostname: "dbhost",
		OS: "linux", Location: api.LocationAgent}})
	must(t, err)
	agentProc := newProc(t, "agent", childEnv+"="+strings.Join([]string{endpoint, fsrv.ActivationToken, stateDir}, "|"))
	dbs, err := c.DatabaseServers().Create(ctx, api.DatabaseServerRequest{DatabaseServerSpec: api.DatabaseServerSpec{Name: "pg",
		FileServerID: fsrv.ID, Host: cluster.Dir(), User: pgembed.Superuser}})
	must(t, err)
	set, err := c.DatabaseSets().Create(ctx, api.DatabaseSetRequest{DatabaseSetSpec: api.DatabaseSetSpec{Name: "pg-all",
		DatabaseServerID: dbs.ID, PolicyID: pol.ID, StorageID: stg.ID}})
	must(t, err)

	// killAt waits until reached says the job is where the kill comes,
	// kills the victim, starts it again and waits for the job's end.
	killAt := func(what, jobID string, victim *proc, reached func() bool) *api.Job {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !reached(); time.Sleep(20 * time.Millisecond) {
			j, err := c.GetJob(ctx, jobID)
			must(t, err)
			if j.Finished() {
				t.Fatalf("%s finished before the %s could be killed: %+v", what, victim.name, j)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never got where the kill comes: %+v", what, j)
			}
		}
		victim.kill()
		t.Logf("%s: killed the %s", what, victim.name)
		victim.start()
		if victim == srvProc {
			waitReady(t, endpoint, dataDir)
		}
		wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
		defer cancel()
		j, err := c.WaitJob(wctx, jobID, 200*time.Millisecond)
		if err != nil || j.State != api.JobSucceeded {
			t.Fatalf("%s after the %s was killed: %v %+v", what, victim.name, err, j)
		}
		return j
	}
	running := func(id string) func() bool {
		return func() bool {
			j, err := c.GetJob(ctx, id)
			return err == nil && j.State == api.JobRunning
		}
	}
	// read is the job's progress: the data read so far (what is stored
	// is far less, pgbench's rows compress well).
	read := func(id string, more int64) func() bool {
		return func() bool {
			j, err := c.GetJob(ctx, id)
			return err == nil && j.State == api.JobRunning && j.Progress.BytesDone > more
		}
	}
	restoreAndCompare := func(what, pointID string, victim *proc, want map[string]string) {
		t.Helper()
		dir := filepath.Join(base, "r-"+pointID[:8])
		j, err := c.Restore(ctx, api.RestoreRequest{PointID: pointID, Database: &api.DatabaseRestore{DataDir: filepath.Join(dir, "data")}})
		must(t, err)
		killAt(what, j.ID, victim, func() bool { return treeBytes(dir) > 30<<20 })
		got := testparts.StartClusterIn(t, dir).TableSums("postgres")
		for table, sum := range want {
			if got[table] != sum {
				t.Errorf("%s: table %s differs from the backed-up one", what, table)
			}
		}
	}

	wantFull := cluster.TableSums("postgres")
	j, err := c.Backup(ctx, set.ID, api.BackupRequest{Type: api.BackupFull})
	must(t, err)
	full := killAt("full backup", j.ID, agentProc, read(j.ID, 40<<20))
	var slots int
	must(t, cluster.Conn("postgres").QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots))
	if slots != 0 {
		t.Errorf("%d replication slots remain after the killed agent's backup", slots)
	}
	restoreAndCompare("restore of the full", full.PointID, srvProc, wantFull)

	cluster.Pgbench(ctx, "postgres", "-n", "-t", "500")
	wantDiff := cluster.TableSums("postgres")
	j, err = c.Backup(ctx, set.ID, api.BackupRequest{Type: api.BackupDifferential})
	must(t, err)
	diff := killAt("differential backup", j.ID, srvProc, running(j.ID))
	restoreAndCompare("restore of the differential", diff.PointID, agentProc, wantDiff)

	j, err = c.Backup(ctx, set.ID, api.BackupRequest{Type: api.BackupLog})
	must(t, err)
	killAt("log backup", j.ID, agentProc, running(j.ID))
}

// TestDatabaseJobsBeyondWorkersAndRetriedRequests queues backups of four
// sets of one cluster at once, on a server with two job workers and an
// agent that runs two jobs at a time, then four restores at once: every
// job ends succeeded, the backups ran one after another (sets of one
// server do), and every restore holds the rows. A restore request
// sent twice with one Idempotency-Key (a client's retry) makes one job.
func TestDatabaseJobsBeyondWorkersAndRetriedRequests(t *testing.T) {
	ctx := context.Background()
	fx := newDBFixture(t, true)
	c := fx.srv.Client
	fx.insert(t, 1, 20)
	sets := []string{fx.set.ID}
	for i := range 3 {
		spec := fx.set.DatabaseSetSpec
		spec.Name = fmt.Sprintf("pg-all-%d", i)
		s, err := c.DatabaseSets().Create(ctx, api.DatabaseSetRequest{DatabaseSetSpec: spec})
		must(t, err)
		sets = append(sets, s.ID)
	}
	var jobs []string
	for _, id := range sets {
		j, err := c.Backup(ctx, id, api.BackupRequest{Type: api.BackupFull})
		must(t, err)
		jobs = append(jobs, j.ID)
	}
	var points []string
	var spans [][2]time.Time
	for _, id := range jobs {
		j := waitJob(t, fx.srv, id)
		if j.State != api.JobSucceeded {
			t.Fatalf("concurrent backup: %s: %s", j.State, j.Error)
		}
		points = append(points, j.PointID)
		p, err := c.GetPoint(ctx, j.PointID)
		must(t, err)
		spans = append(spans, [2]time.Time{p.StartedAt, p.CompletedAt})
	}
	// The sets of one server run one after another.
	for i := range spans {
		for k := range i {
			if spans[i][0].Before(spans[k][1]) && spans[k][0].Before(spans[i][1]) {
				t.Errorf("the backups of sets %d and %d of one server overlapped: %v and %v", k, i, spans[k], spans[i])
			}
		}
	}
	jobs = nil
	for i, p := range points {
		d := &api.DatabaseRestore{DataDir: filepath.Join(fx.base, fmt.Sprintf("r%d", i), "data")}
		j, err := c.Restore(ctx, api.RestoreRequest{PointID: p, Database: d})
		must(t, err)
		jobs = append(jobs, j.ID)
	}
	for i, id := range jobs {
		if j := waitJob(t, fx.srv, id); j.State != api.JobSucceeded {
			t.Fatalf("concurrent restore: %s: %s", j.State, j.Error)
		}
		if n := ledgerEnd(t, testparts.StartClusterIn(t, filepath.Join(fx.base, fmt.Sprintf("r%d", i)))); n != 20 {
			t.Errorf("restore %d: the ledger ends at %d, want 20", i, n)
		}
	}

	body := fmt.Sprintf(`{"point_id": %q, "database": {"data_dir": %q}}`, points[0], filepath.Join(fx.base, "retried", "data"))
	var first string
	for try := range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, fx.srv.URL+"/v1/restores", strings.NewReader(body))
		must(t, err)
		req.Header.Set("Authorization", "Bearer "+fx.srv.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "db-restore-retry-1")
		res, err := http.DefaultClient.Do(req)
		must(t, err)
		var j api.Job
		err = json.NewDecoder(res.Body).Decode(&j)
		res.Body.Close()
		must(t, err)
		if res.StatusCode/100 != 2 || j.ID == "" {
			t.Fatalf("try %d: %d %+v", try, res.StatusCode, j)
		}
		if try == 0 {
			first = j.ID
		} else if j.ID != first {
			t.Errorf("the retried restore request made job %s, the first %s", j.ID, first)
		}
	}
	if j := waitJob(t, fx.srv, first); j.State != api.JobSucceeded {
		t.Fatalf("the retried restore: %s: %s", j.State, j.Error)
	}
}

// TestDatabasePasswordReachesOnlyTheAgent: a cluster that asks its backup
// role for a password (scram-sha-256) is backed up with the password the
// database server holds, which reaches the agent with the job and is found
// nowhere else: not in the API's answers, the server's log, the job rows
// or the database server's row. A wrong password fails the backup with an
// error that does not repeat it.
func TestDatabasePasswordReachesOnlyTheAgent(t *testing.T) {
	ctx := context.Background()
	const secret = "pw-7f3a-not-for-logs"
	fx := newDBFixtureWith(t, dbOptions{archive: true, user: "haven_backup", password: secret,
		hba: "local all haven_backup scram-sha-256\nlocal all all trust\n"})
	c := fx.srv.Client
	full := fx.backup(t, api.BackupFull)
	if full.Kind != api.BackupFull {
		t.Fatalf("backup with the password: %+v", full)
	}

	spec := fx.server.DatabaseServerSpec
	spec.Password = "wrong-" + secret
	_, err := c.DatabaseServers().Update(ctx, fx.server.ID, fx.server.Version, api.DatabaseServerRequest{DatabaseServerSpec: spec})
	must(t, err)
	j, err := c.Backup(ctx, fx.set.ID, api.BackupRequest{Type: api.BackupFull})
	must(t, err)
	j = waitJob(t, fx.srv, j.ID)
	if j.State != api.JobFailed || !strings.Contains(j.Error, "password") || strings.Contains(j.Error, secret) {
		t.Fatalf("backup with a wrong password: %s: %s", j.State, j.Error)
	}

	got, err := c.DatabaseServers().Get(ctx, fx.server.ID)
	must(t, err)
	if !got.HasPassword || got.Password != "" {
		t.Errorf("the database server as the API shows it: %+v", got)
	}
	conn, err := pgx.Connect(ctx, fx.srv.DatabaseURL)
	must(t, err)
	defer conn.Close(ctx)
	var rows string
	must(t, conn.QueryRow(ctx, `SELECT (SELECT string_agg(j::text, ' ') FROM jobs j) || (SELECT string_agg(d::text, ' ') FROM database_servers d)`).Scan(&rows))
	for where, text := range map[string]string{"the server's log": fx.srv.Logs(), "the job and database server rows": rows} {
		if strings.Contains(text, secret) {
			t.Errorf("%s hold the password", where)
		}
	}
}
