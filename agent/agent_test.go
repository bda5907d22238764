package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

const childEnv = "HAVEN_TEST_AGENT_CHILD"

// testRestoreRoots is where the tests' agents (and their file servers)
// allow restores: the temp dirs the tests restore into.
var testRestoreRoots = []string{os.TempDir()}

func TestMain(m *testing.M) {
	if v := os.Getenv(childServerEnv); v != "" {
		os.Exit(runChildServer(v))
	}
	if v := os.Getenv(childEnv); v != "" {
		parts := strings.Split(v, "|")
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		if err := agent.Run(ctx, agent.Config{Server: parts[0], ActivationToken: parts[1], StateDir: parts[2], PollWait: time.Second, RestoreRoots: testRestoreRoots}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	servertest.StopShared()
	if havenBinaryDir != "" {
		os.RemoveAll(havenBinaryDir)
	}
	os.Exit(code)
}

func startServer(t testing.TB) *servertest.Server {
	return servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 3 * time.Second })
}

// agentFileset declares an agent file server and a fileset over src, and
// returns the fileset, the file server (with its activation token) and the
// storage's directory.
func agentFileset(t *testing.T, c *api.Client, src string) (*api.Fileset, *api.FileServer, string) {
	t.Helper()
	set, fsrv, storeDir := declareFileset(t, c, api.LocationAgent, src, nil)
	if fsrv.ActivationToken == "" || fsrv.AgentStatus != "pending" {
		t.Fatalf("agent file server: %+v", fsrv)
	}
	return set, fsrv, storeDir
}

// declareFileset declares a storage, a policy, a file server at location
// (restoring under testRestoreRoots) and a fileset over src that leaves out
// what the exclude globs match; it returns the fileset, the file server
// and the storage's directory.
func declareFileset(t *testing.T, c *api.Client, location, src string, exclude []string) (*api.Fileset, *api.FileServer, string) {
	t.Helper()
	ctx := context.Background()
	storeDir := t.TempDir()
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "s", Kind: "filesystem", Path: storeDir}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "p", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	fsrv, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "remote", Hostname: "remote.example", OS: "linux",
		Location: location, RestoreRoots: testRestoreRoots}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "remote-docs", FileServerID: fsrv.ID,
		IncludePaths: []string{src}, ExcludeGlobs: exclude, PolicyID: pol.ID, StorageID: stg.ID}})
	if err != nil {
		t.Fatal(err)
	}
	return set, fsrv, storeDir
}

// runAgent runs an agent in this process against server (a URL).
func runAgent(t testing.TB, server, token, stateDir string) context.CancelFunc {
	return runAgentWith(t, agent.Config{Server: server, ActivationToken: token, StateDir: stateDir, RestoreRoots: testRestoreRoots})
}

// runAgentWith runs an agent in this process with this configuration.
func runAgentWith(t testing.TB, cfg agent.Config) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	cfg.PollWait = time.Second
	go func() {
		defer close(done)
		if err := agent.Run(ctx, cfg); err != nil {
			t.Errorf("agent: %v", err)
		}
	}()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func waitJob(t testing.TB, srv *servertest.Server, id string) *api.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	j, err := srv.Client.WaitJob(ctx, id, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("job %s: %v (%+v)", id, err, j)
	}
	return j
}

func tree(t *testing.T, dir string) map[string]string {
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, _ := os.Lstat(p)
		desc := fi.Mode().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" %x %d", sha256.Sum256(b), fi.ModTime().UnixNano())
		}
		out[rel] = desc
		return nil
	})
	return out
}

func writeFiles(t *testing.T, dir string, n, size int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range n {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%3))
		os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", i)), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAgentBackupRestoreAndOfflineQueue(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, 20, 64<<10, 1)
	set, fsrv, _ := agentFileset(t, srv.Client, src)

	// The agent is not running: the backup waits in the queue.
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	queued, _ := srv.Client.GetJob(ctx, j.ID)
	if queued.State != api.JobQueued || !strings.Contains(queued.Error, "agent") {
		t.Fatalf("with the agent offline the job should wait queued, got %+v", queued)
	}

	stateDir := t.TempDir()
	runAgent(t, srv.URL, fsrv.ActivationToken, stateDir)
	first := waitJob(t, srv, j.ID)
	// The agent kept its own credential, private, and not the one-time token.
	cred, err := os.ReadFile(filepath.Join(stateDir, "credential"))
	if info, serr := os.Stat(filepath.Join(stateDir, "credential")); err != nil || serr != nil || info.Mode().Perm() != 0o600 ||
		strings.TrimSpace(string(cred)) == fsrv.ActivationToken || len(strings.TrimSpace(string(cred))) == 0 {
		t.Fatalf("agent credential: %v %v", err, serr)
	}
	if first.State != api.JobSucceeded || first.PointID == "" || first.Progress.FilesDone != 20 {
		t.Fatalf("backup through the agent: %+v", first)
	}
	snapshot := tree(t, src)
	got, _ := srv.Client.FileServers().Get(ctx, fsrv.ID)
	if got.AgentStatus != "online" || got.ActivationToken != "" {
		t.Fatalf("file server after activation: %+v", got)
	}
	// The activation token was one-time.
	var act api.Activation
	err = srv.NewClient(t, "").Do(ctx, http.MethodPost, "/v1/agents/activate", nil, api.ActivateRequest{ActivationToken: fsrv.ActivationToken}, &act)
	if e, ok := err.(*api.Error); !ok || e.Status != http.StatusUnauthorized || e.Field != "activation_token" {
		t.Fatalf("reusing the activation token: %v", err)
	}

	// Change one file: the incremental sends only what changed.
	os.WriteFile(filepath.Join(src, "d0", "f000"), bytes.Repeat([]byte("x"), 1000), 0o640)
	j2, _ := srv.Client.BackupNow(ctx, set.ID)
	second := waitJob(t, srv, j2.ID)
	if second.State != api.JobSucceeded {
		t.Fatalf("incremental: %+v", second)
	}
	points, _ := srv.Client.ListPoints(ctx, set.ID, "", 0)
	if len(points.Items) != 2 || points.Items[0].Kind != api.BackupIncremental || points.Items[0].NewBytes > 64<<10 || points.Items[1].NewBytes < 20*64<<10 {
		t.Fatalf("points: %+v", points.Items)
	}

	// Restore the first point through the agent, to another directory.
	dst := t.TempDir()
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: first.PointID, TargetPath: dst})
	if err != nil {
		t.Fatal(err)
	}
	if rj := waitJob(t, srv, r.ID); rj.State != api.JobSucceeded {
		t.Fatalf("restore through the agent: %+v", rj)
	}
	restored := tree(t, filepath.Join(dst, src))
	for p, want := range snapshot {
		if p == "d0/f000" || p == "." {
			continue
		}
		if restored[p] != want {
			t.Errorf("%s: restored %q, want %q", p, restored[p], want)
		}
	}
	if restored["d0/f000"] == "" || strings.Contains(restored["d0/f000"], fmt.Sprintf("%x", sha256.Sum256(bytes.Repeat([]byte("x"), 1000)))) {
		t.Error("the restored first point holds the later content of d0/f000")
	}
}

