package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestAgentRefusesRestoresOutsideItsRoots: the server allows the restore
// (the file server's restore_roots hold the target), but the agent's own
// --restore-roots do not: the agent refuses and writes nothing. It does
// not trust the server blindly.
func TestAgentRefusesRestoresOutsideItsRoots(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, 5, 4<<10, 1)
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	allowed := t.TempDir()
	runAgentWith(t, agent.Config{Server: srv.URL, ActivationToken: fsrv.ActivationToken, StateDir: t.TempDir(), RestoreRoots: []string{allowed}})
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}

	elsewhere := t.TempDir()
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: elsewhere})
	if err != nil {
		t.Fatalf("the server should accept a target within the file server's restore_roots: %v", err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobFailed || !strings.Contains(r.Error, "--restore-roots") {
		t.Fatalf("a restore outside the agent's roots: %+v", r)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("the refused restore wrote %d entries into %s", len(entries), elsewhere)
	}

	// Inside them it restores.
	r, err = srv.Client.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: allowed})
	if err != nil {
		t.Fatal(err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("a restore inside the agent's roots: %+v", r)
	}
	if len(tree(t, filepath.Join(allowed, src))) < 5 {
		t.Errorf("nothing restored under %s", allowed)
	}
}
