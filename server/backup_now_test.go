package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestBackupNowFull: a backup now with {"type":"full"} makes a full point
// although the asset has one already; without a body it stays incremental,
// and an unknown type is refused naming the field.
func TestBackupNowFull(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	set, _ := sampleFileset(t, srv)

	kinds := []string{}
	for _, req := range []api.BackupRequest{{}, {}, {Type: api.BackupFull}} {
		j, err := srv.Client.Backup(ctx, set.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
			t.Fatalf("backup %+v: %+v", req, j)
		}
		p, err := srv.Client.GetPoint(ctx, j.PointID)
		if err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, p.Kind)
	}
	if want := []string{api.BackupFull, api.BackupIncremental, api.BackupFull}; strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("points made by backup now, backup now, backup now full: %v, want %v", kinds, want)
	}

	_, err := srv.Client.Backup(ctx, set.ID, api.BackupRequest{Type: "differential"})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Field != "type" {
		t.Fatalf("backup now of type differential: %v, want 400 on type", err)
	}
}

// TestJobPollsLogAtDebug: a client polling a job (haven --wait) does not
// write an INFO access line per poll, while other requests still do.
func TestJobPollsLogAtDebug(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("a"), 0o600); err != nil {
		t.Fatal(err)
	}
	set := protectedFileset(t, srv, src)
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := srv.Client.GetJob(ctx, j.ID); err != nil {
			t.Fatal(err)
		}
	}
	jobPath := `"path":"/v1/jobs/` + j.ID + `"`
	polls, backups := 0, 0
	for _, line := range strings.Split(srv.Logs(), "\n") {
		if !strings.Contains(line, `"msg":"request"`) || !strings.Contains(line, `"level":"INFO"`) {
			continue
		}
		if strings.Contains(line, jobPath) {
			polls++
		}
		if strings.Contains(line, `"route":"/v1/assets/{id}/backup"`) {
			backups++
		}
	}
	if polls != 0 || backups != 1 {
		t.Fatalf("INFO access lines: %d for 50 polls of the job (want 0), %d for the backup now (want 1)", polls, backups)
	}
}

// TestJobReadWaitsForTheEnd: a read of a job with wait answers once the
// job has ended (so --wait sees the end at once without polling fast); a
// bad wait is refused naming the field.
func TestJobReadWaitsForTheEnd(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	set, _ := sampleFileset(t, srv)
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The backup takes far less than the wait: the answer is the job's end.
	got, err := srv.Client.GetJobWaiting(ctx, j.ID, 30*time.Second)
	if err != nil || !got.Finished() || got.State != api.JobSucceeded {
		t.Fatalf("read with wait: %+v %v, want the succeeded job", got, err)
	}
	for _, bad := range []time.Duration{-time.Second, time.Minute} {
		_, err := srv.Client.GetJobWaiting(ctx, j.ID, bad)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Field != "wait" {
			t.Errorf("read with wait %s: %v, want 400 on wait", bad, err)
		}
	}
}
