package agent_test

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// childServerEnv makes the test binary a `haven server` process (listen
// address, data dir and database URL, split on "|"), so a test can kill a
// real server with SIGKILL. It rescues silent jobs after two seconds and
// takes an agent silent for three seconds for offline, as tests need.
const childServerEnv = "HAVEN_TEST_CHILD_SERVER"

func runChildServer(v string) int {
	parts := strings.Split(v, "|")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := server.Config{Listen: parts[0], DataDir: parts[1], DatabaseURL: parts[2], LogLevel: "info",
		RescueAfter: 2 * time.Second, AgentOfflineAfter: 3 * time.Second, JobAttempts: 5}
	s, err := server.Start(ctx, cfg, server.NewLogger(os.Stderr, cfg.LogLevel))
	if err != nil {
		fmt.Fprintln(os.Stderr, "haven server:", err)
		return 1
	}
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdown); err != nil {
		return 1
	}
	return 0
}

// proc is a child process the test may kill -9 and start again.
type proc struct {
	t    *testing.T
	name string
	env  string
	log  *os.File
	cmd  *exec.Cmd
}

func newProc(t *testing.T, name, env string) *proc {
	log, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, env: env, log: log}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	p.start()
	return p
}

func (p *proc) start() {
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(os.Environ(), p.env)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	fmt.Fprintf(p.log, "=== killed with SIGKILL at %s\n", time.Now().Format(time.RFC3339Nano))
}

func (p *proc) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
}

