package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// agentPlan runs a dry run onto an agent's host: the server answers with
// a restore_plan job, which must succeed and hold the plan.
func agentPlan(t *testing.T, srv *servertest.Server, req api.RestoreRequest) (*api.Job, *api.RestorePlan) {
	t.Helper()
	ctx := context.Background()
	plan, j, err := srv.Client.PlanRestore(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if plan != nil || j == nil || j.Kind != api.JobRestorePlan {
		t.Fatalf("a dry run onto an agent's host answered plan %+v, job %+v; want a restore_plan job", plan, j)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded || j.PointID != req.PointID {
		t.Fatalf("dry run job: %+v", j)
	}
	plan, err = srv.Client.JobPlan(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plan.PointID != req.PointID {
		t.Errorf("the plan names point %q, want %q", plan.PointID, req.PointID)
	}
	return j, plan
}

// backupOnAgent backs src up through a new agent running in this process
// and returns the point, the file server, the agent's state dir (its
// credential) and what stops the agent.
func backupOnAgent(t *testing.T, srv *servertest.Server, src string) (point string, fsrv *api.FileServer, stateDir string, stop context.CancelFunc) {
	t.Helper()
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	stateDir = t.TempDir()
	stop = runAgent(t, srv.URL, fsrv.ActivationToken, stateDir)
	j, err := srv.Client.BackupNow(context.Background(), set.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	return j.PointID, fsrv, stateDir, stop
}

// planSource writes the tree the dry-run tests back up: files of distinct
// sizes, so that the plans' bytes tell which files count.
func planSource(t *testing.T) (src string, size map[string]int64) {
	t.Helper()
	src = t.TempDir()
	size = map[string]int64{}
	for i, name := range []string{"a.txt", "b.log", "big.bin", "sub/c.txt", "sub/d.txt"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		data := []byte(strings.Repeat(name, 100*(i+1)))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		size[name] = int64(len(data))
	}
	return src, size
}

// TestAgentDryRunSeesTheAgentsDisk: a dry run onto an agent's host is
// computed by the agent against what stands in its target: files already
// there are overwritten, skipped or renamed as the conflict policy says,
// new ones written, with the bytes each would move; include and exclude
// globs narrow it; and nothing on the agent's disk changes.
func TestAgentDryRunSeesTheAgentsDisk(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src, size := planSource(t)
	point, _, _, _ := backupOnAgent(t, srv, src)

	target := t.TempDir()
	for _, name := range []string{"a.txt", "sub/c.txt", "b.log"} {
		p := filepath.Join(target, src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("already here"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The rename policy's first free name for a.txt is its second.
	if err := os.WriteFile(filepath.Join(target, src, "a.txt.restored-1"), []byte("taken"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := tree(t, target)

	existing := []string{"a.txt", "sub/c.txt"}
	for _, c := range []struct {
		conflict, action string
		bytes            int64
	}{
		{"overwrite", api.PlanOverwrite, size["a.txt"] + size["sub/c.txt"] + size["big.bin"]},
		{"skip", api.PlanSkip, size["big.bin"]},
		{"rename", api.PlanRename, size["a.txt"] + size["sub/c.txt"] + size["big.bin"]},
	} {
		// b.log is left out by the include globs, sub/d.txt by the exclude.
		req := api.RestoreRequest{PointID: point, TargetPath: target, Conflict: c.conflict,
			Include: []string{"*.txt", "/**/big.bin"}, Exclude: []string{"d.txt"}}
		j, plan := agentPlan(t, srv, req)
		got := map[string]api.RestorePlanItem{}
		for _, it := range plan.Items {
			if it.Type == "file" {
				got[strings.TrimPrefix(it.Path, src+"/")] = it
			}
		}
		if len(got) != 3 {
			t.Errorf("%s: planned files %v, want a.txt, sub/c.txt and big.bin", c.conflict, got)
		}
		for _, name := range existing {
			it := got[name]
			wantDest := filepath.Join(target, src, name)
			if c.conflict == "rename" {
				wantDest += ".restored-1"
				if name == "a.txt" {
					wantDest = filepath.Join(target, src, "a.txt.restored-2")
				}
			}
			if it.Action != c.action || it.Dest != wantDest {
				t.Errorf("%s: %s planned %s to %s, want %s to %s", c.conflict, name, it.Action, it.Dest, c.action, wantDest)
			}
		}
		if it := got["big.bin"]; it.Action != api.PlanWrite || it.Bytes != size["big.bin"] || it.Dest != filepath.Join(target, src, "big.bin") {
			t.Errorf("%s: big.bin planned %+v, want a write of %d bytes", c.conflict, it, size["big.bin"])
		}
		var overwrites, skips, renames int64
		switch c.action {
		case api.PlanOverwrite:
			overwrites = 2
		case api.PlanSkip:
			skips = 2
		case api.PlanRename:
			renames = 2
		}
		if plan.Bytes != c.bytes || plan.Overwrites != overwrites || plan.Skips != skips || plan.Renames != renames || plan.Refusals != 0 || plan.Truncated {
			t.Errorf("%s: plan counts %d writes, %d overwrites, %d skips, %d renames, %d bytes; want %d bytes", c.conflict,
				plan.Writes, plan.Overwrites, plan.Skips, plan.Renames, plan.Bytes, c.bytes)
		}
		if j.Progress.BytesDone != 0 {
			t.Errorf("%s: the dry run's job counts %d bytes written", c.conflict, j.Progress.BytesDone)
		}
		after := tree(t, target)
		if fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("%s: the dry run changed the agent's disk:\nbefore %v\nafter  %v", c.conflict, before, after)
		}
	}

	// Only restore_plan jobs have a plan, and only once they succeeded.
	if _, err := srv.Client.JobPlan(ctx, "00000000-0000-0000-0000-000000000000"); !isHTTP(err, http.StatusNotFound) {
		t.Errorf("the plan of a job that does not exist: %v, want 404", err)
	}
	jobs, err := srv.Client.ListJobs(ctx, api.JobFilter{Kind: api.JobBackup}, "", 1)
	if err != nil || len(jobs.Items) != 1 {
		t.Fatalf("listing backups: %v %+v", err, jobs)
	}
	if _, err := srv.Client.JobPlan(ctx, jobs.Items[0].ID); !isHTTP(err, http.StatusNotFound) {
		t.Errorf("the plan of a backup job: %v, want 404", err)
	}
}

func isHTTP(err error, status int) bool {
	ae, ok := err.(*api.Error)
	return ok && ae.Status == status
}

// TestAgentDryRunsBeyondWorkers: more dry runs and glob restores onto an
// agent's host than the server has workers, and than the agent runs at
// once, all end in true states: each dry run with its own plan, each
// restore with what its globs select. Dry runs asked for while the agent
// is away wait in the queue, saying why, and run once it is back.
func TestAgentDryRunsBeyondWorkers(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 3 * time.Second; c.JobWorkers = 2 })
	ctx := context.Background()
	src, size := planSource(t)
	point, _, stateDir, stopAgent := backupOnAgent(t, srv, src)
	stopAgent()

	// Asked while the agent is away: each waits, queued, saying why.
	type asked struct {
		job     *api.Job
		req     api.RestoreRequest
		want    string // the files planned or restored
		dryRun  bool
		restore string // a restore's target
	}
	var all []asked
	globs := []struct {
		include []string
		want    string
	}{
		{[]string{"*.txt"}, "a.txt,sub/c.txt,sub/d.txt"},
		{[]string{"*.log"}, "b.log"},
		{[]string{"/**/sub"}, "sub/c.txt,sub/d.txt"},
		{[]string{"big.bin", "a.txt"}, "a.txt,big.bin"},
	}
	for i := range 8 {
		g := globs[i%len(globs)]
		a := asked{req: api.RestoreRequest{PointID: point, TargetPath: t.TempDir(), Include: g.include}, want: g.want, dryRun: i%3 != 2}
		if a.dryRun {
			plan, job, err := srv.Client.PlanRestore(ctx, a.req)
			if err != nil || plan != nil || job == nil {
				t.Fatalf("dry run %d: %v %+v %+v", i, err, plan, job)
			}
			a.job = job
		} else {
			a.restore = a.req.TargetPath
			job, err := srv.Client.Restore(ctx, a.req)
			if err != nil {
				t.Fatal(err)
			}
			a.job = job
		}
		all = append(all, a)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := srv.Client.GetJob(ctx, all[0].job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == api.JobQueued && strings.Contains(j.Error, "agent") {
			break
		}
		if j.Finished() || time.Now().After(deadline) {
			t.Fatalf("a dry run while the agent is away: %+v, want queued, waiting for the agent", j)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The agent is back, running one job at once.
	runAgentWith(t, agent.Config{Server: srv.URL, StateDir: stateDir, RestoreRoots: testRestoreRoots, Concurrency: 1})
	var wg sync.WaitGroup
	var failed atomic.Bool
	for i, a := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			j, err := srv.Client.WaitJob(wctx, a.job.ID, 200*time.Millisecond)
			if err != nil || j.State != api.JobSucceeded {
				t.Errorf("job %d (%s): %v %+v", i, a.job.Kind, err, j)
				failed.Store(true)
				return
			}
			var got []string
			if a.dryRun {
				plan, err := srv.Client.JobPlan(ctx, j.ID)
				if err != nil {
					t.Errorf("dry run %d: %v", i, err)
					return
				}
				var bytes int64
				for _, it := range plan.Items {
					if it.Type == "file" {
						got = append(got, strings.TrimPrefix(it.Path, src+"/"))
						bytes += size[strings.TrimPrefix(it.Path, src+"/")]
					}
				}
				if plan.Bytes != bytes || plan.Writes == 0 {
					t.Errorf("dry run %d: %d bytes for %v", i, plan.Bytes, got)
				}
				if entries, _ := os.ReadDir(a.req.TargetPath); len(entries) != 0 {
					t.Errorf("dry run %d wrote into its target", i)
				}
			} else {
				filepath.Walk(filepath.Join(a.restore, src), func(p string, fi os.FileInfo, err error) error {
					if err == nil && fi.Mode().IsRegular() {
						got = append(got, strings.TrimPrefix(p, filepath.Join(a.restore, src)+"/"))
					}
					return nil
				})
			}
			if strings.Join(got, ",") != a.want {
				t.Errorf("job %d (%s, include %v): %v, want %s", i, a.job.Kind, a.req.Include, got, a.want)
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
}

// TestKilledAgentMidDryRun kills the agent process with SIGKILL while it
// holds a dry run it has claimed and planned (a proxy holds back its
// report of the plan until then), and starts it again: the job ends
// succeeded with the plan of the agent's disk, and the disk is as it was.
func TestKilledAgentMidDryRun(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src, size := planSource(t)
	point, _, stateDir, stopAgent := backupOnAgent(t, srv, src)
	stopAgent()

	target := t.TempDir()
	if err := os.MkdirAll(filepath.Join(target, src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, src, "a.txt"), []byte("already here"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := tree(t, target)

	// The agent, now a process of its own (with the credential the
	// backup's agent stored), talks through a proxy that holds its first
	// report of a finished job until the test has killed it.
	backend, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(backend)
	var reports atomic.Int32
	release := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/complete") && reports.Add(1) == 1 {
			<-release
			http.Error(w, "the agent was killed (test)", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()
	agentProc := newProc(t, "agent", childEnv+"="+strings.Join([]string{front.URL, "", stateDir}, "|"))

	plan, j, err := srv.Client.PlanRestore(ctx, api.RestoreRequest{PointID: point, TargetPath: target})
	if err != nil || plan != nil || j == nil {
		t.Fatalf("dry run: %v %+v %+v", err, plan, j)
	}
	deadline := time.Now().Add(time.Minute)
	for reports.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the agent never reported the dry run's end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cur, err := srv.Client.GetJob(ctx, j.ID); err != nil || cur.State != api.JobRunning {
		t.Fatalf("the dry run before the kill: %v %+v, want running", err, cur)
	}
	agentProc.kill()
	unblock()
	agentProc.start()

	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	done, err := srv.Client.WaitJob(wctx, j.ID, 200*time.Millisecond)
	if err != nil || done.State != api.JobSucceeded {
		t.Fatalf("the dry run after its agent was killed: %v %+v", err, done)
	}
	got, err := srv.Client.JobPlan(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range size {
		total += n
	}
	if got.Overwrites != 1 || got.Bytes != total || got.Writes == 0 || reports.Load() < 2 {
		t.Errorf("the plan after the kill: %+v (%d reports), want a.txt overwritten and %d bytes", got, reports.Load(), total)
	}
	if after := tree(t, target); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the dry run changed the agent's disk:\nbefore %v\nafter  %v", before, after)
	}
}
