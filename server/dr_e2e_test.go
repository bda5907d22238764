package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"

	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
)

// drTarget registers the moto server at endpoint as an AWS target.
func drTarget(t *testing.T, c *api.Client, endpoint, name string) *api.AWSTarget {
	t.Helper()
	target, err := c.AWSTargets().Create(context.Background(), api.AWSTargetRequest{AWSTargetSpec: api.AWSTargetSpec{
		Name: name, Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey, Endpoint: endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// snapshotBytes reads the first n bytes of an EBS snapshot back through
// the EBS direct APIs.
func snapshotBytes(t *testing.T, endpoint, id string, n int) []byte {
	t.Helper()
	s, err := engdr.OpenSnapshot(context.Background(), testparts.MotoEBSClient(endpoint), id)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, n)
	if _, err := s.ReadAt(out, 0); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reading snapshot %s: %v", id, err)
	}
	return out
}

func snapshotExists(t *testing.T, endpoint, id string) bool {
	t.Helper()
	out, err := testparts.MotoEC2Client(endpoint).DescribeSnapshots(context.Background(), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{id}})
	if err != nil {
		if strings.Contains(err.Error(), "NotFound") {
			return false
		}
		t.Fatal(err)
	}
	return len(out.Snapshots) == 1
}

func replicate(t *testing.T, c *api.Client, srvWait func(id string) *api.Job, planID string) *api.Job {
	t.Helper()
	j, err := c.ReplicateDRPlan(context.Background(), planID)
	if err != nil {
		t.Fatal(err)
	}
	if j.Kind != api.JobDRReplicate {
		t.Fatalf("replicate queued a %q job", j.Kind)
	}
	return srvWait(j.ID)
}

func resultInt(t *testing.T, j *api.Job, key string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(j.Result[key], 10, 64)
	if err != nil {
		t.Fatalf("job result %s = %q: %v (%+v)", key, j.Result[key], err, j.Result)
	}
	return n
}

// TestDRPlanReplicatesVMToEBS: a protected VM of vcsim backed up, a target
// on moto and a plan; the replication's EBS snapshots read back as the
// VM's disks. After a change of two 64 KiB ranges and a new backup, the
// next replication puts only the two EBS blocks under them, deletes the
// previous snapshots, and the plan's status follows.
func TestDRPlanReplicatesVMToEBS(t *testing.T) {
	endpoint := testparts.Moto(t)
	f := newVMFixture(t, nil)
	ctx := context.Background()
	c := f.srv.Client
	wait := func(id string) *api.Job { return waitJob(t, f.srv, id) }
	rng := rand.New(rand.NewPCG(15, 15))
	f.sim.WriteDiskAt(t, "db-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 2<<20, 1<<20))
	f.sim.WriteDiskAt(t, "db-01", 1, testparts.RandomBlocks(rng, testparts.VCSimDiskSize/2, 2<<20, 1<<20))
	pv := f.protect("db-01", nil)
	if j := f.backup(pv); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	before := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}

	target := drTarget(t, c, endpoint, "dr")
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "site", TargetID: "dr",
		ReplicationIntervalMinutes: 60, VMs: []api.DRPlanVM{{ProtectedVMID: "db-01", BootGroup: 0, ProbePort: 22}}}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.TargetID != target.ID || plan.VMs[0].ProtectedVMID != pv.ID || plan.VMs[0].Name != "db-01" || plan.VMs[0].InstanceType != api.InstanceTypeAuto {
		t.Fatalf("the plan's references and defaults: %+v", plan)
	}
	if st := plan.Status.VMs[0]; st.PointID != "" || st.LagSeconds == nil || st.Late || st.NewestPointID == "" {
		t.Fatalf("status before the first copy: %+v", st)
	}

	j1 := replicate(t, c, wait, plan.ID)
	if j1.State != api.JobSucceeded || resultInt(t, j1, dr.ResultDisksCopied) != 2 || resultInt(t, j1, dr.ResultBlocksPut) == 0 {
		t.Fatalf("first replication: %+v", j1)
	}
	plan, err = c.DRPlans().Get(ctx, plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := c.ListPoints(ctx, pv.ID, "", 0)
	if err != nil || len(pts.Items) != 1 {
		t.Fatalf("points: %+v %v", pts, err)
	}
	st := plan.Status.VMs[0]
	if st.PointID != pts.Items[0].ID || len(st.Disks) != 2 || st.CopiedAt == nil || st.Late || st.AgeSeconds == nil ||
		plan.Status.LastReplicationJob == nil || plan.Status.LastReplicationJob.ID != j1.ID {
		t.Fatalf("status after the first copy: %+v", plan.Status)
	}
	if st.InstanceType == "" || st.InstanceType == api.InstanceTypeAuto || !strings.HasPrefix(st.InstanceTypeReason, "auto: ") {
		t.Errorf("auto instance type not resolved: %q (%s)", st.InstanceType, st.InstanceTypeReason)
	}
	first := map[int32]string{}
	for i, d := range st.Disks {
		first[d.DiskKey] = d.SnapshotID
		if got := snapshotBytes(t, endpoint, d.SnapshotID, len(before[i])); !bytes.Equal(got, before[i]) {
			t.Fatalf("snapshot %s does not read back as disk %d", d.SnapshotID, i)
		}
	}

	// Nothing new: a replication copies nothing.
	if j := replicate(t, c, wait, plan.ID); j.State != api.JobSucceeded || resultInt(t, j, dr.ResultDisksCopied) != 0 {
		t.Fatalf("replication with nothing new: %+v", j)
	}

	// Two 64 KiB writes on disk 0: the EBS blocks 10 and 22 (512 KiB).
	f.sim.WriteDiskAt(t, "db-01", 0, map[int64][]byte{5 << 20: bytes.Repeat([]byte{1}, 64<<10), 11<<20 + 4096: bytes.Repeat([]byte{2}, 64<<10)})
	after := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}
	if j := f.backup(pv); j.State != api.JobSucceeded {
		t.Fatalf("second backup: %+v", j)
	}
	j2 := replicate(t, c, wait, plan.ID)
	if j2.State != api.JobSucceeded || resultInt(t, j2, dr.ResultDisksCopied) != 2 || resultInt(t, j2, dr.ResultBlocksPut) != 2 ||
		resultInt(t, j2, dr.ResultBytesPut) != 2*testparts.MotoBlockSize || resultInt(t, j2, dr.ResultDeleted) != 2 {
		t.Fatalf("incremental replication: %+v", j2)
	}
	plan, err = c.DRPlans().Get(ctx, plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	pts, _ = c.ListPoints(ctx, pv.ID, "", 0)
	st = plan.Status.VMs[0]
	if st.PointID != pts.Items[0].ID || len(st.Disks) != 2 || plan.Status.LastReplicationJob.ID != j2.ID {
		t.Fatalf("status after the second copy: %+v", plan.Status)
	}
	for i, d := range st.Disks {
		if d.SnapshotID == first[d.DiskKey] {
			t.Fatalf("disk %d kept snapshot %s", d.DiskKey, d.SnapshotID)
		}
		if snapshotExists(t, endpoint, first[d.DiskKey]) {
			t.Errorf("the previous snapshot %s of disk %d is still there", first[d.DiskKey], d.DiskKey)
		}
		if got := snapshotBytes(t, endpoint, d.SnapshotID, len(after[i])); !bytes.Equal(got, after[i]) {
			t.Fatalf("snapshot %s does not read back as disk %d after the change", d.SnapshotID, i)
		}
	}

	// What the plan uses cannot go while it does.
	var e *api.Error
	if err := c.AWSTargets().Delete(ctx, target.ID); !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, `DR plan "site"`) {
		t.Fatalf("deleting the plan's target: %v", err)
	}
	if err := c.ProtectedVMs().Delete(ctx, pv.ID); !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, `DR plan "site"`) {
		t.Fatalf("deleting the plan's protected VM: %v", err)
	}
	if err := c.DRPlans().Delete(ctx, plan.ID); err != nil {
		t.Fatal(err)
	}
	// The plan's copies go with it.
	for _, d := range st.Disks {
		if snapshotExists(t, endpoint, d.SnapshotID) {
			t.Errorf("snapshot %s of the deleted plan is still there", d.SnapshotID)
		}
	}
	if left := planSnapshots(t, endpoint, "site"); len(left) != 0 {
		t.Errorf("the deleted plan left snapshots %v", left)
	}
	if err := c.AWSTargets().Delete(ctx, target.ID); err != nil {
		t.Fatalf("deleting the target once no plan uses it: %v", err)
	}
}

