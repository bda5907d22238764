package server_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
)

// childDRServerEnv is childFastRescueEnv for a server that also checks
// its DR instances every 50 ms and takes every probe port for open (no
// instance of moto is reachable): a test kills such a server part way
// through a failover and sees the next one finish it.
const childDRServerEnv = "HAVEN_TEST_CHILD_DR_SERVER_ARGS"

// The test binary turns into that server before TestMain runs (TestMain
// is shared with other files and knows no DR settings).
func init() {
	args, ok := os.LookupEnv(childDRServerEnv)
	if !ok {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cfg, err := server.ParseFlags(strings.Split(args, "\x1f"), os.Stderr)
	if err != nil {
		os.Exit(server.FlagsFailed(os.Stderr, err))
	}
	cfg.RescueAfter, cfg.JobAttempts = 2*time.Second, 5
	cfg.DRPoll = 50 * time.Millisecond
	cfg.DRDial = func(context.Context, string) error { return nil }
	code := server.Run(ctx, cfg, os.Stderr)
	stop()
	os.Exit(code)
}

// ec2Call is an EC2 Query API request as it goes through a requestGate:
// its action, the machine its tags name (haven:machine, for the calls
// that create something) and the first instance it names.
type ec2Call struct{ action, machine, instance string }

func parseEC2Call(r *http.Request, body []byte) (ec2Call, bool) {
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return ec2Call{}, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") == "" {
		return ec2Call{}, false
	}
	c := ec2Call{action: form.Get("Action"), instance: form.Get("InstanceId.1")}
	for k, v := range form {
		// TagSpecification.N.Tag.M.Key=haven:machine, and its .Value.
		if strings.HasSuffix(k, ".Key") && slices.Contains(v, engdr.TagMachine) {
			c.machine = form.Get(strings.TrimSuffix(k, ".Key") + ".Value")
		}
	}
	return c, true
}

// ec2Calls records the EC2 calls a gate lets through (it holds none).
type ec2Calls struct {
	mu    sync.Mutex
	calls []ec2Call
}

func (l *ec2Calls) pick(r *http.Request, body []byte) bool {
	if c, ok := parseEC2Call(r, body); ok {
		l.mu.Lock()
		l.calls = append(l.calls, c)
		l.mu.Unlock()
	}
	return false
}

// made lists the machines of the calls of an action, in order.
func (l *ec2Calls) made(action string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, c := range l.calls {
		if c.action == action {
			out = append(out, c.machine)
		}
	}
	return out
}

// instancesTagged lists every instance tagged with run, whatever its
// state (terminated twins count too), as instance ID -> machine.
func instancesTagged(t *testing.T, endpoint, run string) map[string]string {
	t.Helper()
	out, err := testparts.MotoEC2Client(endpoint).DescribeInstances(t.Context(), &ec2.DescribeInstancesInput{
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + engdr.TagRun), Values: []string{run}}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			got[aws.ToString(in.InstanceId)] = ""
			for _, tag := range in.Tags {
				if aws.ToString(tag.Key) == engdr.TagMachine {
					got[aws.ToString(in.InstanceId)] = aws.ToString(tag.Value)
				}
			}
		}
	}
	return got
}

// imagesTagged lists the images tagged with run that are still
// registered.
func imagesTagged(t *testing.T, endpoint, run string) []string {
	t.Helper()
	out, err := testparts.MotoEC2Client(endpoint).DescribeImages(t.Context(), &ec2.DescribeImagesInput{Owners: []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("tag:" + engdr.TagRun), Values: []string{run}}}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, im := range out.Images {
		if im.State != ec2types.ImageStateDeregistered {
			ids = append(ids, aws.ToString(im.ImageId))
		}
	}
	return ids
}

// createdOf lists a run's recorded resources of a kind, as ID -> machine,
// failing on one recorded twice.
func createdOf(t *testing.T, run *api.DRRun, kind string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, r := range run.Created {
		if r.Kind != kind {
			continue
		}
		if _, twice := got[r.ID]; twice {
			t.Errorf("run %s records %s %s twice: %+v", run.ID, kind, r.ID, run.Created)
		}
		got[r.ID] = r.Machine
	}
	return got
}

