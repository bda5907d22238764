package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestAgentRestoreGlobsAndDryRun: a restore onto an agent's host honours
// include and exclude globs, and so does its dry run, which the agent
// computes against its own (empty) target and which leaves it untouched.
func TestAgentRestoreGlobsAndDryRun(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	for _, name := range []string{"a.txt", "b.log", "sub/c.txt", "sub/d.txt"} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(name)), 0o755)
		if err := os.WriteFile(filepath.Join(src, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	runAgent(t, srv.URL, fsrv.ActivationToken, t.TempDir())
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := waitJob(t, srv, j.ID)
	if b.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", b)
	}

	target := t.TempDir()
	req := api.RestoreRequest{PointID: b.PointID, TargetPath: target, Include: []string{"*.txt"}, Exclude: []string{src + "/sub/d.txt"}}
	_, plan := agentPlan(t, srv, req)
	var files []string
	for _, it := range plan.Items {
		if it.Type == "file" {
			files = append(files, strings.TrimPrefix(it.Path, src+"/")+" "+it.Action)
		}
	}
	if strings.Join(files, ",") != "a.txt write,sub/c.txt write" || plan.Overwrites+plan.Skips != 0 {
		t.Errorf("dry run onto an agent's host: %v", files)
	}
	if entries, _ := os.ReadDir(target); len(entries) != 0 {
		t.Errorf("the dry run wrote %d entries", len(entries))
	}

	r, err := srv.Client.Restore(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if rj := waitJob(t, srv, r.ID); rj.State != api.JobSucceeded {
		t.Fatalf("restore: %+v", rj)
	}
	var restored []string
	filepath.Walk(filepath.Join(target, src), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			restored = append(restored, strings.TrimPrefix(p, filepath.Join(target, src)+"/"))
		}
		return nil
	})
	if strings.Join(restored, ",") != "a.txt,sub/c.txt" {
		t.Errorf("restored %v, want a.txt and sub/c.txt", restored)
	}
}
