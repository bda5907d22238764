package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// totalsTree writes n files of size random bytes under dir, and beside
// them what a backup must not count: files and a directory its exclude
// globs leave out, a second link to a counted file (its content is
// recorded once) and a symlink. It returns the fileset's exclude globs.
func totalsTree(t *testing.T, dir string, n, size int) []string {
	t.Helper()
	writeFiles(t, dir, n, size, 7)
	for name, data := range map[string]string{"d1/notes.tmp": "scratch\n", "scratch/a": "aaaa", "scratch/deep/b": "bbbb"} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "d0", "f000"), filepath.Join(dir, "d2", "same-as-f000")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../d0/f000", filepath.Join(dir, "d1", "to-f000")); err != nil {
		t.Fatal(err)
	}
	return []string{"*.tmp", "**/scratch"}
}

// watchJob reads a job through the API, as `haven ... --wait` does, until
// until says stop or the job ends; it returns the last record read.
func watchJob(t *testing.T, srv *servertest.Server, id string, until func(*api.Job) bool) *api.Job {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		j, err := srv.Client.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if until(j) || j.Finished() {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still running after 30 s: %+v", id, j)
		}
	}
}

// finalTotalsWhileRunning: a running job's record carries final totals,
// equal to the tree's true counts, before its capture has finished.
func finalTotalsWhileRunning(files, bytes int64) func(*api.Job) bool {
	return func(j *api.Job) bool {
		p := j.Progress
		return j.State == api.JobRunning && !p.Scanning && p.FilesTotal == files && p.BytesTotal == bytes
	}
}

// checkEndTotals fails unless a finished job succeeded with its totals
// equal to the tree's true counts and all of them done.
func checkEndTotals(t *testing.T, what string, j *api.Job, files, bytes int64) {
	t.Helper()
	p := j.Progress
	if j.State != api.JobSucceeded || p.Scanning || p.Estimated || p.FilesTotal != files || p.BytesTotal != bytes || p.FilesDone != files || p.BytesDone != bytes {
		t.Fatalf("%s ended %s with progress %+v, want %d of %d files and %d of %d bytes done", what, j.State, p, files, files, bytes, bytes)
	}
}

// TestServerBackupReportsScannedTotals: a backup on the Haven host counts
// its selection (excludes, hardlinks and all) beside the capture, so its
// progress records carry the true totals while it runs, not only once it
// is done; the restore of its point reports the point's totals; the next
// backup, with a parent, ends with the exact totals of the grown tree.
func TestServerBackupReportsScannedTotals(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	const n, size = 48, 1 << 20
	set, _, _ := declareFileset(t, srv.Client, api.LocationServer, src, totalsTree(t, src, n, size))

	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Every record after the scan's end and before the last file is
	// done has the final totals with files still to do.
	early := watchJob(t, srv, j.ID, func(j *api.Job) bool {
		return finalTotalsWhileRunning(n, n*size)(j) && j.Progress.FilesDone < n
	})
	if early.Finished() {
		t.Fatalf("no record of the running backup carried the final totals with files still to do; it ended with %+v", early.Progress)
	}
	done := waitJob(t, srv, j.ID)
	checkEndTotals(t, "the backup", done, n, n*size)

	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: done.PointID, TargetPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checkEndTotals(t, "the restore", waitJob(t, srv, r.ID), n, n*size)

	// The next backup has a parent: it starts from the parent's totals
	// as an estimate, and ends with the exact ones of the grown tree.
	if err := os.WriteFile(filepath.Join(src, "d0", "added"), make([]byte, size), 0o640); err != nil {
		t.Fatal(err)
	}
	next, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	checkEndTotals(t, "the backup with a parent", waitJob(t, srv, next.ID), n+1, (n+1)*size)
}

// TestAgentBackupSendsScannedTotals: an agent counts its selection beside
// the capture and sends the totals in its progress frames, so the job's
// record carries the true totals while the agent's uploads are still held
// on the way (the point cannot be complete yet); the restore of the point
// through the agent reports the point's totals, which the server adds.
func TestAgentBackupSendsScannedTotals(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	const n, size = 24, 256 << 10
	set, fsrv, _ := declareFileset(t, srv.Client, api.LocationAgent, src, totalsTree(t, src, n, size))
	proxy := startProxy(t, srv.URL)
	runAgent(t, proxy.URL, fsrv.ActivationToken, t.TempDir())

	release := proxy.holdUploads()
	defer release()
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	held := watchJob(t, srv, j.ID, finalTotalsWhileRunning(n, n*size))
	if held.Finished() {
		t.Fatalf("the backup ended (%s) with its uploads held: %+v", held.State, held)
	}
	release()
	checkEndTotals(t, "the backup", waitJob(t, srv, j.ID), n, n*size)

	done, err := srv.Client.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: done.PointID, TargetPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checkEndTotals(t, "the restore through the agent", waitJob(t, srv, r.ID), n, n*size)
}