// blockRead tells an EBS GetSnapshotBlock request (GET
// /snapshots/{id}/blocks/{index}) as it goes through a requestGate.
func blockRead(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/snapshots/") && strings.Contains(r.URL.Path, "/blocks/")
}

// runSnapshots lists the snapshots of a machine of a run that AWS still
// has (engine/dr.Inventory, by the run's tag), sorted.
func runSnapshots(t *testing.T, endpoint, run, machine string) []string {
	t.Helper()
	var ids []string
	for _, r := range leftInAWS(t, endpoint, run) {
		if r.Kind == "snapshot" && r.Machine == machine {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// drCrashFixture is newDRRunFixture's plan on a server process of its
// own, which a test kills with SIGKILL and starts again (on the same data
// dir and database): db-01 and app-01 backed up, and a plan of db, then
// app, which depends on it, replicated through a requestGate in front of
// moto, with a test network.
type drCrashFixture struct {
	t    *testing.T
	moto string // moto itself, past the gate
	gate *requestGate
	sim  *testparts.VCSimEnv

	dbURL, dataDir, port string
	logFile              *os.File
	child                *exec.Cmd
	// c is a client of the server process running now.
	c *api.Client

	vc         *api.VCenter
	vms        map[string]*api.ProtectedVM // by VM name
	prod, test drNetwork
	plan       *api.DRPlan
}

func newDRCrashFixture(t *testing.T) *drCrashFixture {
	ctx := context.Background()
	moto := testparts.Moto(t)
	gate, gated := newRequestGate(t, moto)
	f := &drCrashFixture{t: t, moto: moto, gate: gate, sim: testparts.VCSim(t), dbURL: testparts.PostgresURL(t),
		dataDir: t.TempDir(), port: freePort(t), vms: map[string]*api.ProtectedVM{}}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	f.logFile = logFile
	t.Cleanup(func() {
		if f.child != nil && f.child.ProcessState == nil {
			f.child.Process.Signal(syscall.SIGTERM)
			f.child.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("server log:\n%s", b[max(0, len(b)-30000):])
		}
		logFile.Close()
	})
	f.start()
	c := f.c
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "vms", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "vm-daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	f.vc, err = c.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim", URL: f.sim.URL,
		Username: f.sim.Username, Password: f.sim.Password, Thumbprint: f.sim.Thumbprint}})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(17, 17))
	for _, name := range []string{"db-01", "app-01"} {
		vms, err := c.VMs(ctx, f.vc.ID, api.VMFilter{Name: name})
		if err != nil || len(vms) != 1 {
			t.Fatalf("%s in the simulator: %+v %v", name, vms, err)
		}
		pv, err := c.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: api.ProtectedVMSpec{VCenterID: f.vc.ID,
			InstanceUUID: vms[0].InstanceUUID, PolicyID: pol.ID, StorageID: stg.ID}})
		if err != nil {
			t.Fatal(err)
		}
		f.vms[name] = pv
		f.sim.WriteDiskAt(t, name, 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
		j, err := c.BackupNow(ctx, pv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j = f.waitFor(j.ID); j.State != api.JobSucceeded {
			t.Fatalf("backup of %s: %+v", name, j)
		}
	}
	f.prod, f.test = motoNetwork(t, moto), motoNetwork(t, moto)
	if _, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: api.AWSTargetSpec{Name: "dr", Region: testparts.MotoRegion,
		Credentials: api.AWSCredentialsAccessKey, AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey,
		Endpoint: gated, VPCID: f.prod.vpc, SubnetID: f.prod.subnet}}); err != nil {
		t.Fatal(err)
	}
	f.plan, err = c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "site", TargetID: "dr", ReplicationIntervalMinutes: 60,
		VMs: []api.DRPlanVM{
			{ProtectedVMID: "db-01", Name: "db", InstanceType: "t3.large", PrivateIP: drDBAddress, SubnetID: f.prod.subnet, ProbePort: 22},
			{ProtectedVMID: "app-01", Name: "app", BootGroup: 1, DependsOn: []string{"db"}, PrivateIP: drAppAddress, SubnetID: f.prod.subnet, ProbePort: 22, UserData: drAppUserData},
		},
		TestNetwork: &api.DRTestNetwork{VPCID: f.test.vpc, SubnetID: f.test.subnet}}})
	if err != nil {
		t.Fatal(err)
	}
	if j := replicate(t, c, f.waitFor, f.plan.ID); j.State != api.JobSucceeded {
		t.Fatalf("replication: %+v", j)
	}
	return f
}