// TestAgentKilledMidBackup kills the agent process while it uploads; the
// restarted agent takes the same job again, finishes it by deduplicating
// against what the killed one stored, and no partial point ever appears.
func TestAgentKilledMidBackup(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	const n, size = 60, 1 << 20
	writeFiles(t, src, n, size, 2)
	set, fsrv, storeDir := agentFileset(t, srv.Client, src)
	stateDir := t.TempDir()

	child := startChildAgent(t, srv.URL, fsrv.ActivationToken, stateDir)
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Kill it once some data is in the repository but the job is not done.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		cur, _ := srv.Client.GetJob(ctx, j.ID)
		if cur.Finished() {
			t.Fatalf("the backup finished before the kill; make the tree larger: %+v", cur)
		}
		if stored := packBytes(storeDir); stored > 10*size {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	if pts, _ := srv.Client.ListPoints(ctx, set.ID, "", 0); len(pts.Items) != 0 {
		t.Fatalf("a point is visible after the kill: %+v", pts.Items)
	}
	storedBefore := packBytes(storeDir)

	child = startChildAgent(t, srv.URL, fsrv.ActivationToken, stateDir)
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	done := waitJob(t, srv, j.ID)
	if done.State != api.JobSucceeded {
		t.Fatalf("after the agent restarted: %+v", done)
	}
	pts, _ := srv.Client.ListPoints(ctx, set.ID, "", 0)
	if len(pts.Items) != 1 || pts.Items[0].Files != n {
		t.Fatalf("points: %+v", pts.Items)
	}
	// What the killed agent stored was reused, not sent again.
	total := packBytes(storeDir)
	if total > int64(float64(n*size)*1.15) {
		t.Fatalf("the repository holds %d bytes for %d bytes of data (%d before the restart): uploads were repeated", total, n*size, storedBefore)
	}
	t.Logf("stored %d bytes before the kill, %d in all, for %d bytes of data", storedBefore, total, n*size)
}

// packBytes is what the repository's packs take on disk.
func packBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(filepath.Join(dir, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// TestAgentRestoreBytesAndTarget backs up, through the agent, two files
// whose names differ in one byte that is not UTF-8, plus a FIFO, and
// restores into an existing drwx------ directory: both files come back
// with their own names and content, one of them selected by its quoted
// path through the API, and the target keeps its mode and time.
func TestAgentRestoreBytesAndTarget(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	for name, data := range map[string]string{"x_\xff.txt": "ff", "x_\xfe.txt": "fe"} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	set, fsrv, _ := agentFileset(t, srv.Client, src)
	runAgent(t, srv.URL, fsrv.ActivationToken, t.TempDir())
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	b := waitJob(t, srv, j.ID)
	if b.State != api.JobSucceeded || len(b.Warnings) != 0 {
		t.Fatalf("backup: %+v", b)
	}

	restore := func(target string, paths ...string) {
		t.Helper()
		r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: b.PointID, TargetPath: target, Paths: paths})
		if err != nil {
			t.Fatal(err)
		}
		if rj := waitJob(t, srv, r.ID); rj.State != api.JobSucceeded {
			t.Fatalf("restore: %+v", rj)
		}
	}
	target := filepath.Join(t.TempDir(), "target")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1_700_000_000, 0)
	os.Chtimes(target, when, when)
	restore(target)
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o700 || !fi.ModTime().Equal(when) {
		t.Errorf("target after the restore: %v %v (%v), want 0700 and %v", fi.Mode(), fi.ModTime(), err, when)
	}
	for name, want := range map[string]string{"x_\xff.txt": "ff", "x_\xfe.txt": "fe"} {
		if got, err := os.ReadFile(filepath.Join(target, src, name)); string(got) != want {
			t.Errorf("%q: %q, %v", name, got, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(target, src, "pipe")); err != nil || fi.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("FIFO: %v, %v", fi, err)
	}

	one := t.TempDir()
	restore(one, strconv.Quote(filepath.Join(src, "x_\xfe.txt")))
	if got, _ := os.ReadFile(filepath.Join(one, src, "x_\xfe.txt")); string(got) != "fe" {
		t.Errorf("selected by quoted path: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(one, src, "x_\xff.txt")); err == nil {
		t.Error("the sibling was restored too")
	}
}