// TestDRReconcilerReplicatesWhatIsDue: with the DR reconciler running
// often, a plan whose VM has a point and no copy is replicated without a
// request (a scheduled job), and nothing more is queued while the copy
// holds the newest point.
func TestDRReconcilerReplicatesWhatIsDue(t *testing.T) {
	endpoint := testparts.Moto(t)
	f := newVMFixture(t, nil, func(c *server.Config) { c.DREvery = 300 * time.Millisecond })
	ctx := context.Background()
	c := f.srv.Client
	rng := rand.New(rand.NewPCG(16, 16))
	f.sim.WriteDiskAt(t, "app-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
	pv := f.protect("app-01", nil)
	drTarget(t, c, endpoint, "dr-due")
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "due", TargetID: "dr-due",
		ReplicationIntervalMinutes: 5, VMs: []api.DRPlanVM{{ProtectedVMID: pv.ID, InstanceType: "t3.small"}}}})
	if err != nil {
		t.Fatal(err)
	}
	// No point yet: nothing is due.
	time.Sleep(time.Second)
	if jobs, err := c.ListJobs(ctx, api.JobFilter{Kind: api.JobDRReplicate}, "", 0); err != nil || len(jobs.Items) != 0 {
		t.Fatalf("replications before the VM has a point: %+v %v", jobs, err)
	}
	if j := f.backup(pv); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	deadline := time.Now().Add(time.Minute)
	var st api.DRVMStatus
	for {
		p, err := c.DRPlans().Get(ctx, plan.ID)
		if err != nil {
			t.Fatal(err)
		}
		st = p.Status.VMs[0]
		if st.PointID != "" {
			if j := p.Status.LastReplicationJob; j == nil || j.State != api.JobSucceeded {
				t.Fatalf("copied, but the last replication job is %+v", j)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reconciler did not replicate the due plan: %+v", p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // several reconciler passes
	jobs, err := c.ListJobs(ctx, api.JobFilter{Kind: api.JobDRReplicate}, "", 0)
	if err != nil || len(jobs.Items) != 1 || jobs.Items[0].Trigger != api.TriggerScheduled {
		t.Fatalf("replications once the copy is current: %+v %v, want the one scheduled", jobs, err)
	}
}
