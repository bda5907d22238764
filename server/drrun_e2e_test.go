package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
)

// drNetwork is a VPC and subnet on moto.
type drNetwork struct{ vpc, subnet string }

func motoNetwork(t *testing.T, endpoint string) drNetwork {
	t.Helper()
	vpc, subnet := testparts.MotoNetwork(t, endpoint)
	return drNetwork{vpc: vpc, subnet: subnet}
}

// runInstances lists the instances a run launched (any state), by machine.
func runInstances(t *testing.T, endpoint, run string) map[string]ec2types.Instance {
	t.Helper()
	out, err := testparts.MotoEC2Client(endpoint).DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + engdr.TagRun), Values: []string{run}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ec2types.Instance{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			for _, tag := range in.Tags {
				if aws.ToString(tag.Key) == engdr.TagMachine {
					m := aws.ToString(tag.Value)
					if _, twice := got[m]; twice {
						t.Errorf("machine %s has two instances in run %s", m, run)
					}
					got[m] = in
				}
			}
		}
	}
	return got
}

func leftInAWS(t *testing.T, endpoint, run string) []engdr.Resource {
	t.Helper()
	left, err := engdr.Inventory(t.Context(), testparts.MotoEC2Client(endpoint), run)
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// stepIndex is where a machine's step is in a run's steps (-1 if absent).
func stepIndex(run *api.DRRun, machine, step string) int {
	return slices.IndexFunc(run.Steps, func(s api.DRRunStep) bool { return s.Machine == machine && s.Step == step })
}

// drRunFixture is two protected VMs of vcsim, backed up and replicated by
// a plan on moto: "db" (db-01) boots first, then "app" (app-01), which
// depends on it. Both have private addresses, probe port 22 and tags;
// app has a boot script and an auto instance type.
type drRunFixture struct {
	*vmFixture
	endpoint   string
	prod, test drNetwork
	plan       *api.DRPlan
	vms        map[string]*api.ProtectedVM
	// failProbe makes the probe of the machine at this address fail, after
	// terminating its instance: a failure part way through a run.
	failProbe atomic.Value
}

const (
	drDBAddress   = "10.42.1.10"
	drAppAddress  = "10.42.1.20"
	drAppUserData = "#!/bin/sh\necho app > /etc/haven-role\n"
)

func newDRRunFixture(t *testing.T, cfg ...func(*server.Config)) *drRunFixture {
	endpoint := testparts.Moto(t)
	f := &drRunFixture{endpoint: endpoint, vms: map[string]*api.ProtectedVM{}}
	f.failProbe.Store("")
	cfg = append(cfg, func(c *server.Config) {
		c.DRPoll = 50 * time.Millisecond
		c.DRDial = func(ctx context.Context, addr string) error {
			if ip := f.failProbe.Load().(string); ip != "" && strings.HasPrefix(addr, ip+":") {
				if err := testparts.MotoTerminateAt(ctx, endpoint, ip); err != nil {
					return err
				}
				return errors.New("connection refused (forced by the test)")
			}
			return nil
		}
	})
	f.vmFixture = newVMFixture(t, nil, cfg...)
	ctx := context.Background()
	c := f.srv.Client
	rng := rand.New(rand.NewPCG(17, 17))
	f.sim.WriteDiskAt(t, "db-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
	f.sim.WriteDiskAt(t, "app-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
	for _, vm := range []string{"db-01", "app-01"} {
		f.vms[vm] = f.protect(vm, nil)
		if j := f.backup(f.vms[vm]); j.State != api.JobSucceeded {
			t.Fatalf("backup of %s: %+v", vm, j)
		}
	}
	f.prod, f.test = motoNetwork(t, endpoint), motoNetwork(t, endpoint)
	if _, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: api.AWSTargetSpec{
		Name: "dr", Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey, Endpoint: endpoint,
		VPCID: f.prod.vpc, SubnetID: f.prod.subnet}}); err != nil {
		t.Fatal(err)
	}
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "site", TargetID: "dr", ReplicationIntervalMinutes: 60,
		VMs: []api.DRPlanVM{
			{ProtectedVMID: "db-01", Name: "db", InstanceType: "t3.large", PrivateIP: drDBAddress, SubnetID: f.prod.subnet, ProbePort: 22, Tags: map[string]string{"tier": "data"}},
			{ProtectedVMID: "app-01", Name: "app", BootGroup: 1, DependsOn: []string{"db"}, PrivateIP: drAppAddress, SubnetID: f.prod.subnet, ProbePort: 22, UserData: drAppUserData},
		},
		TestNetwork: &api.DRTestNetwork{VPCID: f.test.vpc, SubnetID: f.test.subnet}}})
	if err != nil {
		t.Fatal(err)
	}
	f.plan = plan
	if j := replicate(t, c, f.wait, plan.ID); j.State != api.JobSucceeded {
		t.Fatalf("replication: %+v", j)
	}
	return f
}

