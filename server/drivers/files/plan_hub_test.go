package files_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/api/restoreplan"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// TestHubDryRunThroughTheAgent: a dry run onto an agent's host is not
// planned by the server (ErrPlanOnTarget) but handed to the agent as a
// restore_plan job with the restore's options; the job succeeds only
// with the agent's plan, which it then keeps.
func TestHubDryRunThroughTheAgent(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	c := newCatalog(t, base)
	host := c.fileServer(t, "haven-host", api.OSLinux, api.LocationServer)
	web := c.agentHost(t, "web1", "/restores")
	src := filepath.Join(base, "docs")
	writeTree(t, src)
	b := c.NewBackup(c.asset(t, c.fileset(t, "docs", host, src)))
	if err := c.Local.Backup(ctx, b); err != nil {
		t.Fatal(err)
	}

	params := driver.RestoreParams{RestoreRequest: api.RestoreRequest{TargetFileServerID: web, TargetPath: "/restores/x", Conflict: "skip",
		Include: []string{"*.txt"}, Exclude: []string{"skip-*"}}, TargetLocation: api.LocationAgent}
	if _, err := c.Local.PlanRestore(ctx, &params, *b.Committed, c.Repository(t), b.Root); !errors.Is(err, driver.ErrPlanOnTarget) {
		t.Fatalf("the server planned a dry run onto an agent's host: %v", err)
	}
	run := c.NewRestore(b, params)
	run.JobValue = c.runningJob(t, db.NewJob{Kind: api.JobRestorePlan, AssetID: b.AssetVal.ID, StorageID: c.StorageID, PointID: b.Committed.ID})
	done := make(chan error, 1)
	go func() { done <- c.Local.PlanOnTarget(ctx, run) }()
	ag := takeWork(t, c.Hub, web)
	w := ag.work
	if w.Kind != api.JobRestorePlan || w.Root != b.Root.String() || w.TargetPath != "/restores/x" || w.Conflict != "skip" || w.Resume ||
		len(w.RestoreInclude) != 1 || len(w.RestoreExclude) != 1 {
		t.Fatalf("the agent was handed %+v; want the dry run of a restore of root %s to /restores/x", w, b.Root)
	}

	// The agent plans with the engine's planner, reading the point
	// through the hub, against a target of its own.
	target := t.TempDir()
	plan, err := files.PlanRestore(ctx, ag, b.Root, files.RestoreOptions{Target: target, Conflict: w.Conflict,
		Include: w.RestoreInclude, Exclude: w.RestoreExclude}, api.PlanItemsMax)
	if err != nil {
		t.Fatal(err)
	}
	reported := restoreplan.FromEngine(plan, 0)
	if len(reported.Items) == 0 {
		t.Fatal("the plan lists nothing; the tree needs .txt files")
	}

	apiError(t, c.Hub.Complete(ctx, w.JobID, web, api.AgentComplete{}), http.StatusBadRequest, "plan")
	if err := c.Hub.Complete(ctx, w.JobID, web, api.AgentComplete{Plan: reported}); err != nil {
		t.Fatalf("completing the dry run: %v", err)
	}
	if err := driverResult(t, done); err != nil {
		t.Fatalf("the driver's dry run: %v", err)
	}
	j, err := c.DB.GetJob(ctx, run.JobValue.ID)
	if err != nil || j.State != api.JobSucceeded || j.PointID != b.Committed.ID {
		t.Fatalf("the dry run's job: %+v, %v; want succeeded, reading point %s", j, err, b.Committed.ID)
	}
	kept, ok, err := c.DB.JobPlan(ctx, j.ID)
	if err != nil || !ok || kept.PointID != b.Committed.ID || len(kept.Items) != len(reported.Items) || kept.Writes != reported.Writes || kept.Bytes != reported.Bytes {
		t.Errorf("the job keeps %+v (%v, %v); want the agent's plan %+v", kept, ok, err, reported)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("the dry run wrote %d entries", len(entries))
	}
}