// start starts a server process and points f.c at it.
func (f *drCrashFixture) start() {
	f.t.Helper()
	f.child = exec.Command(os.Args[0], "-test.run=^$")
	f.child.Env = append(os.Environ(), childDRServerEnv+"="+strings.Join([]string{"--listen", "127.0.0.1:" + f.port, "--data-dir", f.dataDir,
		"--database-url", f.dbURL}, "\x1f"))
	f.child.Stdout, f.child.Stderr = f.logFile, f.logFile
	if err := f.child.Start(); err != nil {
		f.t.Fatal(err)
	}
	endpoint := "http://127.0.0.1:" + f.port
	token := waitForServer(f.t, endpoint, f.dataDir, f.logFile.Name())
	c, err := api.NewClient(api.ClientOptions{Endpoint: endpoint, Token: token})
	if err != nil {
		f.t.Fatal(err)
	}
	f.c = c
}

// killAndRestart kills the server holding a request, and starts the next
// one with the gate letting everything through and recording it. The
// held request is never let go: a new hold leaves the old one waiting
// until its client is gone, so what it asked never reaches AWS (opening
// the gate instead would race the kill).
func (f *drCrashFixture) killAndRestart() *ec2Calls {
	f.t.Helper()
	if err := f.child.Process.Kill(); err != nil {
		f.t.Fatal(err)
	}
	_ = f.child.Wait()
	calls := &ec2Calls{}
	f.gate.holdWhere(calls.pick)
	f.start()
	return calls
}

func (f *drCrashFixture) waitFor(id string) *api.Job {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	j, err := f.c.WaitJob(ctx, id, 100*time.Millisecond)
	if err != nil {
		f.t.Fatalf("waiting for job %s: %v (%+v)", id, err, j)
	}
	return j
}

