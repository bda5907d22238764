package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// startChildAgent runs `haven agent` as a separate process (this test
// binary in its child role), so a test can kill it with SIGKILL.
func startChildAgent(t *testing.T, server, token, stateDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{server, token, stateDir}, "|"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// backupNow runs an on-demand backup of an asset to success.
func backupNow(t *testing.T, srv *servertest.Server, assetID string) *api.Job {
	t.Helper()
	j, err := srv.Client.BackupNow(context.Background(), assetID)
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, srv, j.ID)
	if done.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", done)
	}
	return done
}

// TestAgentDedupBeforeTransfer measures what the agent sends over the
// wire: a first backup sends about the data; a re-backup of an unchanged
// tree, and one where every file was rewritten with the same content (so
// the agent reads and chunks it all again), send almost nothing, because
// the agent uploads only what the server says it lacks.
func TestAgentDedupBeforeTransfer(t *testing.T) {
	srv := startServer(t)
	src := t.TempDir()
	const n, size = 16, 1 << 20
	const data = n * size
	writeFiles(t, src, n, size, 7)
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	proxy := startProxy(t, srv.URL)
	runAgent(t, proxy.URL, fsrv.ActivationToken, t.TempDir())

	backup := func(what string) int64 {
		t.Helper()
		before := proxy.sent.Load()
		backupNow(t, srv, set.ID)
		sent := proxy.sent.Load() - before
		t.Logf("%s: the agent sent %d bytes for %d bytes of data", what, sent, data)
		return sent
	}
	// Manifests, lookups, progress and polls: well under 1% of the data.
	const overhead = 64 << 10

	if sent := backup("first backup"); sent < data || sent > data+data/20+overhead {
		t.Errorf("first backup sent %d bytes over the wire for %d bytes of new data", sent, data)
	}
	if sent := backup("unchanged re-backup"); sent > data/100+overhead {
		t.Errorf("an unchanged re-backup sent %d bytes over the wire", sent)
	}
	later := time.Now().Add(time.Hour)
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Chtimes(p, later, later)
		}
		return nil
	})
	if sent := backup("re-backup of rewritten, identical files"); sent > data/100+overhead {
		t.Errorf("a re-backup of identical content sent %d bytes over the wire: the agent uploaded chunks the server had", sent)
	}
}