func (f *drRunFixture) wait(id string) *api.Job { return waitJob(f.t, f.srv, id) }

func (f *drRunFixture) run(id string) *api.DRRun {
	f.t.Helper()
	run, err := f.srv.Client.DRRun(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return run
}

// TestDRTestsCleanUpAfterThemselves: a DR test launches the plan into its
// test network, never the production subnet. One that fails part way (the
// app's instance dies while it is probed) fails its job and still leaves
// nothing in AWS; one that passes and is kept runs until its cleanup,
// which then leaves nothing. The plan cannot be deleted while a test has
// resources.
func TestDRTestsCleanUpAfterThemselves(t *testing.T) {
	f := newDRRunFixture(t)
	ctx := context.Background()
	c := f.srv.Client

	f.failProbe.Store(drAppAddress)
	failed, err := c.StartDRTest(ctx, f.plan.ID, api.DRTestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The job may have started before the answer was written.
	if failed.Kind != api.DRRunTest || (failed.State != api.DRRunPending && failed.State != api.DRRunLaunching) || failed.ID != failed.JobID {
		t.Fatalf("a new test: %+v", failed)
	}
	j := f.wait(failed.JobID)
	if j.State != api.JobFailed || !strings.Contains(j.Error, "the DR test failed (everything it created was removed)") || !strings.Contains(j.Error, "terminated") {
		t.Fatalf("the test with a forced failure: %+v", j)
	}
	run := f.run(failed.ID)
	if run.State != api.DRRunCleaned || run.Passed == nil || *run.Passed || len(run.Leftovers) != 0 || run.CleanedAt == nil || run.Error == "" {
		t.Fatalf("the failed test's run: %+v", run)
	}
	instances := runInstances(t, f.endpoint, run.ID)
	if len(instances) != 2 {
		t.Fatalf("the failed test launched %d machines, want db and app (app failing its checks)", len(instances))
	}
	kinds := map[string]int{}
	for _, r := range run.Created {
		kinds[r.Kind]++
	}
	if kinds["image"] != 2 || kinds["instance"] != 2 {
		t.Errorf("the run recorded %v created, want 2 images and 2 instances", kinds)
	}
	for m, in := range instances {
		if aws.ToString(in.SubnetId) != f.test.subnet {
			t.Errorf("the test launched %s in %s, not the test subnet %s", m, aws.ToString(in.SubnetId), f.test.subnet)
		}
	}
	if left := leftInAWS(t, f.endpoint, run.ID); len(left) != 0 {
		t.Fatalf("the failed test left %+v", left)
	}

	f.failProbe.Store("")
	kept, err := c.StartDRTest(ctx, f.plan.ID, api.DRTestRequest{KeepMinutes: 60})
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(kept.JobID); j.State != api.JobSucceeded || j.Result[dr.ResultRunID] != kept.ID || j.Result[dr.ResultRTOSeconds] == "" {
		t.Fatalf("the kept test: %+v", j)
	}
	run = f.run(kept.ID)
	if run.State != api.DRRunReady || run.Passed == nil || !*run.Passed || run.CleanAfter == nil || run.RTOSeconds == nil || *run.RTOSeconds <= 0 {
		t.Fatalf("the kept test's run: %+v", run)
	}
	if db, app := stepIndex(run, "db", "ready"), stepIndex(run, "app", "launch"); db < 0 || app < 0 || db > app {
		t.Fatalf("app launched before db was ready: %+v", run.Steps)
	}
	instances = runInstances(t, f.endpoint, run.ID)
	for _, m := range run.Machines {
		in, ok := instances[m.Name]
		if !ok || aws.ToString(in.InstanceId) != m.InstanceID || in.State.Name != ec2types.InstanceStateNameRunning {
			t.Fatalf("machine %+v: instance %+v", m, in)
		}
		if aws.ToString(in.SubnetId) != f.test.subnet {
			t.Errorf("the test launched %s in %s, not the test subnet", m.Name, aws.ToString(in.SubnetId))
		}
	}
	// The test subnet has the production range, so the addresses stay.
	if ip := aws.ToString(instances["app"].PrivateIpAddress); ip != drAppAddress {
		t.Errorf("app's address in the test network is %s, want %s", ip, drAppAddress)
	}
	var e *api.Error
	if err := c.DRPlans().Delete(ctx, f.plan.ID); !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, "not cleaned up") {
		t.Fatalf("deleting a plan whose test still runs: %v", err)
	}
	plan, err := c.DRPlans().Get(ctx, f.plan.ID)
	if err != nil || plan.Status.LastTest == nil || plan.Status.LastTest.ID != kept.ID || plan.Status.LastTest.State != api.DRRunReady {
		t.Fatalf("the plan's last test: %+v %v", plan.Status.LastTest, err)
	}
	cj, err := c.CleanupDRRun(ctx, kept.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(cj.ID); j.State != api.JobSucceeded || j.Result[dr.ResultLeftovers] != "0" {
		t.Fatalf("the kept test's cleanup: %+v", j)
	}
	if run = f.run(kept.ID); run.State != api.DRRunCleaned || run.CleanupJobID != cj.ID {
		t.Fatalf("the kept test after its cleanup: %+v", run)
	}
	if left := leftInAWS(t, f.endpoint, run.ID); len(left) != 0 {
		t.Fatalf("the cleanup left %+v", left)
	}
	runs, err := c.DRRuns(ctx, f.plan.ID, api.DRRunTest)
	if err != nil || len(runs) != 2 || runs[0].ID != kept.ID || runs[1].ID != failed.ID {
		t.Fatalf("the plan's tests, newest first: %+v %v", runs, err)
	}
	if err := c.DRPlans().Delete(ctx, f.plan.ID); err != nil {
		t.Fatalf("deleting the plan once its tests are cleaned up: %v", err)
	}
}

// TestDRFailover: a failover needs confirm; it launches the plan in
// production subnets group by group (db ready before app launches), with
// the plan's addresses, instance types (auto resolved), tags and boot
// script, records what it made and its RTO, and drops its images (so the
// next replication can replace the copies). A retried request gets the
// same run; a second failover of a failed-over plan is refused; the
// cleanup of a failover needs confirm too.
func TestDRFailover(t *testing.T) {
	f := newDRRunFixture(t)
	ctx := context.Background()
	c := f.srv.Client
	var e *api.Error
	if _, err := c.StartDRFailover(ctx, f.plan.ID, api.DRFailoverRequest{}); !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Field != "confirm" {
		t.Fatalf("a failover without confirm: %v", err)
	}

	// Four requests at once, each with its own Idempotency-Key, then the
	// first again with its key: the plan is failed over once. A run whose
	// request raced the winner's launches nothing and says why.
	failover := func(key string) api.DRRun {
		body, _ := json.Marshal(api.DRFailoverRequest{Confirm: true})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/v1/dr-plans/"+f.plan.ID+"/failover", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.srv.AdminToken)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return api.DRRun{}
		}
		defer resp.Body.Close()
		var run api.DRRun
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("failover: %s", resp.Status)
		} else if err := json.NewDecoder(resp.Body).Decode(&run); err != nil {
			t.Error(err)
		}
		return run
	}
	runs := make([]api.DRRun, 4)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); runs[i] = failover(fmt.Sprintf("failover-%d", i)) }()
	}
	wg.Wait()
	if again := failover("failover-0"); runs[0].ID == "" || again.ID != runs[0].ID || again.JobID != runs[0].JobID {
		t.Fatalf("a retried failover request made a second run: %+v then %+v", runs[0], again)
	}
	var first api.DRRun
	seen := map[string]bool{}
	for _, r := range runs {
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		f.wait(r.JobID)
		switch got := f.run(r.ID); {
		case got.State == api.DRRunReady && first.ID == "":
			first = *got
		case got.State == api.DRRunCleaned && strings.Contains(got.Error, "launched nothing") && len(got.Created) == 0:
		default:
			t.Fatalf("run %s of the concurrent failovers: %+v (the plan is failed over by %q)", r.ID, got, first.ID)
		}
	}
	if first.ID == "" {
		t.Fatalf("none of the concurrent failovers launched: %+v", runs)
	}
	t.Logf("%d distinct runs from 4 concurrent requests", len(seen))
	run := f.run(first.ID)
	if run.Kind != api.DRRunFailover || run.State != api.DRRunReady || run.RTOSeconds == nil || len(run.Machines) != 2 {
		t.Fatalf("the failover's run: %+v", run)
	}
	if db, app := stepIndex(run, "db", "ready"), stepIndex(run, "app", "launch"); db < 0 || app < 0 || db > app {
		t.Fatalf("app launched before db was ready: %+v", run.Steps)
	}
	plan, err := c.DRPlans().Get(ctx, f.plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	autoType := plan.Status.VMs[1].InstanceType
	instances := runInstances(t, f.endpoint, run.ID)
	ec2c := testparts.MotoEC2Client(f.endpoint)
	for _, want := range []struct {
		name, ip, instanceType, userData string
		tags                             map[string]string
	}{
		{"db", drDBAddress, "t3.large", "", map[string]string{"tier": "data", "haven:plan": f.plan.ID, "haven:kind": "failover"}},
		{"app", drAppAddress, autoType, drAppUserData, map[string]string{"Name": "app"}},
	} {
		in := instances[want.name]
		if aws.ToString(in.SubnetId) != f.prod.subnet || aws.ToString(in.PrivateIpAddress) != want.ip || string(in.InstanceType) != want.instanceType {
			t.Errorf("%s: subnet %s address %s type %s, want %s %s %s", want.name, aws.ToString(in.SubnetId), aws.ToString(in.PrivateIpAddress),
				in.InstanceType, f.prod.subnet, want.ip, want.instanceType)
		}
		tags := map[string]string{}
		for _, tag := range in.Tags {
			tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		for k, v := range want.tags {
			if tags[k] != v {
				t.Errorf("%s: tag %s = %q, want %q", want.name, k, tags[k], v)
			}
		}
		attr, err := ec2c.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{InstanceId: in.InstanceId, Attribute: ec2types.InstanceAttributeNameUserData})
		if err != nil {
			t.Fatal(err)
		}
		var userData []byte
		if attr.UserData != nil && attr.UserData.Value != nil {
			userData, _ = base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
		}
		if string(userData) != want.userData {
			t.Errorf("%s: user data %q, want %q", want.name, userData, want.userData)
		}
	}
	if autoType == "" || autoType == api.InstanceTypeAuto {
		t.Errorf("app's auto instance type was not resolved: %q", autoType)
	}
	for _, r := range leftInAWS(t, f.endpoint, run.ID) {
		if r.Kind == "image" {
			t.Errorf("the failover's image %s is still registered", r.ID)
		}
	}
	if plan.Status.LastFailover == nil || plan.Status.LastFailover.ID != run.ID || plan.Status.LastFailover.State != api.DRRunReady {
		t.Fatalf("the plan's last failover: %+v", plan.Status.LastFailover)
	}
	if _, err := c.StartDRFailover(ctx, f.plan.ID, api.DRFailoverRequest{Confirm: true}); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("a second failover: %v", err)
	}

	// Replication goes on after a failover: the copies the images were
	// registered over can be replaced.
	f.sim.WriteDiskAt(t, "db-01", 0, map[int64][]byte{3 << 20: bytes.Repeat([]byte{7}, 4096)})
	if j := f.backup(f.vms["db-01"]); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	if j := replicate(t, c, f.wait, f.plan.ID); j.State != api.JobSucceeded || resultInt(t, j, dr.ResultDeleted) == 0 {
		t.Fatalf("replication after the failover: %+v", j)
	}

	if _, err := c.CleanupDRRun(ctx, run.ID, false); !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Field != "confirm" {
		t.Fatalf("cleaning a failover up without confirm: %v", err)
	}
	cj, err := c.CleanupDRRun(ctx, run.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(cj.ID); j.State != api.JobSucceeded {
		t.Fatalf("the failover's cleanup: %+v", j)
	}
	if left := leftInAWS(t, f.endpoint, run.ID); len(left) != 0 {
		t.Fatalf("the failover's cleanup left %+v", left)
	}
}

