package server_test

import (
	"context"
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
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
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
		child.Env = append(os.Environ(), childDRServerEnv+"="+strings.Join([]string{"--listen", "127.0.0.1:" + port, "--data-dir", dataDir,
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
	getRun := func(c *api.Client, id string) *api.DRRun {
		t.Helper()
		run, err := c.DRRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	waitHeld := func(what string) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for gate.heldRequests() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("the failover never reached %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c := start()

	// newDRRunFixture's plan, on a server process of its own: db-01 and
	// app-01 backed up and replicated through the gate.
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
	rng := rand.New(rand.NewPCG(17, 17))
	for _, name := range []string{"db-01", "app-01"} {
		vms, err := c.VMs(ctx, vc.ID, api.VMFilter{Name: name})
		if err != nil || len(vms) != 1 {
			t.Fatalf("%s in the simulator: %+v %v", name, vms, err)
		}
		pv, err := c.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: api.ProtectedVMSpec{VCenterID: vc.ID,
			InstanceUUID: vms[0].InstanceUUID, PolicyID: pol.ID, StorageID: stg.ID}})
		if err != nil {
			t.Fatal(err)
		}
		sim.WriteDiskAt(t, name, 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
		j, err := c.BackupNow(ctx, pv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j = waitFor(c, j.ID); j.State != api.JobSucceeded {
			t.Fatalf("backup of %s: %+v", name, j)
		}
	}
	prod := motoNetwork(t, moto)
	if _, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: api.AWSTargetSpec{Name: "dr", Region: testparts.MotoRegion,
		Credentials: api.AWSCredentialsAccessKey, AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey,
		Endpoint: gated, VPCID: prod.vpc, SubnetID: prod.subnet}}); err != nil {
		t.Fatal(err)
	}
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "site", TargetID: "dr", ReplicationIntervalMinutes: 60,
		VMs: []api.DRPlanVM{
			{ProtectedVMID: "db-01", Name: "db", InstanceType: "t3.large", PrivateIP: drDBAddress, SubnetID: prod.subnet, ProbePort: 22},
			{ProtectedVMID: "app-01", Name: "app", BootGroup: 1, DependsOn: []string{"db"}, PrivateIP: drAppAddress, SubnetID: prod.subnet, ProbePort: 22, UserData: drAppUserData},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	if j := replicate(t, c, func(id string) *api.Job { return waitFor(c, id) }, plan.ID); j.State != api.JobSucceeded {
		t.Fatalf("replication: %+v", j)
	}
	failover := func(c *api.Client) *api.DRRun {
		t.Helper()
		run, err := c.StartDRFailover(ctx, plan.ID, api.DRFailoverRequest{Confirm: true})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	// killAndRestart kills the server holding a request, and starts the
	// next one with the gate letting everything through and recording it.
	// The held request is never let go: a new hold leaves the old one
	// waiting until its client is gone, so what it asked never reaches
	// AWS (opening the gate instead would race the kill).
	killAndRestart := func() (*api.Client, *ec2Calls) {
		t.Helper()
		kill()
		calls := &ec2Calls{}
		gate.holdWhere(calls.pick)
		return start(), calls
	}
	// checkRun checks a run the rerun of its job finished: ready, exactly
	// one instance per machine in AWS and on the run, each instance and
	// image recorded once, no image left registered.
	checkRun := func(c *api.Client, runID string) *api.DRRun {
		t.Helper()
		j := waitFor(c, getRun(c, runID).JobID)
		if j.State != api.JobSucceeded || j.Attempt < 2 {
			t.Fatalf("the failover after the kill: %+v", j)
		}
		run := getRun(c, runID)
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
	gate.holdWhere(func(r *http.Request, body []byte) bool {
		call, ok := parseEC2Call(r, body)
		return ok && call.action == "RunInstances" && call.machine == "app"
	})
	first := failover(c)
	waitHeld("app's RunInstances")
	before := getRun(c, first.ID)
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
	c, calls := killAndRestart()
	run := checkRun(c, first.ID)
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
	cj, err := c.CleanupDRRun(ctx, first.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if j := waitFor(c, cj.ID); j.State != api.JobSucceeded {
		t.Fatalf("the first failover's cleanup: %+v", j)
	}

	// Kill 2: app's instance launched (and recorded), AWS holds its status
	// check.
	var appLaunched bool
	gate.holdWhere(func(r *http.Request, body []byte) bool {
		call, ok := parseEC2Call(r, body)
		if ok && call.action == "RunInstances" && call.machine == "app" {
			appLaunched = true
		}
		return ok && appLaunched && call.action == "DescribeInstanceStatus"
	})
	second := failover(c)
	if second.ID == first.ID {
		t.Fatalf("the failover after the cleanup continued run %s", first.ID)
	}
	waitHeld("the status check of app's instance")
	before = getRun(c, second.ID)
	appBefore := ""
	for id, m := range createdOf(t, before, "instance") {
		if m == "app" {
			appBefore = id
		}
	}
	if inAWS := instancesTagged(t, moto, second.ID); appBefore == "" || len(inAWS) != 2 || inAWS[appBefore] != "app" {
		t.Fatalf("app's instance was not recorded as soon as it existed: recorded %+v, in AWS %v", before.Created, inAWS)
	}
	c, calls = killAndRestart()
	run = checkRun(c, second.ID)
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