func waitReady(t *testing.T, endpoint, dataDir string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		res, err := http.Get(endpoint + "/readyz")
		if err == nil {
			res.Body.Close()
			if tok, terr := os.ReadFile(filepath.Join(dataDir, server.AdminTokenFile)); res.StatusCode == 200 && terr == nil {
				return strings.TrimSpace(string(tok))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the server process never became ready")
	return ""
}

// treeBytes is what the regular files under dir hold.
func treeBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

// TestKilledServerOrAgentJobsFinish kills the server process or the agent
// process with SIGKILL at several points of backups and restores, and
// starts it again: every job ends succeeded, each point verifies, and
// each restore is byte-identical to its source.
// crashRig is a server and an agent, each a child process the test may
// kill with SIGKILL and start again, over one database.
type crashRig struct {
	c                  *api.Client
	srvProc, agentProc *proc
	endpoint, dataDir  string
}

// newCrashRig starts the server; declare declares the workload's assets
// through it and returns the agent file server's activation token, with
// which the agent starts.
func newCrashRig(t *testing.T, declare func(c *api.Client) (activation string)) *crashRig {
	dbURL := testparts.PostgresURL(t)
	r := &crashRig{dataDir: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r.endpoint = "http://" + addr
	r.srvProc = newProc(t, "server", childServerEnv+"="+strings.Join([]string{addr, r.dataDir, dbURL}, "|"))
	token := waitReady(t, r.endpoint, r.dataDir)
	if r.c, err = api.NewClient(api.ClientOptions{Endpoint: r.endpoint, Token: token, MaxRetries: 5}); err != nil {
		t.Fatal(err)
	}
	activation := declare(r.c)
	r.agentProc = newProc(t, "agent", childEnv+"="+strings.Join([]string{r.endpoint, activation, t.TempDir()}, "|"))
	return r
}

// crashWorkload is what the kill rounds back up and restore.
type crashWorkload struct {
	assetID, storeDir string
	// fill writes round i's content, the backup's source; it returns
	// what the restore must give back.
	fill func(i int) map[string]string
	// restore is the request restoring a point; written is the directory
	// whose bytes show the restore's progress, and restored reads what
	// it wrote back in fill's terms.
	restore func(pointID string) (req api.RestoreRequest, written string, restored func() map[string]string)
}

// point is a moment of a job at which a kill comes.
type point struct {
	name string
	// reached tells, from the job and what is on disk, that the job is
	// there.
	reached func(j *api.Job, stored, restored int64) bool
}

// crashRound kills victims of one backup and one restore at the given
// moments.
type crashRound struct {
	backupVictim  *proc
	backupAt      func(base int64) point
	restoreVictim *proc
	restoreAt     point
}

// killRounds runs each round: a backup of w whose backupVictim is killed
// at backupAt and started again, a verification of its point, and a
// restore of it whose restoreVictim is killed likewise; every job must
// succeed and the restore give back exactly what was backed up.
func (r *crashRig) killRounds(t *testing.T, w crashWorkload, rounds []crashRound) {
	ctx := context.Background()
	c := r.c
	kill := func(what string, jobID string, victim *proc, at point, dst string) *api.Job {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			j, err := c.GetJob(ctx, jobID)
			if err != nil {
				t.Fatal(err)
			}
			if j.Finished() {
				t.Fatalf("%s finished before the %s could be killed %s; make the tree larger: %+v", what, victim.name, at.name, j)
			}
			if at.reached(j, packBytes(w.storeDir), treeBytes(dst)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never got %s: %+v", what, at.name, j)
			}
			time.Sleep(20 * time.Millisecond)
		}
		victim.kill()
		t.Logf("%s: killed the %s %s", what, victim.name, at.name)
		victim.start()
		if victim == r.srvProc {
			waitReady(t, r.endpoint, r.dataDir)
		}
		wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
		defer cancel()
		j, err := c.WaitJob(wctx, jobID, 200*time.Millisecond)
		if err != nil || j.State != api.JobSucceeded {
			t.Fatalf("%s after the %s was killed %s: %v %+v", what, victim.name, at.name, err, j)
		}
		return j
	}
	for i, round := range rounds {
		want := w.fill(i)
		base := packBytes(w.storeDir)
		j, err := c.BackupNow(ctx, w.assetID)
		if err != nil {
			t.Fatal(err)
		}
		b := kill(fmt.Sprintf("round %d backup", i), j.ID, round.backupVictim, round.backupAt(base), "")

		var v api.Job
		if err := c.Do(ctx, http.MethodPost, "/v1/storages/"+b.StorageID+"/verify", nil, map[string]any{"point_ids": []string{b.PointID}}, &v); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		vj, err := c.WaitJob(wctx, v.ID, 200*time.Millisecond)
		cancel()
		if err != nil || vj.State != api.JobSucceeded {
			t.Fatalf("round %d: verifying the point: %v %+v", i, err, vj)
		}

		req, written, restored := w.restore(b.PointID)
		rj, err := c.Restore(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		kill(fmt.Sprintf("round %d restore", i), rj.ID, round.restoreVictim, round.restoreAt, written)
		got := restored()
		for p, w := range want {
			if got[p] != w {
				t.Errorf("round %d: %s restored as %q, want %q", i, p, got[p], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("round %d: %d entries restored, %d backed up (the backup: %d files; its warnings %q)", i, len(got), len(want), b.Progress.FilesDone, b.Warnings)
		}
	}
}

const crashFiles, crashFileSize = 48, 1 << 20

var (
	early     = point{"as it starts", func(j *api.Job, _, _ int64) bool { return j.State == api.JobRunning }}
	midBackup = func(base int64) point {
		return point{"mid-upload", func(_ *api.Job, stored, _ int64) bool { return stored-base > crashFiles*crashFileSize/5 }}
	}
	midRestore = point{"mid-write", func(_ *api.Job, _, restored int64) bool { return restored > crashFiles*crashFileSize/5 }}
	atStart    = func(int64) point { return early }
)

func TestKilledServerOrAgentJobsFinish(t *testing.T) {
	src := t.TempDir()
	var set *api.Fileset
	var storeDir string
	rig := newCrashRig(t, func(c *api.Client) string {
		var fsrv *api.FileServer
		set, fsrv, storeDir = agentFileset(t, c, src)
		return fsrv.ActivationToken
	})
	w := crashWorkload{assetID: set.ID, storeDir: storeDir,
		fill: func(i int) map[string]string {
			// New content each round, so each backup has data to move.
			os.RemoveAll(src)
			os.MkdirAll(src, 0o755)
			writeFiles(t, src, crashFiles, crashFileSize, uint64(100+i))
			want := tree(t, src)
			delete(want, ".")
			return want
		},
		restore: func(pointID string) (api.RestoreRequest, string, func() map[string]string) {
			dst := t.TempDir()
			return api.RestoreRequest{PointID: pointID, TargetPath: dst}, dst, func() map[string]string {
				got := tree(t, filepath.Join(dst, src))
				delete(got, ".")
				return got
			}
		},
	}
	rig.killRounds(t, w, []crashRound{
		{rig.srvProc, atStart, rig.srvProc, midRestore},
		{rig.srvProc, midBackup, rig.agentProc, midRestore},
		{rig.agentProc, atStart, rig.srvProc, early},
		{rig.agentProc, midBackup, rig.agentProc, early},
	})
}

// TestAgentGivingUpDoesNotOrphanItsJob: the server refuses an agent's
// report of a finished backup until the agent's client gives up on it.
// The agent, still online, lets the job go; the server hands it out again
// and the job finishes instead of showing running for good.
func TestAgentGivingUpDoesNotOrphanItsJob(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	src := t.TempDir()
	writeFiles(t, src, 5, 64<<10, 7)
	set, fsrv, _ := agentFileset(t, srv.Client, src)

	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var refused atomic.Int32
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/complete") && refused.Add(1) <= 6 { // the agent's first try and its 5 retries
			http.Error(w, "bad gateway (test)", http.StatusBadGateway)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer front.Close()
	runAgent(t, front.URL, fsrv.ActivationToken, t.TempDir())

	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	done := waitJob(t, srv, j.ID)
	if done.State != api.JobSucceeded || refused.Load() <= 6 {
		t.Fatalf("after the agent gave up reporting (%d reports refused): %+v", refused.Load(), done)
	}
}