// TestDRFailback: a failover's instances are copied back to vCenter in
// two passes. The first, while the instances run, makes the VMs (sized
// from the instance types, disks byte-equal to the volumes) and a
// recovery point of each protected VM. After a guest writes one block of
// db's root volume, the final pass stops the instances, reads from EBS
// only that block (ListChangedBlocks between the passes' snapshots),
// writes it into the same VM, powers the VMs on, and deletes its
// snapshots; the run shows failed_back, and its cleanup leaves nothing.
func TestDRFailback(t *testing.T) {
	f := newDRRunFixture(t)
	ctx := context.Background()
	c := f.srv.Client
	run, err := c.StartDRFailover(ctx, f.plan.ID, api.DRFailoverRequest{Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(run.JobID); j.State != api.JobSucceeded {
		t.Fatalf("failover: %+v", j)
	}
	var e *api.Error
	if _, err := c.FailbackDRRun(ctx, run.ID, api.DRFailbackRequest{VCenterID: f.vc.ID, PowerOn: true}); !errors.As(err, &e) || e.Field != "power_on" {
		t.Fatalf("power_on without final: %v", err)
	}
	dbDisks := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}
	appDisk := f.sim.DiskBytes(t, "app-01", 0)
	pointsBefore, err := c.ListPoints(ctx, f.vms["db-01"].ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}

	j, err := c.FailbackDRRun(ctx, run.ID, api.DRFailbackRequest{VCenterID: f.vc.ID, Names: map[string]string{"db": "db-back"}})
	if err != nil {
		t.Fatal(err)
	}
	if j = f.wait(j.ID); j.State != api.JobSucceeded || j.Result[dr.ResultVMsWritten] != "2" {
		t.Fatalf("first failback pass: %+v", j)
	}
	got := f.run(run.ID)
	fb := got.Failback
	if got.State != api.DRRunReady || fb == nil || fb.State != api.DRFailbackSynced || fb.Passes != 1 || len(fb.VMs) != 2 {
		t.Fatalf("after the first pass: %+v", got)
	}
	for i, want := range dbDisks {
		if back := f.sim.DiskBytes(t, "db-back", i); !bytes.Equal(back, want) {
			t.Fatalf("db-back disk %d differs from the failed-over volume (%d bytes, want %d)", i, len(back), len(want))
		}
	}
	if back := f.sim.DiskBytes(t, "app-failback", 0); !bytes.Equal(back, appDisk) {
		t.Fatal("app-failback's disk differs from the failed-over volume")
	}
	firstRead := fb.VMs[0].BlocksRead
	if fb.VMs[0].Machine != "db" || firstRead == 0 || len(fb.VMs[0].Snapshots) != 2 {
		t.Fatalf("db's first pass: %+v", fb.VMs[0])
	}
	backVM, err := f.c.VMByName(ctx, "db-back")
	if err != nil || backVM.InstanceUUID != fb.VMs[0].VMInstanceUUID || backVM.PowerState == "poweredOn" {
		t.Fatalf("db-back after the first pass: %+v %v", backVM, err)
	}
	pointsAfter, err := c.ListPoints(ctx, f.vms["db-01"].ID, "", 0)
	if err != nil || len(pointsAfter.Items) != len(pointsBefore.Items)+1 || pointsAfter.Items[0].ID != fb.VMs[0].PointID {
		t.Fatalf("the first pass's point of db-01: %+v %v", pointsAfter, err)
	}

	// A guest write to db's root volume in AWS: one EBS block.
	instances := runInstances(t, f.endpoint, run.ID)
	var rootVolume string
	for _, m := range instances["db"].BlockDeviceMappings {
		if aws.ToString(m.DeviceName) == aws.ToString(instances["db"].RootDeviceName) {
			rootVolume = aws.ToString(m.Ebs.VolumeId)
		}
	}
	block := bytes.Repeat([]byte("written in AWS. "), testparts.MotoBlockSize/16)
	if err := testparts.MotoWriteVolumeBlock(ctx, f.endpoint, rootVolume, 3, block); err != nil {
		t.Fatal(err)
	}
	copy(dbDisks[0][3*testparts.MotoBlockSize:], block)

	j, err = c.FailbackDRRun(ctx, run.ID, api.DRFailbackRequest{VCenterID: f.vc.ID, Final: true, PowerOn: true})
	if err != nil {
		t.Fatal(err)
	}
	if j = f.wait(j.ID); j.State != api.JobSucceeded || j.Result[dr.ResultBlocksRead] != "1" {
		t.Fatalf("final failback pass (want 1 block read, the one written): %+v", j)
	}
	got = f.run(run.ID)
	fb = got.Failback
	if got.State != api.DRRunFailedBack || fb.State != api.DRFailbackCompleted || fb.Passes != 2 || fb.VMs[0].BlocksRead != 1 || fb.VMs[1].BlocksRead != 0 {
		t.Fatalf("after the final pass: %+v %+v", got, fb)
	}
	for i, want := range dbDisks {
		if back := f.sim.DiskBytes(t, "db-back", i); !bytes.Equal(back, want) {
			t.Fatalf("db-back disk %d after the final pass differs from the volume", i)
		}
	}
	if backVM, err = f.c.VMByName(ctx, "db-back"); err != nil || backVM.PowerState != "poweredOn" || backVM.InstanceUUID != fb.VMs[0].VMInstanceUUID {
		t.Fatalf("db-back after the final pass: %+v %v", backVM, err)
	}
	for m, in := range runInstances(t, f.endpoint, run.ID) {
		if in.State.Name != ec2types.InstanceStateNameStopped {
			t.Errorf("%s's instance is %s after the final pass, want stopped", m, in.State.Name)
		}
	}
	for _, r := range leftInAWS(t, f.endpoint, run.ID) {
		if r.Kind == "snapshot" {
			t.Errorf("the failback's snapshot %s is left", r.ID)
		}
	}
	if _, err := c.FailbackDRRun(ctx, run.ID, api.DRFailbackRequest{VCenterID: f.vc.ID}); !errors.As(err, &e) || e.Status != http.StatusConflict {
		t.Fatalf("a failback after the final pass: %v", err)
	}
	cj, err := c.CleanupDRRun(ctx, run.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(cj.ID); j.State != api.JobSucceeded {
		t.Fatalf("cleanup after the failback: %+v", j)
	}
	if left := leftInAWS(t, f.endpoint, run.ID); len(left) != 0 {
		t.Fatalf("left after the cleanup: %+v", left)
	}
}

// TestDRPlanByProtectionRule: a plan entry naming a VM protection rule
// stands for the VMs the rule protects (app-01, in /DC0/vm/prod), under
// their VM names and with the entry's settings; a dependency on the entry
// orders them after db. Replication copies them, the plan's status lists
// them, and a DR test launches them after db is ready.
func TestDRPlanByProtectionRule(t *testing.T) {
	endpoint := testparts.Moto(t)
	f := newVMFixture(t, nil, func(c *server.Config) { c.SelectionEvery = 300 * time.Millisecond; c.DRPoll = 50 * time.Millisecond })
	ctx := context.Background()
	c := f.srv.Client
	rng := rand.New(rand.NewPCG(18, 18))
	f.sim.WriteDiskAt(t, "db-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
	f.sim.WriteDiskAt(t, "app-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
	rule, err := c.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: api.VMProtectionRuleSpec{
		Name: "prod", VCenterID: f.vc.ID, Folders: []string{"/DC0/vm/prod"}, PolicyID: f.policy.ID, StorageID: f.storage.ID}})
	if err != nil {
		t.Fatal(err)
	}
	app := f.waitProtected("app-01", func(pv *api.ProtectedVM) bool { return pv.RuleID == rule.ID && pv.Status == api.VMActive })
	for _, pv := range []*api.ProtectedVM{f.protect("db-01", nil), app} {
		if j := f.backup(pv); j.State != api.JobSucceeded {
			t.Fatalf("backup of %s: %+v", pv.Name, j)
		}
	}
	test := motoNetwork(t, endpoint)
	drTarget(t, c, endpoint, "dr")
	spec := api.DRPlanSpec{Name: "by-rule", TargetID: "dr", ReplicationIntervalMinutes: 60,
		VMs: []api.DRPlanVM{
			{ProtectedVMID: "db-01", Name: "db", InstanceType: "t3.small"},
			{ProtectionRuleID: "prod", BootGroup: 1, DependsOn: []string{"db"}, InstanceType: "t3.micro", PrivateIP: "10.42.1.30", SubnetID: test.subnet},
		},
		TestNetwork: &api.DRTestNetwork{VPCID: test.vpc, SubnetID: test.subnet}}
	var e *api.Error
	if _, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: spec}); !errors.As(err, &e) || e.Field != "vms[1].private_ip" {
		t.Fatalf("a rule entry with one private address: %v", err)
	}
	spec.VMs[1].PrivateIP = ""
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if plan.VMs[1].ProtectionRuleID != rule.ID || plan.VMs[1].Name != "prod" {
		t.Fatalf("the rule entry as stored: %+v", plan.VMs[1])
	}
	if j := replicate(t, c, func(id string) *api.Job { return waitJob(t, f.srv, id) }, plan.ID); j.State != api.JobSucceeded ||
		resultInt(t, j, dr.ResultVMsCopied) != 2 || resultInt(t, j, dr.ResultDisksCopied) != 3 {
		t.Fatalf("replication of db and the rule's VM: %+v", j)
	}
	plan, err = c.DRPlans().Get(ctx, plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Status.VMs) != 2 || plan.Status.VMs[1].Name != "app-01" || plan.Status.VMs[1].ProtectedVMID != app.ID || plan.Status.VMs[1].PointID == "" {
		t.Fatalf("the plan's status: %+v", plan.Status.VMs)
	}
	run, err := c.StartDRTest(ctx, plan.ID, api.DRTestRequest{KeepMinutes: 30})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, f.srv, run.JobID); j.State != api.JobSucceeded {
		t.Fatalf("the DR test: %+v", j)
	}
	got, err := c.DRRun(ctx, run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Machines) != 2 || got.Machines[1].Name != "app-01" || got.Machines[1].InstanceType != "t3.micro" {
		t.Fatalf("the test's machines: %+v", got.Machines)
	}
	if db, app := stepIndex(got, "db", "ready"), stepIndex(got, "app-01", "launch"); db < 0 || app < 0 || db > app {
		t.Fatalf("app-01 launched before db was ready: %+v", got.Steps)
	}
	cj, err := c.CleanupDRRun(ctx, run.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, f.srv, cj.ID); j.State != api.JobSucceeded {
		t.Fatalf("cleanup: %+v", j)
	}
}