func (f *drCrashFixture) run(id string) *api.DRRun {
	f.t.Helper()
	run, err := f.c.DRRun(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return run
}

// waitHeld waits until the gate holds a request.
func (f *drCrashFixture) waitHeld(what string) {
	f.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for f.gate.heldRequests() == 0 {
		if time.Now().After(deadline) {
			f.t.Fatalf("the job never reached %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// points lists a protected VM's recovery points, newest first.
func (f *drCrashFixture) points(vm string) []api.Point {
	f.t.Helper()
	list, err := f.c.ListPoints(context.Background(), f.vms[vm].ID, "", 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return list.Items
}

// TestDRFailoverSurvivesKilledServers: a server process failing a plan
// over (db, then app, which depends on it) is killed with SIGKILL part
// way, twice, and each time the next process's rerun of the job continues
// the same run to "ready" without a twin. Killed while AWS holds app's
// RunInstances (db up, app's image registered), the rerun launches app
// once, reuses db's instance and both images, and registers nothing. Killed
// while AWS holds the status check of app's launched instance, the rerun
// launches nothing. Each time: exactly one instance per machine carries
// the run's tag (in any state), the run's machines name those instances,
// its created list holds each instance and image once, and none of its
// images is left registered.
func TestDRFailoverSurvivesKilledServers(t *testing.T) {
	ctx := context.Background()
	f := newDRCrashFixture(t)
	moto := f.moto
	failover := func() *api.DRRun {
		t.Helper()
		run, err := f.c.StartDRFailover(ctx, f.plan.ID, api.DRFailoverRequest{Confirm: true})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	// checkRun checks a run the rerun of its job finished: ready, exactly
	// one instance per machine in AWS and on the run, each instance and
	// image recorded once, no image left registered.
	checkRun := func(runID string) *api.DRRun {
		t.Helper()
		j := f.waitFor(f.run(runID).JobID)
		if j.State != api.JobSucceeded || j.Attempt < 2 {
			t.Fatalf("the failover after the kill: %+v", j)
		}
		run := f.run(runID)
		if run.State != api.DRRunReady || run.Passed == nil || !*run.Passed || run.Error != "" || len(run.Machines) != 2 {
			t.Fatalf("the run after the kill: %+v", run)
		}
		inAWS := instancesTagged(t, moto, runID)
		byMachine := map[string]string{}
		for id, m := range inAWS {
			if byMachine[m] != "" {
				t.Errorf("machine %q has twins in AWS: %s and %s", m, byMachine[m], id)
			}
			byMachine[m] = id
		}
		if len(inAWS) != 2 || byMachine["db"] == "" || byMachine["app"] == "" {
			t.Fatalf("the run's instances in AWS: %v, want one of db and one of app", inAWS)
		}
		for _, m := range run.Machines {
			if m.InstanceID == "" || m.InstanceID != byMachine[m.Name] || m.ReadyAt == nil {
				t.Errorf("the run's machine %+v, but its instance in AWS is %s", m, byMachine[m.Name])
			}
		}
		if created := createdOf(t, run, "instance"); len(created) != 2 || created[byMachine["db"]] != "db" || created[byMachine["app"]] != "app" {
			t.Errorf("the run recorded instances %v, want %v", created, inAWS)
		}
		images := createdOf(t, run, "image")
		if len(images) != 2 {
			t.Errorf("the run recorded images %v, want one of db and one of app", images)
		}
		for _, m := range run.Machines {
			if images[m.ImageID] != m.Name {
				t.Errorf("machine %s launched from image %s, which the run did not record as its (%v)", m.Name, m.ImageID, images)
			}
		}
		if left := imagesTagged(t, moto, runID); len(left) != 0 {
			t.Errorf("the run's images %v are still registered", left)
		}
		for _, r := range leftInAWS(t, moto, runID) {
			if r.Kind == "image" {
				t.Errorf("the run's image %s is still registered", r.ID)
			}
		}
		return run
	}

	// Kill 1: AWS holds app's RunInstances; db is up, app's image is
	// registered.
	f.gate.holdWhere(func(r *http.Request, body []byte) bool {
		call, ok := parseEC2Call(r, body)
		return ok && call.action == "RunInstances" && call.machine == "app"
	})
	first := failover()
	f.waitHeld("app's RunInstances")
	before := f.run(first.ID)
	dbBefore := instancesTagged(t, moto, first.ID)
	if len(dbBefore) != 1 || slices.Collect(maps.Values(dbBefore))[0] != "db" {
		t.Fatalf("instances of the run while app's launch is held: %v, want db's alone", dbBefore)
	}
	appImage := ""
	for id, m := range createdOf(t, before, "image") {
		if m == "app" {
			appImage = id
		}
	}
	if appImage == "" || len(createdOf(t, before, "instance")) != 1 {
		t.Fatalf("the run did not record db's instance and app's image before app's launch: %+v", before.Created)
	}
	calls := f.killAndRestart()
	run := checkRun(first.ID)
	if _, ok := dbBefore[run.Machines[0].InstanceID]; !ok || run.Machines[0].Name != "db" {
		t.Errorf("the rerun did not reuse db's instance %v: %+v", dbBefore, run.Machines[0])
	}
	if run.Machines[1].ImageID != appImage {
		t.Errorf("the rerun launched app from %s, not the image registered before the kill, %s", run.Machines[1].ImageID, appImage)
	}
	if got := calls.made("RunInstances"); !slices.Equal(got, []string{"app"}) {
		t.Errorf("the rerun called RunInstances for %q, want app's alone", got)
	}
	if got := calls.made("RegisterImage"); len(got) != 0 {
		t.Errorf("the rerun registered images for %q, want none", got)
	}
	// The RTO covers the outage from the first attempt's start, not the
	// rerun alone.
	if outage := run.Machines[1].ReadyAt.Sub(*run.StartedAt).Seconds(); run.StartedAt == nil || *run.RTOSeconds < outage-0.01 ||
		run.Machines[1].ReadyAt.Sub(run.CreatedAt).Seconds() > *run.RTOSeconds+5 {
		t.Errorf("run %s after a kill: RTO %.1f s, but %.1f s from the first start to the last machine ready", run.ID, *run.RTOSeconds, outage)
	}
	// db was launched before the kill: its launch time is that attempt's
	// (AWS's LaunchTime), not the rerun's.
	if i := stepIndex(run, "app", "launch"); i < 0 || run.Machines[0].LaunchedAt == nil || !run.Machines[0].LaunchedAt.Before(run.Steps[i].At.Add(-time.Second)) {
		t.Errorf("db's launch time %v is not from before the kill: %+v", run.Machines[0].LaunchedAt, run.Steps)
	}

	// Clean the failover up, then fail over again.
	cj, err := f.c.CleanupDRRun(ctx, first.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if j := f.waitFor(cj.ID); j.State != api.JobSucceeded {
		t.Fatalf("the first failover's cleanup: %+v", j)
	}

	// Kill 2: app's instance launched (and recorded), AWS holds its status
	// check.
	f.gate.holdWhere(holdStatusAfterAppLaunch())
	second := failover()
	if second.ID == first.ID {
		t.Fatalf("the failover after the cleanup continued run %s", first.ID)
	}
	f.waitHeld("the status check of app's instance")
	before = f.run(second.ID)
	appBefore := ""
	for id, m := range createdOf(t, before, "instance") {
		if m == "app" {
			appBefore = id
		}
	}
	if inAWS := instancesTagged(t, moto, second.ID); appBefore == "" || len(inAWS) != 2 || inAWS[appBefore] != "app" {
		t.Fatalf("app's instance was not recorded as soon as it existed: recorded %+v, in AWS %v", before.Created, inAWS)
	}
	calls = f.killAndRestart()
	run = checkRun(second.ID)
	if run.Machines[1].Name != "app" || run.Machines[1].InstanceID != appBefore {
		t.Errorf("the rerun did not reuse app's instance %s: %+v", appBefore, run.Machines[1])
	}
	if got := calls.made("RunInstances"); len(got) != 0 {
		t.Errorf("the rerun called RunInstances for %q, want none", got)
	}
	if got := calls.made("RegisterImage"); len(got) != 0 {
		t.Errorf("the rerun registered images for %q, want none", got)
	}
}

// holdStatusAfterAppLaunch is a gate's pick that holds the status checks
// (DescribeInstanceStatus) once app's RunInstances went through: db is
// ready before app launches, so they are app's.
func holdStatusAfterAppLaunch() func(r *http.Request, body []byte) bool {
	appLaunched := false
	return func(r *http.Request, body []byte) bool {
		call, ok := parseEC2Call(r, body)
		if ok && call.action == "RunInstances" && call.machine == "app" {
			appLaunched = true
		}
		return ok && appLaunched && call.action == "DescribeInstanceStatus"
	}
}

// TestDRFailbackSurvivesKilledServers: server processes running DR jobs
// are killed with SIGKILL part way, and the next process's reruns end
// each job in a true state.
//
// After a failover of the plan, its first failback pass to vCenter runs
// alongside a DR test of a second plan of the same VMs; the server is
// killed while AWS holds the reads (GetSnapshotBlock) of app's snapshot,
// a few having gone through (db's VM written and its point committed),
// and the status check of the test's app instance. The test's rerun
// launches nothing more, and ends passed and cleaned, with nothing of it
// left in AWS. The second pass (after a guest wrote one block of each
// root volume in AWS) is killed while AWS holds app's CreateSnapshot,
// db's part of the pass done. Each pass's rerun ends succeeded: exactly
// one VM of each machine on vCenter (by name), whose disks hold the
// volumes' data; exactly one new recovery point of each protected VM (the
// rerun does not commit db's again); it snapshots only what the dead
// attempt had not (found by tag), and leaves of each machine's failback
// snapshots exactly the pass's own. A final pass then powers the VMs on
// and deletes every failback snapshot.
func TestDRFailbackSurvivesKilledServers(t *testing.T) {
	ctx := context.Background()
	f := newDRCrashFixture(t)
	moto := f.moto
	testPlan, err := f.c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "site-tests", TargetID: "dr", ReplicationIntervalMinutes: 60,
		VMs: []api.DRPlanVM{
			{ProtectedVMID: "db-01", Name: "db", InstanceType: "t3.large", ProbePort: 22},
			{ProtectedVMID: "app-01", Name: "app", BootGroup: 1, DependsOn: []string{"db"}, InstanceType: "t3.large", ProbePort: 22},
		},
		TestNetwork: &api.DRTestNetwork{VPCID: f.test.vpc, SubnetID: f.test.subnet}}})
	if err != nil {
		t.Fatal(err)
	}
	if j := replicate(t, f.c, f.waitFor, testPlan.ID); j.State != api.JobSucceeded {
		t.Fatalf("replication of the second plan: %+v", j)
	}

	// The failover, and what its volumes hold: the VMs' disks as backed up.
	fo, err := f.c.StartDRFailover(ctx, f.plan.ID, api.DRFailoverRequest{Confirm: true})
	if err != nil {
		t.Fatal(err)
	}
	if j := f.waitFor(fo.JobID); j.State != api.JobSucceeded {
		t.Fatalf("failover: %+v", j)
	}
	vmOf := map[string]string{"db": "db-01", "app": "app-01"}
	disks := map[string][][]byte{
		"db":  {f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)},
		"app": {f.sim.DiskBytes(t, "app-01", 0)},
	}
	vcenter, err := vmware.Connect(ctx, vmware.Config{URL: f.sim.URL, Username: f.sim.Username, Password: f.sim.Password, Thumbprint: f.sim.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vcenter.Logout(context.Background()) })
	pointCounts := func() map[string]int {
		return map[string]int{"db-01": len(f.points("db-01")), "app-01": len(f.points("app-01"))}
	}
	// checkPass checks a pass: its job succeeded (on a rerun, if killed)
	// having written both VMs; each machine's VM is on vCenter once under
	// its name, the one the run records, with the volumes' data (powered
	// on after the final pass); each protected VM has one point more
	// than before, the one the pass records; each machine's failback
	// snapshots left in AWS are the pass's own (none after the final).
	checkPass := func(jobID string, pass int, killed, final bool, pointsBefore map[string]int) *api.DRRun {
		t.Helper()
		j := f.waitFor(jobID)
		if j.State != api.JobSucceeded || j.Result[dr.ResultVMsWritten] != "2" || (killed && j.Attempt < 2) {
			t.Fatalf("failback pass %d: %+v", pass, j)
		}
		run := f.run(fo.ID)
		fb, state := run.Failback, api.DRFailbackSynced
		if final {
			state = api.DRFailbackCompleted
		}
		if fb == nil || fb.State != state || fb.Passes != pass || fb.JobID != jobID || fb.Error != "" || len(fb.VMs) != 2 {
			t.Fatalf("the run after failback pass %d: %+v", pass, fb)
		}
		all, err := vcenter.VMs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pointsAfter := pointCounts()
		for i, m := range []string{"db", "app"} {
			st := fb.VMs[i]
			if st.Machine != m || st.VMName != m+"-failback" || st.VMPending || st.PassJobID != jobID {
				t.Errorf("pass %d: %s's failback %+v", pass, m, st)
				continue
			}
			var named []vmware.VM
			for _, vm := range all {
				if vm.Name == st.VMName {
					named = append(named, vm)
				}
			}
			if len(named) != 1 || named[0].InstanceUUID != st.VMInstanceUUID {
				t.Errorf("pass %d: VMs named %s on vCenter: %+v, want one, %s", pass, st.VMName, named, st.VMInstanceUUID)
			} else if on := named[0].PowerState == "poweredOn"; on != final || st.PoweredOn != final {
				t.Errorf("pass %d: %s is %s (recorded powered on: %v)", pass, st.VMName, named[0].PowerState, st.PoweredOn)
			}
			for k, want := range disks[m] {
				if got := f.sim.DiskBytes(t, st.VMName, k); !bytes.Equal(got, want) {
					t.Errorf("pass %d: %s's disk %d differs from %s's volume", pass, st.VMName, k, m)
				}
			}
			vm := vmOf[m]
			if pts := f.points(vm); pointsAfter[vm] != pointsBefore[vm]+1 || pts[0].ID != st.PointID {
				t.Errorf("pass %d made %d points of %s (newest %s), want one, %s", pass, pointsAfter[vm]-pointsBefore[vm], vm, pts[0].ID, st.PointID)
			}
			want := slices.Sorted(slices.Values(st.Snapshots))
			if final && len(want) != 0 || !final && len(want) != len(disks[m]) {
				t.Errorf("pass %d: %s's recorded snapshots %v", pass, m, st.Snapshots)
			}
			if got := runSnapshots(t, moto, fo.ID, m); !slices.Equal(got, want) {
				t.Errorf("pass %d: %s's failback snapshots in AWS %v, want the pass's own, %v", pass, m, got, want)
			}
		}
		return run
	}

	// Kill 1: AWS holds the reads of app's snapshot after a few went
	// through (the first pass), and the status check of the test's app
	// instance (db's is ready before app launches). The failback makes
	// no instance and the test no snapshot, so the calls are told apart.
	var readsHeld, statusHeld atomic.Bool
	appLaunched, appSnapshotted, appReads := false, false, 0
	f.gate.holdWhere(func(r *http.Request, body []byte) bool {
		call, ok := parseEC2Call(r, body)
		switch {
		case ok && call.action == "RunInstances" && call.machine == "app":
			appLaunched = true
		case ok && call.action == "CreateSnapshot" && call.machine == "app":
			appSnapshotted = true
		case ok && appLaunched && call.action == "DescribeInstanceStatus":
			statusHeld.Store(true)
			return true
		case appSnapshotted && blockRead(r):
			if appReads++; appReads > 3 {
				readsHeld.Store(true)
				return true
			}
		}
		return false
	})
	points := pointCounts()
	pass, err := f.c.FailbackDRRun(ctx, fo.ID, api.DRFailbackRequest{VCenterID: f.vc.ID})
	if err != nil {
		t.Fatal(err)
	}
	test, err := f.c.StartDRTest(ctx, testPlan.ID, api.DRTestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); !readsHeld.Load() || !statusHeld.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("held app's snapshot reads: %v; the status check of the test's app: %v", readsHeld.Load(), statusHeld.Load())
		}
	}
	if fb := f.run(fo.ID).Failback; fb == nil || len(fb.VMs) == 0 || fb.VMs[0].PassJobID != pass.ID || fb.VMs[0].VMInstanceUUID == "" {
		t.Fatalf("db's VM was not written before app's snapshot was read: %+v", fb)
	}
	if now := pointCounts(); now["db-01"] != points["db-01"]+1 || now["app-01"] != points["app-01"] {
		t.Fatalf("points before the kill: %v, then %v; want one more of db-01 alone", points, now)
	}
	appSnapshot := runSnapshots(t, moto, fo.ID, "app")
	if len(appSnapshot) != 1 {
		t.Fatalf("app's snapshots while they are read: %v", appSnapshot)
	}
	launched := instancesTagged(t, moto, test.ID)
	if len(launched) != 2 {
		t.Fatalf("the test's instances while app's status check is held: %v, want db's and app's", launched)
	}
	calls := f.killAndRestart()

	// The test: continued, passed, cleaned.
	if j := f.waitFor(test.JobID); j.State != api.JobSucceeded || j.Attempt < 2 || j.Result[dr.ResultLeftovers] != "0" {
		t.Fatalf("the DR test after the kill: %+v", j)
	}
	run := f.run(test.ID)
	if run.State != api.DRRunCleaned || run.Passed == nil || !*run.Passed || run.Error != "" || run.CleanedAt == nil || len(run.Leftovers) != 0 {
		t.Fatalf("the DR test's run after the kill: %+v", run)
	}
	if got := instancesTagged(t, moto, test.ID); !maps.Equal(got, launched) {
		t.Errorf("the test's instances after the rerun: %v, want those launched before the kill, %v", got, launched)
	}
	if got := calls.made("RunInstances"); len(got) != 0 {
		t.Errorf("the rerun of the test called RunInstances for %q, want none", got)
	}
	if left := leftInAWS(t, moto, test.ID); len(left) != 0 {
		t.Errorf("the DR test killed and rerun left %+v in AWS", left)
	}
	// The first pass.
	run = checkPass(pass.ID, 1, true, false, points)
	if got := calls.made("CreateSnapshot"); len(got) != 0 {
		t.Errorf("the rerun of pass 1 snapshotted %q again, want nothing", got)
	}
	if !slices.Equal(run.Failback.VMs[1].Snapshots, appSnapshot) {
		t.Errorf("the rerun read app from %v, not the snapshot made before the kill, %v", run.Failback.VMs[1].Snapshots, appSnapshot)
	}

	// A guest writes one block of each root volume in AWS.
	for i, m := range []string{"db", "app"} {
		in := runInstances(t, moto, fo.ID)[m]
		var root string
		for _, bd := range in.BlockDeviceMappings {
			if aws.ToString(bd.DeviceName) == aws.ToString(in.RootDeviceName) {
				root = aws.ToString(bd.Ebs.VolumeId)
			}
		}
		index := int32(3 + 2*i)
		block := bytes.Repeat([]byte(fmt.Sprintf("%-16s", m+" wrote this")), testparts.MotoBlockSize/16)
		if err := testparts.MotoWriteVolumeBlock(ctx, moto, root, index, block); err != nil {
			t.Fatal(err)
		}
		copy(disks[m][0][int(index)*testparts.MotoBlockSize:], block)
	}

	// Kill 2: the second pass is the final one, with power_on. AWS holds
	// app's CreateSnapshot; db's part of the pass is done: its instance
	// stopped, its VM written and powered on, its snapshots dropped. The
	// rerun must not write over the running VM.
	points = pointCounts()
	f.gate.holdWhere(func(r *http.Request, body []byte) bool {
		call, ok := parseEC2Call(r, body)
		return ok && call.action == "CreateSnapshot" && call.machine == "app"
	})
	pass, err = f.c.FailbackDRRun(ctx, fo.ID, api.DRFailbackRequest{VCenterID: f.vc.ID, Final: true, PowerOn: true})
	if err != nil {
		t.Fatal(err)
	}
	f.waitHeld("app's CreateSnapshot")
	fb := f.run(fo.ID).Failback
	if fb == nil || len(fb.VMs) != 2 || fb.VMs[0].PassJobID != pass.ID || fb.VMs[0].BlocksRead != 1 {
		t.Fatalf("db's part of pass 2 was not done before app's snapshot (want 1 block read): %+v", fb)
	}
	if got := runSnapshots(t, moto, fo.ID, "db"); !slices.Equal(got, slices.Sorted(slices.Values(fb.VMs[0].Snapshots))) {
		t.Fatalf("db's snapshots before the kill: %v, want pass 2's alone, %v", got, fb.VMs[0].Snapshots)
	}
	if now := pointCounts(); now["db-01"] != points["db-01"]+1 || now["app-01"] != points["app-01"] {
		t.Fatalf("points before the kill: %v, then %v; want one more of db-01 alone", points, now)
	}
	calls = f.killAndRestart()
	if run = checkPass(pass.ID, 2, true, true, points); run.State != api.DRRunFailedBack {
		t.Errorf("the run after the final pass: %s", run.State)
	}
	if got := calls.made("CreateSnapshot"); !slices.Equal(got, []string{"app"}) {
		t.Errorf("the rerun of pass 2 snapshotted %q, want app alone", got)
	}
	if fb := run.Failback; fb.VMs[0].BlocksRead != 1 || fb.VMs[1].BlocksRead != 1 {
		t.Errorf("pass 2 read %d blocks of db and %d of app, want the one written of each", fb.VMs[0].BlocksRead, fb.VMs[1].BlocksRead)
	}

	cj, err := f.c.CleanupDRRun(ctx, fo.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if j := f.waitFor(cj.ID); j.State != api.JobSucceeded {
		t.Fatalf("cleanup after the failback: %+v", j)
	}
	if left := leftInAWS(t, moto, fo.ID); len(left) != 0 {
		t.Fatalf("left after the cleanup: %+v", left)
	}
}