// TestAgentCompleteRefusesPointThatIsNotWhole: an agent that completes a
// backup with a root the repository does not hold is refused (422, field
// root), no point appears, and the attempt fails. A whole-storage verify
// later names, by point id, a point that lost a chunk from the index.
func TestAgentCompleteRefusesPointThatIsNotWhole(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, 4, 64<<10, 9)
	set, fsrv, _ := agentFileset(t, srv.Client, src)

	var act api.Activation
	if err := srv.NewClient(t, "").Do(ctx, http.MethodPost, "/v1/agents/activate", nil, api.ActivateRequest{ActivationToken: fsrv.ActivationToken}, &act); err != nil {
		t.Fatal(err)
	}
	// The agent's credential, and its state dir for the real agent below.
	stateDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(stateDir, "credential"), []byte(act.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ac := srv.NewClient(t, act.Token)
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	var work api.AgentWork
	for deadline := time.Now().Add(60 * time.Second); work.JobID != j.ID; {
		if time.Now().After(deadline) {
			t.Fatal("the backup was never handed to the agent")
		}
		rc, err := ac.Stream(ctx, http.MethodGet, "/v1/agent/work?instance=test&wait=1s", nil, "application/json")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(rc).Decode(&work)
		rc.Close()
	}
	var ghost [32]byte
	rand.Read(ghost[:])
	err = ac.Do(ctx, http.MethodPost, "/v1/agent/jobs/"+j.ID+"/complete", nil,
		api.AgentComplete{Root: hex.EncodeToString(ghost[:]), Progress: api.JobProgress{FilesDone: 4, BytesDone: 4 * 64 << 10}}, nil)
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || apiErr.Field != "root" || !strings.Contains(apiErr.Message, "not whole") {
		t.Fatalf("completing with a root that does not exist: %v", err)
	}
	if pts, _ := srv.Client.ListPoints(ctx, set.ID, "", 0); len(pts.Items) != 0 {
		t.Fatalf("a point was committed: %+v", pts.Items)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		cur, err := srv.Client.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.State == api.JobSucceeded {
			t.Fatalf("the job succeeded with no point: %+v", cur)
		}
		if strings.Contains(cur.Error, "refused to commit the point") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused attempt did not fail the job's attempt: %+v", cur)
		}
	}

	// The real agent takes the retry and commits a whole point.
	runAgent(t, srv.URL, "", stateDir)
	done := waitJob(t, srv, j.ID)
	if done.State != api.JobSucceeded || done.PointID == "" {
		t.Fatalf("the retried backup: %+v", done)
	}
	verify := func() *api.Job {
		var v api.Job
		if err := srv.Client.Do(ctx, http.MethodPost, "/v1/storages/"+set.StorageID+"/verify", nil, struct{}{}, &v); err != nil {
			t.Fatal(err)
		}
		return waitJob(t, srv, v.ID)
	}
	if v := verify(); v.State != api.JobSucceeded {
		t.Fatalf("verify of a whole storage: %+v", v)
	}
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DELETE FROM repo_chunks WHERE repo_id = $1 AND chunk_id =
		(SELECT chunk_id FROM repo_chunks WHERE repo_id = $1 AND type = $2 LIMIT 1)`, set.StorageID, int16(format.Data)); err != nil {
		t.Fatal(err)
	}
	v := verify()
	if v.State != api.JobFailed || !strings.Contains(strings.Join(v.Warnings, "\n"), "point "+done.PointID+" incomplete: 1 referenced chunks are not in the repository") {
		t.Fatalf("verify after a chunk left the index: %s %q %q", v.State, v.Error, v.Warnings)
	}
	// A catalog point whose root the repository lost is named too.
	if _, err := conn.Exec(ctx, `DELETE FROM repo_roots WHERE repo_id = $1 AND point_id = $2`, set.StorageID, done.PointID); err != nil {
		t.Fatal(err)
	}
	v = verify()
	if v.State != api.JobFailed || !strings.Contains(strings.Join(v.Warnings, "\n"), "point "+done.PointID+" is in the catalog but its root is not in the repository") {
		t.Fatalf("verify after a root left the repository: %s %q %q", v.State, v.Error, v.Warnings)
	}
}

// writingFile waits until some file under dir of the given size (a
// restore sets the size first) has part of its data written, and returns
// its path.
func writingFile(t *testing.T, dir string, size int64) string {
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		var found string
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			var st syscall.Stat_t
			if syscall.Stat(p, &st) == nil && st.Size == size && st.Blocks > 0 && st.Blocks*512 < size {
				found = p
			}
			return nil
		})
		if found != "" {
			return found
		}
	}
	t.Errorf("no file of %d bytes was being written under %s", size, dir)
	return ""
}

// TestAgentKilledMidRestoreResumesUnderSkip kills the agent process while
// it writes a large file of a restore with the skip policy. The agent that
// comes back resumes the job and finishes that file (content, mode and
// mtime as backed up), and still leaves alone the file the user had at its
// destination before the restore.
func TestAgentKilledMidRestoreResumesUnderSkip(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, 6, 64<<10, 11)
	const bigSize = 24 << 20
	writeFiles(t, filepath.Join(src, "big"), 1, bigSize, 12)
	big := filepath.Join(src, "big", "d0", "f000")
	os.Chmod(big, 0o604)
	old := time.Date(2023, 5, 6, 7, 8, 9, 10, time.UTC)
	os.Chtimes(big, old, old)
	want := tree(t, src)
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	proxy := startProxy(t, srv.URL)
	stateDir := t.TempDir()
	child := startChildAgent(t, proxy.URL, fsrv.ActivationToken, stateDir)
	point := backupNow(t, srv, set.ID)

	dst := t.TempDir()
	out := filepath.Join(dst, src)
	os.MkdirAll(filepath.Join(out, "d0"), 0o755)
	users := filepath.Join(out, "d0", "f000")
	os.WriteFile(users, []byte("the user's own file, here before the restore"), 0o600)
	usersBefore := tree(t, filepath.Join(out, "d0"))["f000"]

	killed := make(chan struct{})
	proxy.holdLoads(8<<20, func() {
		writingFile(t, dst, bigSize)
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
		close(killed)
	})
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: point.PointID, TargetPath: dst, Conflict: "skip"})
	if err != nil {
		t.Fatal(err)
	}
	<-killed
	proxy.holdLoads(0, nil)
	child = startChildAgent(t, proxy.URL, "", stateDir)
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	if done := waitJob(t, srv, r.ID); done.State != api.JobSucceeded {
		t.Fatalf("the restore after the agent came back: %+v", done)
	}
	got := tree(t, out)
	for p, desc := range want {
		if !strings.HasPrefix(desc, "-") || p == "d0/f000" {
			continue
		}
		if got[p] != desc {
			t.Errorf("%s: restored %q, want %q", p, got[p], desc)
		}
	}
	if got["d0/f000"] != usersBefore {
		t.Errorf("the user's file was replaced: %q", got["d0/f000"])
	}
}

// TestAgentRestoreOfChangedBytesFails changes a file behind the agent's
// back while the restore writes it (it loses what was written so far):
// the restore must fail, not report success, and never put that file in
// place.
func TestAgentRestoreOfChangedBytesFails(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	const bigSize = 16 << 20
	writeFiles(t, src, 1, bigSize, 13)
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	proxy := startProxy(t, srv.URL)
	runAgent(t, proxy.URL, fsrv.ActivationToken, t.TempDir())
	point := backupNow(t, srv, set.ID)

	dst := t.TempDir()
	proxy.holdLoads(4<<20, func() {
		if p := writingFile(t, dst, bigSize); p != "" {
			os.Truncate(p, 1)
		}
	})
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: point.PointID, TargetPath: dst})
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, srv, r.ID)
	if done.State != api.JobFailed || !strings.Contains(done.Error, "restored bytes differ from the recovery point") {
		t.Fatalf("a restore whose bytes changed behind its back: %s %q", done.State, done.Error)
	}
	if _, err := os.Stat(filepath.Join(dst, src, "d0", "f000")); err == nil {
		t.Error("the file with wrong bytes was put in place")
	}
}

// TestAgentUploadsManyBatches backs up several upload batches' worth of
// distinct data through an agent, which reuses the body of an
// acknowledged upload for the next one. The first uploads are held on the
// wire meanwhile, as on a slow link, while the agent gathers the next
// batch: the server checks every chunk against its id, so a body reused
// while it was still being sent fails the job, and a restore of the point
// gives back every byte.
func TestAgentUploadsManyBatches(t *testing.T) {
	srv := startServer(t)
	src := t.TempDir()
	writeFiles(t, src, 40, 2<<20, 11) // 80 MiB: five batches and more
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	proxy := startProxy(t, srv.URL)
	runAgent(t, proxy.URL, fsrv.ActivationToken, t.TempDir())
	ctx := context.Background()
	waitFor(t, "the agent online", func() bool {
		f, err := srv.Client.FileServers().Get(ctx, fsrv.ID)
		return err == nil && f.AgentStatus == "online"
	})
	release := proxy.holdUploads()
	defer release()
	started, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The two upload slots are taken and held; the agent reads on into
	// the next batches meanwhile. Release once it has read past them (or
	// after a while, if it stalls sooner).
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		if j, err := srv.Client.GetJob(ctx, started.ID); err == nil && j.Progress.BytesDone >= 48<<20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	release()
	job := waitJob(t, srv, started.ID)
	if job.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", job)
	}
	if job.Attempt != 1 {
		t.Fatalf("the backup succeeded on attempt %d (error before: a chunk sent with other bytes than its id's?), want its first", job.Attempt)
	}
	if job.Progress.BytesDone != 40*2<<20 {
		t.Fatalf("backed up %d bytes, want %d", job.Progress.BytesDone, 40*2<<20)
	}
	out := t.TempDir()
	r, err := srv.Client.Restore(context.Background(), api.RestoreRequest{PointID: job.PointID, TargetPath: out})
	if err != nil {
		t.Fatal(err)
	}
	if done := waitJob(t, srv, r.ID); done.State != api.JobSucceeded {
		t.Fatalf("restore: %+v", done)
	}
	want, got := tree(t, src), tree(t, filepath.Join(out, src))
	if len(got) != len(want) {
		t.Fatalf("restored %d files, want %d", len(got), len(want))
	}
	for p, h := range want {
		if got[p] != h {
			t.Errorf("%s restored with other bytes", p)
		}
	}
}

// TestRefusedProgressKeepsWarnings backs up through a link that refuses
// every progress report, as a server older than its agent refuses a field
// it does not know: the backup still succeeds, and the warnings those
// reports carried reach the job with its end instead of being lost.
func TestRefusedProgressKeepsWarnings(t *testing.T) {
	srv := startServer(t)
	src := t.TempDir()
	// A socket is skipped with a warning; named to come first in the
	// walk, its warning goes out with the first progress report.
	ln, err := net.Listen("unix", filepath.Join(src, "0.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	writeFiles(t, src, 8, 1<<20, 5)
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	proxy := startProxy(t, srv.URL)
	proxy.mu.Lock()
	proxy.refuseProgress = true
	proxy.mu.Unlock()
	runAgent(t, proxy.URL, fsrv.ActivationToken, t.TempDir())
	ctx := context.Background()
	started, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	job := waitJob(t, srv, started.ID)
	if job.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", job)
	}
	if proxy.refused.Load() == 0 {
		t.Fatal("no progress report was refused: the test did not test")
	}
	if !strings.Contains(strings.Join(job.Warnings, "\n"), "socket is not backed up") {
		t.Fatalf("the socket's warning was lost with a refused progress report: warnings %q", job.Warnings)
	}
}
