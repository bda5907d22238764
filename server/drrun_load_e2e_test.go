package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
)

// jobWork is when a job did its work: from the start of its last attempt
// to its end, as the server logged them ("job started", "job finished").
// A job's started_at is its first attempt's, and a DR job that finds its
// plan held by another returns at once and is tried again later, so
// started_at says nothing of when the job held the plan.
type jobWork struct{ start, end time.Time }

// jobWorks reads each finished job's work from a server's log.
func jobWorks(t *testing.T, log string) map[string]jobWork {
	t.Helper()
	out := map[string]jobWork{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Time  time.Time `json:"time"`
			Msg   string    `json:"msg"`
			JobID string    `json:"job_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.JobID == "" {
			continue
		}
		w := out[l.JobID]
		switch l.Msg {
		case "job started":
			w.start = l.Time
		case "job finished":
			w.end = l.Time
		default:
			continue
		}
		out[l.JobID] = w
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDRJobsBeyondWorkers: a server with two job workers gets six DR jobs
// at once, three of each of two plans (which share db-01): a replication
// of new points, a DR test, and the cleanup of a kept test. Every job
// ends succeeded within a bounded wait: the replications recorded copies
// of the new points, the tests passed and were cleaned, the kept tests
// were cleaned, and nothing of any run is left in AWS. Jobs of one plan
// never did their work at the same time. One test was asked for twice
// with the same Idempotency-Key: one run, one job.
func TestDRJobsBeyondWorkers(t *testing.T) {
	endpoint := testparts.Moto(t)
	f := newVMFixture(t, nil, func(c *server.Config) {
		c.JobWorkers = 2
		c.DRPoll = 50 * time.Millisecond
		c.DRDial = func(context.Context, string) error { return nil }
	})
	ctx := context.Background()
	c := f.srv.Client
	wait := func(id string) *api.Job { return waitJob(t, f.srv, id) }
	rng := rand.New(rand.NewPCG(19, 19))
	vms := map[string]*api.ProtectedVM{}
	for _, name := range []string{"db-01", "app-01"} {
		f.sim.WriteDiskAt(t, name, 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
		vms[name] = f.protect(name, nil)
		if j := f.backup(vms[name]); j.State != api.JobSucceeded {
			t.Fatalf("backup of %s: %+v", name, j)
		}
	}
	prod := motoNetwork(t, endpoint)
	if _, err := c.AWSTargets().Create(ctx, api.AWSTargetRequest{AWSTargetSpec: api.AWSTargetSpec{
		Name: "dr", Region: testparts.MotoRegion, Credentials: api.AWSCredentialsAccessKey,
		AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey, Endpoint: endpoint,
		VPCID: prod.vpc, SubnetID: prod.subnet}}); err != nil {
		t.Fatal(err)
	}
	// No private addresses: a plan's kept test and its next test share
	// the test subnet.
	db := api.DRPlanVM{ProtectedVMID: "db-01", Name: "db", InstanceType: "t3.large", ProbePort: 22}
	app := api.DRPlanVM{ProtectedVMID: "app-01", Name: "app", BootGroup: 1, DependsOn: []string{"db"}, InstanceType: "t3.large", ProbePort: 22}
	var plans []*api.DRPlan
	for _, spec := range []api.DRPlanSpec{{Name: "east", VMs: []api.DRPlanVM{db, app}}, {Name: "west", VMs: []api.DRPlanVM{db}}} {
		test := motoNetwork(t, endpoint)
		spec.TargetID, spec.ReplicationIntervalMinutes, spec.TestNetwork = "dr", 60, &api.DRTestNetwork{VPCID: test.vpc, SubnetID: test.subnet}
		plan, err := c.DRPlans().Create(ctx, api.DRPlanRequest{DRPlanSpec: spec})
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, plan)
	}
	east := plans[0]
	// Each plan replicated, and a test of each kept.
	kept := map[string]*api.DRRun{}
	for _, p := range plans {
		if j := replicate(t, c, wait, p.ID); j.State != api.JobSucceeded {
			t.Fatalf("replication of %s: %+v", p.Name, j)
		}
	}
	for _, p := range plans {
		run, err := c.StartDRTest(ctx, p.ID, api.DRTestRequest{KeepMinutes: 60})
		if err != nil {
			t.Fatal(err)
		}
		kept[p.ID] = run
	}
	for _, p := range plans {
		if j := wait(kept[p.ID].JobID); j.State != api.JobSucceeded {
			t.Fatalf("the kept test of %s: %+v", p.Name, j)
		}
	}
	// New points of both VMs, for the replications to copy.
	for _, name := range []string{"db-01", "app-01"} {
		f.sim.WriteDiskAt(t, name, 0, map[int64][]byte{5 << 20: bytes.Repeat([]byte(name), 1024)})
		if j := f.backup(vms[name]); j.State != api.JobSucceeded {
			t.Fatalf("backup of %s: %+v", name, j)
		}
	}
	newest := map[string]string{}
	for name, pv := range vms {
		pts, err := c.ListPoints(ctx, pv.ID, "", 1)
		if err != nil || len(pts.Items) != 1 {
			t.Fatalf("points of %s: %+v %v", name, pts, err)
		}
		newest[pv.ID] = pts.Items[0].ID
	}

	// testTwice asks for a test of the plan twice with one Idempotency-Key.
	testTwice := func(planID string) api.DRRun {
		t.Helper()
		var first, again api.DRRun
		for _, into := range []*api.DRRun{&first, &again} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/v1/dr-plans/"+planID+"/test", strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer "+f.srv.AdminToken)
			req.Header.Set("Idempotency-Key", "test-once")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("DR test: %s", resp.Status)
			}
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if first.ID == "" || again.ID != first.ID || again.JobID != first.JobID {
			t.Fatalf("a retried DR test request made a second run: %+v then %+v", first, again)
		}
		return first
	}

	// Six jobs at once, those of a plan queued one after the other (so
	// that both workers first take jobs of east).
	type started struct {
		plan       *api.DRPlan
		what, job  string
		run, clean string // the test's run; the kept run it cleans
	}
	var all []started
	began := time.Now()
	for _, p := range plans {
		rj, err := c.ReplicateDRPlan(ctx, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, started{plan: p, what: "replication", job: rj.ID})
		var test api.DRRun
		if p == east {
			test = testTwice(p.ID)
		} else {
			run, err := c.StartDRTest(ctx, p.ID, api.DRTestRequest{})
			if err != nil {
				t.Fatal(err)
			}
			test = *run
		}
		all = append(all, started{plan: p, what: "test", job: test.JobID, run: test.ID})
		cj, err := c.CleanupDRRun(ctx, kept[p.ID].ID, false)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, started{plan: p, what: "cleanup", job: cj.ID, clean: kept[p.ID].ID})
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	ended := map[string]*api.Job{}
	for _, s := range all {
		j, err := c.WaitJob(wctx, s.job, 50*time.Millisecond)
		if err != nil {
			t.Fatalf("%s of %s did not end within 3 minutes of the start: %v (%+v)", s.what, s.plan.Name, err, j)
		}
		if j.State != api.JobSucceeded {
			t.Errorf("%s of %s: %+v", s.what, s.plan.Name, j)
		}
		ended[s.job] = j
	}
	t.Logf("%d jobs on 2 workers took %.1f s", len(all), time.Since(began).Seconds())
	if t.Failed() {
		t.FailNow()
	}

	// What each job did.
	for _, s := range all {
		j := ended[s.job]
		switch s.what {
		case "replication":
			plan, err := c.DRPlans().Get(ctx, s.plan.ID)
			if err != nil {
				t.Fatal(err)
			}
			if resultInt(t, j, dr.ResultVMsCopied) != int64(len(s.plan.VMs)) || len(plan.Status.VMs) != len(s.plan.VMs) {
				t.Errorf("the replication of %s copied %s VMs, want %d: %+v", s.plan.Name, j.Result[dr.ResultVMsCopied], len(s.plan.VMs), plan.Status.VMs)
			}
			for _, v := range plan.Status.VMs {
				if v.PointID != newest[v.ProtectedVMID] {
					t.Errorf("%s's copy of %s holds point %s, want the newest, %s", s.plan.Name, v.Name, v.PointID, newest[v.ProtectedVMID])
				}
			}
		case "test":
			run, err := c.DRRun(ctx, s.run)
			if err != nil {
				t.Fatal(err)
			}
			if run.State != api.DRRunCleaned || run.Passed == nil || !*run.Passed || run.Error != "" || len(run.Leftovers) != 0 || len(run.Machines) != len(s.plan.VMs) {
				t.Errorf("the test of %s: %+v", s.plan.Name, run)
			}
			if left := leftInAWS(t, endpoint, run.ID); len(left) != 0 {
				t.Errorf("the test of %s left %+v", s.plan.Name, left)
			}
		case "cleanup":
			run, err := c.DRRun(ctx, s.clean)
			if err != nil {
				t.Fatal(err)
			}
			if run.State != api.DRRunCleaned || run.CleanupJobID != s.job || j.Result[dr.ResultLeftovers] != "0" {
				t.Errorf("the kept test of %s after its cleanup: %+v (job %+v)", s.plan.Name, run, j)
			}
			if left := leftInAWS(t, endpoint, run.ID); len(left) != 0 {
				t.Errorf("the cleanup of %s's kept test left %+v", s.plan.Name, left)
			}
		}
	}
	// The test asked for twice is one job and one run.
	jobs, err := c.ListJobs(ctx, api.JobFilter{Kind: api.JobDRTest}, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs.Items) != 4 {
		t.Errorf("%d DR test jobs, want 4 (a kept and a new one of each plan)", len(jobs.Items))
	}
	if runs, err := c.DRRuns(ctx, east.ID, api.DRRunTest); err != nil || len(runs) != 2 {
		t.Errorf("east's tests: %+v %v, want the kept one and the new one", runs, err)
	}

	// Jobs of one plan did their work one at a time. An attempt starts
	// (and logs so) a moment before it takes its plan, so it may have
	// started up to that moment before the job holding the plan ended.
	const slack = 50 * time.Millisecond
	works := jobWorks(t, f.srv.Logs())
	for _, s := range all {
		w := works[s.job]
		if w.start.IsZero() || w.end.Before(w.start) {
			t.Fatalf("the log has no work of %s of %s (job %s): %+v", s.what, s.plan.Name, s.job, w)
		}
		t.Logf("%-5s %-11s %6.2f s to %6.2f s", s.plan.Name, s.what, w.start.Sub(began).Seconds(), w.end.Sub(began).Seconds())
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			wa, wb := works[a.job], works[b.job]
			if a.plan.ID == b.plan.ID && wa.start.Before(wb.end.Add(-slack)) && wb.start.Before(wa.end.Add(-slack)) {
				t.Errorf("%s and %s of %s ran at the same time: %v to %v, and %v to %v", a.what, b.what, a.plan.Name,
					wa.start.Format(time.StampMilli), wa.end.Format(time.StampMilli), wb.start.Format(time.StampMilli), wb.end.Format(time.StampMilli))
			}
		}
	}
}