// TestDRTestFromAnOlderPoint: a DR test asked to launch db from an older
// point replicates that point first (db's copy then holds it) and launches
// from it; a point of another VM is refused, naming the machine.
func TestDRTestFromAnOlderPoint(t *testing.T) {
	f := newDRRunFixture(t)
	ctx := context.Background()
	c := f.srv.Client
	old, err := c.ListPoints(ctx, f.vms["db-01"].ID, "", 0)
	if err != nil || len(old.Items) != 1 {
		t.Fatalf("db-01's points: %+v %v", old, err)
	}
	oldDisk := f.sim.DiskBytes(t, "db-01", 0)
	f.sim.WriteDiskAt(t, "db-01", 0, map[int64][]byte{2 << 20: bytes.Repeat([]byte{9}, 64<<10)})
	if j := f.backup(f.vms["db-01"]); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	if j := replicate(t, c, f.wait, f.plan.ID); j.State != api.JobSucceeded || resultInt(t, j, dr.ResultDisksCopied) != 2 {
		t.Fatalf("replication of the newer point: %+v", j)
	}
	appPoints, err := c.ListPoints(ctx, f.vms["app-01"].ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var e *api.Error
	if _, err := c.StartDRTest(ctx, f.plan.ID, api.DRTestRequest{Points: map[string]string{"db": appPoints.Items[0].ID}}); !errors.As(err, &e) ||
		e.Status != http.StatusUnprocessableEntity || e.Field != `points["db"]` {
		t.Fatalf("a point of app-01 for db: %v", err)
	}
	run, err := c.StartDRTest(ctx, f.plan.ID, api.DRTestRequest{Points: map[string]string{"db": old.Items[0].ID}})
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(run.JobID); j.State != api.JobSucceeded {
		t.Fatalf("the test from the older point: %+v", j)
	}
	got := f.run(run.ID)
	if got.Machines[0].Name != "db" || got.Machines[0].PointID != old.Items[0].ID || got.Points["db"] != old.Items[0].ID {
		t.Fatalf("db launched from %s, want the older point %s: %+v", got.Machines[0].PointID, old.Items[0].ID, got)
	}
	plan, err := c.DRPlans().Get(ctx, f.plan.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := plan.Status.VMs[0]
	if st.PointID != old.Items[0].ID {
		t.Fatalf("db's copy holds %s, want the older point", st.PointID)
	}
	if snap := snapshotBytes(t, f.endpoint, st.Disks[0].SnapshotID, len(oldDisk)); !bytes.Equal(snap, oldDisk) {
		t.Fatal("db's copy does not read back as the older point's disk")
	}
}

// TestDRTestCleanupFailureIsReported: when a kept test's instance cannot
// be terminated (termination protection turned on behind Haven's back),
// its cleanup fails, the run says cleanup_failed and lists what is left;
// once the protection is off, cleaning up again leaves nothing.
func TestDRTestCleanupFailureIsReported(t *testing.T) {
	f := newDRRunFixture(t)
	ctx := context.Background()
	c := f.srv.Client
	run, err := c.StartDRTest(ctx, f.plan.ID, api.DRTestRequest{KeepMinutes: 30})
	if err != nil {
		t.Fatal(err)
	}
	if j := f.wait(run.JobID); j.State != api.JobSucceeded {
		t.Fatalf("the kept test: %+v", j)
	}
	ec2c := testparts.MotoEC2Client(f.endpoint)
	db := f.run(run.ID).Machines[0].InstanceID
	protect := func(on bool) {
		if _, err := ec2c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{InstanceId: aws.String(db),
			DisableApiTermination: &ec2types.AttributeBooleanValue{Value: aws.Bool(on)}}); err != nil {
			t.Fatal(err)
		}
	}
	protect(true)
	cj, err := c.CleanupDRRun(ctx, run.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	j := f.wait(cj.ID)
	got := f.run(run.ID)
	if j.State != api.JobFailed || !strings.Contains(j.Error, "the cleanup left") || got.State != api.DRRunCleanupFailed ||
		!slices.ContainsFunc(got.Leftovers, func(r api.DRResource) bool { return r.Kind == "instance" && r.ID == db }) ||
		!strings.Contains(got.Error, "cleanup: ") {
		t.Fatalf("a cleanup that cannot terminate db: job %+v, run %+v", j, got)
	}
	plan, err := c.DRPlans().Get(ctx, f.plan.ID)
	if err != nil || plan.Status.LastTest == nil || plan.Status.LastTest.State != api.DRRunCleanupFailed {
		t.Fatalf("the plan's last test: %+v %v", plan.Status.LastTest, err)
	}
	protect(false)
	if cj, err = c.CleanupDRRun(ctx, run.ID, false); err != nil {
		t.Fatal(err)
	}
	if j := f.wait(cj.ID); j.State != api.JobSucceeded {
		t.Fatalf("cleaning up again: %+v", j)
	}
	if got = f.run(run.ID); got.State != api.DRRunCleaned || len(got.Leftovers) != 0 {
		t.Fatalf("after cleaning up again: %+v", got)
	}
	if left := leftInAWS(t, f.endpoint, run.ID); len(left) != 0 {
		t.Fatalf("left after cleaning up again: %+v", left)
	}
}
