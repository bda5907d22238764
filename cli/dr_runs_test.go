package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// drSite is the DR plan "site" of db-01 (t3.small, probed on port 22):
// db-01 backed up (point) and replicated to moto, a production subnet in
// the target "dr" and a test subnet in the plan's test network.
type drSite struct {
	plan                   *api.DRPlan
	point                  string
	prodSubnet, testSubnet string
}

func (d *drSetup) site(t *testing.T) drSite {
	t.Helper()
	ctx := context.Background()
	c := d.srv.Client
	d.sim.WriteDisk(t, "db-01", 0, 1<<20, bytes.Repeat([]byte("db-01 data"), 50_000))
	j, err := c.BackupNow(ctx, d.vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = c.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil || j.State != api.JobSucceeded {
		t.Fatalf("backup of db-01: %v %+v", err, j)
	}
	point := j.PointID
	prodVPC, prodSubnet := testparts.MotoNetwork(t, d.endpoint)
	testVPC, testSubnet := testparts.MotoNetwork(t, d.endpoint)
	target := d.targetSpec()
	target.VPCID, target.SubnetID = prodVPC, prodSubnet
	if _, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: target}); err != nil {
		t.Fatal(err)
	}
	plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: api.DRPlanSpec{Name: "site", TargetID: "dr", ReplicationIntervalMinutes: 60,
		VMs:         []api.DRPlanVM{{ProtectedVMID: "db-01", InstanceType: "t3.small", ProbePort: 22}},
		TestNetwork: &api.DRTestNetwork{VPCID: testVPC, SubnetID: testSubnet}}})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = c.ReplicateDRPlan(ctx, plan.ID); err == nil {
		j, err = c.WaitJob(ctx, j.ID, 100*time.Millisecond)
	}
	if err != nil || j.State != api.JobSucceeded || j.Result["disks_copied"] == "0" {
		t.Fatalf("replication of site: %v %+v", err, j)
	}
	return drSite{plan: plan, point: point, prodSubnet: prodSubnet, testSubnet: testSubnet}
}

