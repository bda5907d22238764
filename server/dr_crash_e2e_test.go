package server_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// planSnapshots lists the EBS snapshots a plan's replications made (by
// their description), in moto.
func planSnapshots(t *testing.T, endpoint, plan string) []string {
	t.Helper()
	out, err := testparts.MotoEC2Client(endpoint).DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range out.Snapshots {
		if strings.HasPrefix(aws.ToString(s.Description), "Haven DR plan "+plan+",") {
			ids = append(ids, aws.ToString(s.SnapshotId))
		}
	}
	return ids
}

// TestDRReplicationSurvivesKilledServers: a server process replicating a
// plan is killed with SIGKILL twice, and each time the next process's
// rerun of the job ends in a true state. Killed while AWS holds a new
// snapshot's completion, nothing was recorded (the plan still shows the
// previous copy, whose snapshot is still there) and the rerun continues
// the same snapshot (no twin). Killed after the new copy was recorded but
// before the previous snapshot was deleted, the plan shows the new copy
// and the rerun deletes the previous snapshot.
func TestDRReplicationSurvivesKilledServers(t *testing.T) {
	ctx := context.Background()
	moto := testparts.Moto(t)
	gate, gated := newRequestGate(t, moto)
	sim := testparts.VCSim(t)
	dbURL := testparts.PostgresURL(t)
	dataDir := t.TempDir()
	port := freePort(t)
	endpoint := "http://127.0.0.1:" + port
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	var child *exec.Cmd
	start := func() *api.Client {
		child = exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), childFastRescueEnv+"="+strings.Join([]string{"--listen", "127.0.0.1:" + port, "--data-dir", dataDir,
			"--database-url", dbURL}, "\x1f"))
		child.Stdout, child.Stderr = logFile, logFile
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		token := waitForServer(t, endpoint, dataDir, logFile.Name())
		c, err := api.NewClient(api.ClientOptions{Endpoint: endpoint, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	kill := func() {
		if err := child.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = child.Wait()
	}
	t.Cleanup(func() {
		if child.ProcessState == nil {
			child.Process.Signal(syscall.SIGTERM)
			child.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("server log:\n%s", b[max(0, len(b)-30000):])
		}
	})
	waitFor := func(c *api.Client, id string) *api.Job {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		j, err := c.WaitJob(wctx, id, 100*time.Millisecond)
		if err != nil {
			t.Fatalf("waiting for job %s: %v (%+v)", id, err, j)
		}
		return j
	}
	c := start()

	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "vms", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "vm-daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	vc, err := c.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim", URL: sim.URL,
		Username: sim.Username, Password: sim.Password, Thumbprint: sim.Thumbprint}})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := c.VMs(ctx, vc.ID, api.VMFilter{Name: "app-01"})
	if err != nil || len(vms) != 1 {
		t.Fatalf("app-01 in the simulator: %+v %v", vms, err)
	}
	pv, err := c.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: api.ProtectedVMSpec{VCenterID: vc.ID,
		InstanceUUID: vms[0].InstanceUUID, PolicyID: pol.ID, StorageID: stg.ID}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 15))
	sim.WriteDiskAt(t, "app-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 2<<20, 1<<20))
	backup := func(c *api.Client) {
		t.Helper()
		j, err := c.BackupNow(ctx, pv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j = waitFor(c, j.ID); j.State != api.JobSucceeded {
			t.Fatalf("backup: %+v", j)
		}
	}
	backup(c)
	if _, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: api.AWSTargetSpec{Name: "dr", Region: testparts.MotoRegion,
		Credentials: api.AWSCredentialsAccessKey, AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey,
		Endpoint: gated}}); err != nil {
		t.Fatal(err)
	}
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "crash-site", TargetID: "dr",
		ReplicationIntervalMinutes: 5, VMs: []api.DRPlanVM{{ProtectedVMID: pv.ID, InstanceType: "t3.small"}}}})
	if err != nil {
		t.Fatal(err)
	}
	replicateNow := func(c *api.Client) string {
		t.Helper()
		j, err := c.ReplicateDRPlan(ctx, plan.ID)
		if err != nil {
			t.Fatal(err)
		}
		return j.ID
	}
	copyOf := func(c *api.Client) api.DRVMStatus {
		t.Helper()
		p, err := c.DRPlans().Get(ctx, plan.ID)
		if err != nil {
			t.Fatal(err)
		}
		return p.Status.VMs[0]
	}
	if j := waitFor(c, replicateNow(c)); j.State != api.JobSucceeded {
		t.Fatalf("first replication: %+v", j)
	}
	first := copyOf(c)
	if len(first.Disks) != 1 {
		t.Fatalf("first copy: %+v", first)
	}
	waitHeld := func(what string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for gate.heldRequests() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the replication never reached %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Kill 1: while AWS holds the completion of the new snapshot.
	sim.WriteDiskAt(t, "app-01", 0, map[int64][]byte{3 << 20: bytes.Repeat([]byte{7}, 64<<10)})
	backup(c)
	gate.holdWhere(func(r *http.Request, _ []byte) bool { return strings.Contains(r.URL.Path, "/snapshots/completion/") })
	jobID := replicateNow(c)
	waitHeld("CompleteSnapshot")
	if got := copyOf(c); got.PointID != first.PointID || got.Disks[0].SnapshotID != first.Disks[0].SnapshotID {
		t.Fatalf("a snapshot not completed was recorded: %+v", got)
	}
	kill()
	gate.open()
	if !snapshotExists(t, moto, first.Disks[0].SnapshotID) {
		t.Fatal("the previous copy's snapshot went before its replacement was recorded")
	}
	c = start()
	j := waitFor(c, jobID)
	if j.State != api.JobSucceeded || j.Attempt < 2 {
		t.Fatalf("the replication after the kill: %+v", j)
	}
	second := copyOf(c)
	if second.PointID == first.PointID || second.Disks[0].SnapshotID == first.Disks[0].SnapshotID || snapshotExists(t, moto, first.Disks[0].SnapshotID) {
		t.Fatalf("after the rerun: %+v (first %+v)", second, first)
	}
	if snaps := planSnapshots(t, moto, "crash-site"); len(snaps) != 1 || snaps[0] != second.Disks[0].SnapshotID {
		t.Fatalf("the plan's snapshots in AWS after the rerun: %v, want only %s", snaps, second.Disks[0].SnapshotID)
	}
	disk := sim.DiskBytes(t, "app-01", 0)
	if got := snapshotBytes(t, moto, second.Disks[0].SnapshotID, len(disk)); !bytes.Equal(got, disk) {
		t.Fatal("the snapshot the rerun completed does not read back as the disk")
	}

	// Kill 2: the new copy recorded, the previous snapshot's deletion held.
	sim.WriteDiskAt(t, "app-01", 0, map[int64][]byte{9 << 20: bytes.Repeat([]byte{9}, 64<<10)})
	backup(c)
	gate.holdWhere(func(_ *http.Request, body []byte) bool { return bytes.Contains(body, []byte("Action=DeleteSnapshot")) })
	jobID = replicateNow(c)
	waitHeld("DeleteSnapshot")
	third := copyOf(c)
	if third.PointID == second.PointID || third.Disks[0].SnapshotID == second.Disks[0].SnapshotID {
		t.Fatalf("the completed copy was not recorded before the previous one's deletion: %+v", third)
	}
	kill()
	gate.open()
	if !snapshotExists(t, moto, second.Disks[0].SnapshotID) {
		t.Fatal("the held deletion went through")
	}
	c = start()
	if j := waitFor(c, jobID); j.State != api.JobSucceeded || j.Attempt < 2 {
		t.Fatalf("the replication after the second kill: %+v", j)
	}
	if snapshotExists(t, moto, second.Disks[0].SnapshotID) {
		t.Fatal("the rerun left the superseded snapshot")
	}
	if got := copyOf(c); got.Disks[0].SnapshotID != third.Disks[0].SnapshotID || got.PointID != third.PointID {
		t.Fatalf("the copy changed in the rerun: %+v, was %+v", got, third)
	}
	if snaps := planSnapshots(t, moto, "crash-site"); len(snaps) != 1 || snaps[0] != third.Disks[0].SnapshotID {
		t.Fatalf("the plan's snapshots in AWS at the end: %v, want only %s", snaps, third.Disks[0].SnapshotID)
	}
}
