package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestRestoreDryRunOnAgent: `haven restore --dry-run` onto an agent's
// host waits for the agent's dry-run job and prints its plan exactly as
// it prints one computed at once, in table, JSON and YAML, with nothing
// else on stdout and nothing written; while the agent is away it waits,
// and gives up after --timeout with exit 1.
func TestRestoreDryRunOnAgent(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 3 * time.Second })
	ctx := context.Background()
	t.Setenv("HAVEN_ENDPOINT", srv.URL)
	t.Setenv("HAVEN_TOKEN", srv.AdminToken)
	c := srv.Client
	st, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "vault", Kind: api.StorageFilesystem, Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "nightly", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	fsrv, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "remote", Hostname: "remote.example",
		OS: "linux", Location: api.LocationAgent, RestoreRoots: []string{os.TempDir()}}})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	for _, name := range []string{"a.txt", "b.txt", "c.log"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(strings.Repeat(name, 50)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "remote-docs", FileServerID: fsrv.ID,
		IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: st.ID}})
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(ctx)
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- agent.Run(agentCtx, agent.Config{Server: srv.URL, ActivationToken: fsrv.ActivationToken, StateDir: t.TempDir(),
			PollWait: time.Second, RestoreRoots: []string{os.TempDir()}})
	}()
	stop := func() {
		stopAgent()
		if err := <-agentDone; err != nil {
			t.Errorf("agent: %v", err)
		}
	}
	j, err := c.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if j, err = c.WaitJob(wctx, j.ID, 100*time.Millisecond); err != nil || j.State != api.JobSucceeded {
		stop()
		t.Fatalf("backup: %v %+v", err, j)
	}

	target := t.TempDir()
	if err := os.MkdirAll(filepath.Join(target, src), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, src, "a.txt"), []byte("already here"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"restore", j.PointID, "--target", target, "--conflict", "skip", "--include", "*.txt", "--dry-run"}

	code, out, _ := haven(t, append([]string{"-o", "json"}, args...)...)
	var plan api.RestorePlan
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if code != 0 || dec.Decode(&plan) != nil || dec.More() {
		stop()
		t.Fatalf("restore --dry-run -o json: exit %d, stdout %q: want the plan alone", code, out)
	}
	actions := map[string]string{}
	for _, it := range plan.Items {
		actions[strings.TrimPrefix(it.Path, src+"/")] = it.Action
	}
	if actions["a.txt"] != api.PlanSkip || actions["b.txt"] != api.PlanWrite || len(actions) != 2 ||
		plan.Skips != 1 || plan.Writes != 1 || plan.Bytes != int64(len("b.txt")*50) || plan.PointID != j.PointID {
		t.Errorf("the agent's plan: %+v", plan)
	}

	var want bytes.Buffer
	if err := printPlan(&clientEnv{out: &want, output: "table"}, &plan); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := haven(t, args...); code != 0 || out != want.String() {
		t.Errorf("restore --dry-run: exit %d, stdout\n%s\nwant\n%s", code, out, want.String())
	}
	var fromYAML api.RestorePlan
	if code, out, _ := haven(t, append([]string{"-o", "yaml"}, args...)...); code != 0 || yaml.UnmarshalStrict([]byte(out), &fromYAML) != nil ||
		fromYAML.Skips != 1 || fromYAML.Writes != 1 || len(fromYAML.Items) != 2 {
		t.Errorf("restore --dry-run -o yaml: exit %d, %q", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(target, src, "a.txt")); err != nil || string(b) != "already here" {
		t.Errorf("a dry run changed the target's a.txt: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(target, src, "b.txt")); !os.IsNotExist(err) {
		t.Errorf("a dry run wrote b.txt: %v", err)
	}

	// With the agent away, the dry run waits in the queue; --timeout ends
	// the wait (exit 1), and the job is still there to follow.
	stop()
	time.Sleep(4 * time.Second)
	if code, out, errOut := haven(t, append(args, "--timeout", "3s")...); code != 1 || out != "" || !strings.Contains(errOut, "waiting for job") {
		t.Errorf("restore --dry-run with the agent away: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The waiting job is taken again every few seconds to look for its
	// agent, and is running for that moment: look until it is seen queued.
	var jobs *api.List[api.Job]
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		jobs, err = c.ListJobs(ctx, api.JobFilter{Kind: api.JobRestorePlan, State: api.JobQueued}, "", 0)
		if err == nil && len(jobs.Items) == 1 && strings.Contains(jobs.Items[0].Error, "agent") || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || len(jobs.Items) != 1 || !strings.Contains(jobs.Items[0].Error, "agent") {
		t.Fatalf("the dry run left waiting: %v %+v", err, jobs)
	}
	var ae *api.Error
	if _, err := c.JobPlan(ctx, jobs.Items[0].ID); !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		t.Errorf("the plan of a dry run still queued: %v, want 422", err)
	}
}