// TestDRRuns drives DR tests, a failover and their cleanups through
// `haven dr-plans test|failover` and `haven dr-runs`, against a plan of
// db-01 (backed up from vcsim, replicated to moto): a test that passes and
// is removed, one kept and cleaned up by hand, one whose machine dies
// (exit 1 with the job's error), a failover refused without --confirm and
// then run from a named point, and its cleanup, refused without --confirm.
func TestDRRuns(t *testing.T) {
	ctx := context.Background()
	var dies atomic.Bool
	var d *drSetup
	d = newDRSetup(t, func(c *server.Config) {
		c.DRPoll = 50 * time.Millisecond
		// No instance on moto answers a probe: the port "answers"
		// unless the test makes the machine die.
		c.DRDial = func(ctx context.Context, addr string) error {
			if !dies.Load() {
				return nil
			}
			if err := testparts.MotoTerminateAt(ctx, d.endpoint, addr[:strings.LastIndexByte(addr, ':')]); err != nil {
				return err
			}
			return errors.New("connection refused (forced by the test)")
		}
	})
	c := d.srv.Client
	s := d.site(t)
	plan, point, prodSubnet, testSubnet := s.plan, s.point, s.prodSubnet, s.testSubnet
	getRun := func(id string) *api.DRRun {
		t.Helper()
		run, err := c.DRRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	runLine := regexp.MustCompile(`(?m)^DR test run (\S+) of plan site (\S+), (passed|failed)`)
	// runOf is the run a test's outcome names, read back through the API.
	runOf := func(out string) *api.DRRun {
		t.Helper()
		m := runLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no run in %q", out)
		}
		return getRun(m[1])
	}

	// A test that passes: its machine in the test subnet, then removed.
	code, out, _ := haven(t, "dr-plans", "test", "site", "--wait")
	if code != 0 || !strings.Contains(out, "DR test run ") || !strings.Contains(out, " cleaned, passed, RTO ") {
		t.Fatalf("dr-plans test site --wait: exit %d, printed %q", code, out)
	}
	passed := runOf(out)
	if !regexp.MustCompile(`job ` + passed.JobID + ` (queued|launching)`).MatchString(out) {
		t.Errorf("dr-plans test --wait showed no progress of job %s: %q", passed.JobID, out)
	}
	m := passed.Machines[0]
	if m.InstanceID == "" || m.SubnetID != testSubnet || !regexp.MustCompile(`db-01\s+`+m.InstanceID+`\s+`+regexp.QuoteMeta(m.PrivateIP)+`\s+t3\.small\s+`+point).MatchString(out) {
		t.Fatalf("the test's machine %+v is not printed as launched in the test subnet: %q", m, out)
	}
	code, out, _ = haven(t, "dr-runs", "list", "--plan", "site")
	if code != 0 || !regexp.MustCompile(passed.ID+`\s+site\s+test\s+cleaned\s+passed\s+\S+s\s+1\s`).MatchString(out) {
		t.Fatalf("dr-runs list --plan site: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "dr-runs", "list", "--kind", "failover", "-o", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("dr-runs list --kind failover (there is none yet): exit %d, printed %q", code, out)
	}
	if code, _, errOut := haven(t, "dr-runs", "list", "--plan", "nowhere"); code != 1 || !strings.Contains(errOut, "(see --plan)") {
		t.Fatalf("dr-runs list --plan nowhere: exit %d, stderr %q", code, errOut)
	}

	// A test kept for inspection stays ready until its cleanup.
	code, out, _ = haven(t, "dr-plans", "test", "site", "--keep-minutes", "30", "--wait")
	kept := runOf(out)
	if code != 0 || kept.State != api.DRRunReady || !strings.Contains(out, " ready, passed, RTO ") ||
		!strings.Contains(out, "haven dr-runs cleanup "+kept.ID) || !strings.Contains(out, kept.Machines[0].InstanceID) {
		t.Fatalf("dr-plans test site --keep-minutes 30 --wait: exit %d, run %+v, printed %q", code, kept, out)
	}
	code, out, _ = haven(t, "dr-runs", "cleanup", kept.ID, "--wait")
	if code != 0 || !strings.Contains(out, "DR test run "+kept.ID+" of plan site cleaned") {
		t.Fatalf("dr-runs cleanup %s --wait: exit %d, printed %q", kept.ID, code, out)
	}
	if run := getRun(kept.ID); run.State != api.DRRunCleaned || run.CleanedAt == nil {
		t.Fatalf("the kept test after its cleanup: %+v", run)
	}

	// A test whose machine dies fails its job: exit 1 with the job's error.
	dies.Store(true)
	code, out, errOut := haven(t, "dr-plans", "test", "site", "--wait")
	dies.Store(false)
	if code != 1 || !strings.Contains(out, " cleaned, failed") || !strings.Contains(errOut, "failed: the DR test failed") {
		t.Fatalf("a test whose machine dies: exit %d, printed %q, stderr %q", code, out, errOut)
	}
	if run := runOf(out); run.Passed == nil || *run.Passed || !strings.Contains(out, "error: "+run.Error) {
		t.Fatalf("the failed test's run %+v is not printed with its error: %q", run, out)
	}

	// Flags the server refuses are named; a bad --point is a usage error.
	if code, _, errOut := haven(t, "dr-plans", "test", "site", "--point", "web="+point); code != 1 || !strings.Contains(errOut, "(see --point)") {
		t.Fatalf("--point naming no machine: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := haven(t, "dr-plans", "test", "site", "--point", "db-01"); code != 2 || !strings.Contains(errOut, "MACHINE=POINT_ID") {
		t.Fatalf("--point without a point: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := haven(t, "dr-plans", "test", "site", "--keep-minutes", "-1"); code != 1 || !strings.Contains(errOut, "(see --keep-minutes)") {
		t.Fatalf("--keep-minutes -1: exit %d, stderr %q", code, errOut)
	}

	// A failover needs --confirm; with it, it launches from the point asked for.
	code, _, errOut = haven(t, "dr-plans", "failover", "site")
	if code != 1 || !strings.Contains(errOut, "confirm: must be true") || !strings.Contains(errOut, "(see --confirm)") {
		t.Fatalf("dr-plans failover site without --confirm: exit %d, stderr %q", code, errOut)
	}
	if runs, err := c.DRRuns(ctx, plan.ID, api.DRRunFailover); err != nil || len(runs) != 0 {
		t.Fatalf("a refused failover started a run: %+v %v", runs, err)
	}
	code, out, _ = haven(t, "dr-plans", "failover", "site", "--confirm", "--point", "db-01="+point, "--wait", "-o", "json")
	var failover api.DRRun
	if code != 0 || json.Unmarshal([]byte(out), &failover) != nil || failover.Kind != api.DRRunFailover || failover.State != api.DRRunReady ||
		failover.Passed == nil || !*failover.Passed || failover.Points["db-01"] != point || len(failover.Machines) != 1 ||
		failover.Machines[0].InstanceID == "" || failover.Machines[0].SubnetID != prodSubnet {
		t.Fatalf("dr-plans failover site --confirm --wait -o json: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "dr-runs", "show", failover.ID, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "kind: failover") || !strings.Contains(out, "instance_id: "+failover.Machines[0].InstanceID) {
		t.Fatalf("dr-runs show %s -o yaml: exit %d, printed %q", failover.ID, code, out)
	}
	code, out, _ = haven(t, "__complete", "dr-runs", "cleanup", "")
	if code != 0 || !strings.Contains(out, failover.ID+"\tfailover of site ready") {
		t.Errorf("completing dr-runs cleanup: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "__complete", "dr-plans", "failover", "")
	if code != 0 || !strings.Contains(out, "site\t") {
		t.Errorf("completing dr-plans failover: exit %d, printed %q", code, out)
	}

	// Cleaning a failover up terminates production: --confirm again.
	code, _, errOut = haven(t, "dr-runs", "cleanup", failover.ID)
	if code != 1 || !strings.Contains(errOut, "confirm: must be true") || !strings.Contains(errOut, "(see --confirm)") {
		t.Fatalf("dr-runs cleanup of a failover without --confirm: exit %d, stderr %q", code, errOut)
	}
	if run := getRun(failover.ID); run.State != api.DRRunReady {
		t.Fatalf("a refused cleanup changed the failover: %+v", run)
	}
	code, out, _ = haven(t, "dr-runs", "cleanup", failover.ID, "--confirm", "--wait")
	if code != 0 || !strings.Contains(out, "DR failover run "+failover.ID+" of plan site cleaned, passed") {
		t.Fatalf("dr-runs cleanup %s --confirm --wait: exit %d, printed %q", failover.ID, code, out)
	}
	if run := getRun(failover.ID); run.State != api.DRRunCleaned || len(run.Leftovers) != 0 {
		t.Fatalf("the failover after its cleanup: %+v", run)
	}
}
