//go:build linux || darwin

package pgembed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFirstStartThenRestart(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postgres")
	log, logs := testLogger(t)
	c := startCluster(t, dir, log, knobs{})

	if !strings.Contains(logs.String(), "initialized PostgreSQL cluster") {
		t.Errorf("first start did not run initdb; log:\n%s", logs)
	}
	for _, f := range []string{"data/PG_VERSION", socketName, logName} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("expected %s in the cluster dir: %v", f, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, logName)); !strings.Contains(string(b), "database system is ready to accept connections") {
		t.Errorf("postgres output did not reach %s:\n%s", logName, b)
	}

	conn := connect(t, c.URL(DefaultDatabase))
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
	for sql, want := range map[string]string{
		"SELECT current_database()":    DefaultDatabase,
		"SELECT current_user":          Superuser,
		"SHOW listen_addresses":        "", // socket only: no TCP listener
		"SHOW unix_socket_directories": dir,
		"SHOW server_encoding":         "UTF8",
		"SHOW lc_collate":              "C",
		"SHOW fsync":                   "off",
		"SHOW TimeZone":                "UTC",
	} {
		if got := queryString(t, conn, sql); got != want {
			t.Errorf("%s = %q, want %q", sql, got, want)
		}
	}
	checkOwnership(t, c, logs.String())

	for range 2 {
		if err := c.CreateDatabase(context.Background(), "extra"); err != nil {
			t.Fatalf("CreateDatabase: %v", err)
		}
	}
	if got := queryString(t, connect(t, c.URL("extra")), "SELECT current_database()"); got != "extra" {
		t.Errorf("connected to %q, want extra", got)
	}
	if err := c.CreateDatabase(context.Background(), strings.Repeat("n", 64)); err == nil {
		t.Error("CreateDatabase accepted a 64-byte name, which PostgreSQL would truncate")
	}

	if _, err := conn.Exec(context.Background(), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before restart')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())

	pid := c.cmd.Process.Pid
	stopCluster(t, c)
	if alive(pid) {
		t.Fatalf("postgres (pid %d) still running after Stop", pid)
	}
	if _, err := os.Stat(filepath.Join(dir, socketName)); err == nil {
		t.Error("socket still present after Stop")
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}

	log2, logs2 := testLogger(t)
	c2 := startCluster(t, dir, log2, knobs{})
	if strings.Contains(logs2.String(), "initializing") {
		t.Errorf("restart ran initdb again; log:\n%s", logs2)
	}
	if got := queryString(t, connect(t, c2.URL(DefaultDatabase)), "SELECT v FROM kept"); got != "before restart" {
		t.Errorf("after restart kept.v = %q", got)
	}
}

// checkOwnership verifies the root path: postgres runs as the unprivileged
// user, owns a 0700 cluster dir, and the 0700 directory t.TempDir creates
// above it was opened with o+x (and logged).
func checkOwnership(t *testing.T, c *Cluster, logs string) {
	t.Helper()
	fi, err := os.Stat(c.dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("cluster dir mode %04o, want 0700", fi.Mode().Perm())
	}
	owner := fi.Sys().(*syscall.Stat_t).Uid
	procUID := processUID(t, c.cmd.Process.Pid)
	if os.Geteuid() != 0 {
		if owner != uint32(os.Geteuid()) || procUID != uint32(os.Geteuid()) {
			t.Errorf("not root: dir owner %d, postgres uid %d, want %d", owner, procUID, os.Geteuid())
		}
		return
	}
	want, err := resolveRunUser(os.Getenv("HAVEN_PG_USER"))
	if err != nil {
		t.Fatal(err)
	}
	if owner != want.uid || procUID != want.uid {
		t.Errorf("dir owner %d, postgres uid %d, want %s (%d)", owner, procUID, want.name, want.uid)
	}
	for _, p := range ancestors(c.dir) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o001 == 0 && fi.Sys().(*syscall.Stat_t).Uid != want.uid {
			t.Errorf("ancestor %s mode %04o is not traversable by others", p, fi.Mode().Perm())
		}
	}
	testRoot := filepath.Dir(filepath.Dir(c.dir)) // t.TempDir()'s 0700 parent
	if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "dir="+testRoot) || !strings.Contains(logs, "new_mode=0701") {
		t.Errorf("expected a WARN about opening %s; log:\n%s", testRoot, logs)
	}
}

func processUID(t *testing.T, pid int) uint32 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "Uid:" {
			uid, _ := strconv.ParseUint(f[1], 10, 32)
			return uint32(uid)
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return 0
}

// TestRestartAfterKill9 kills the owning process outright. The parent-death
// signal must take postgres down with it, and the next Start must come up on
// the same data.
func TestRestartAfterKill9(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postgres")
	child, postmaster := startChild(t, dir, false)
	exec1(t, (&Cluster{dir: dir}).URL(DefaultDatabase), "CREATE TABLE kept AS SELECT 'survived kill -9'::text AS v")

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	waitDead(t, postmaster, 20*time.Second)

	log, logs := testLogger(t)
	c := startCluster(t, dir, log, knobs{})
	if strings.Contains(logs.String(), "initializing") {
		t.Errorf("restart ran initdb again; log:\n%s", logs)
	}
	if got := queryString(t, connect(t, c.URL(DefaultDatabase)), "SELECT v FROM kept"); got != "survived kill -9" {
		t.Errorf("kept.v = %q", got)
	}
}

// TestRestartWithOrphanedPostmaster covers a postmaster that outlived its
// owner (no parent-death signal, as on macOS): Start must stop it and start
// its own.
func TestRestartWithOrphanedPostmaster(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postgres")
	child, orphan := startChild(t, dir, true)
	t.Cleanup(func() {
		if args, _ := processArgs(orphan); isPostmasterFor(args, filepath.Join(dir, dataName)) {
			_ = syscall.Kill(orphan, syscall.SIGQUIT)
		}
	})
	exec1(t, (&Cluster{dir: dir}).URL(DefaultDatabase), "CREATE TABLE kept AS SELECT 'survived orphaning'::text AS v")

	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	time.Sleep(100 * time.Millisecond)
	if !alive(orphan) {
		t.Fatal("postmaster died with its owner; the test needs an orphan")
	}

	log, logs := testLogger(t)
	c := startCluster(t, dir, log, knobs{})
	if !strings.Contains(logs.String(), "stopping orphaned postgres") {
		t.Errorf("no orphan warning; log:\n%s", logs)
	}
	if alive(orphan) {
		t.Errorf("orphaned postmaster %d still running", orphan)
	}
	if c.cmd.Process.Pid == orphan {
		t.Error("cluster reports the orphan's PID")
	}
	if got := queryString(t, connect(t, c.URL(DefaultDatabase)), "SELECT v FROM kept"); got != "survived orphaning" {
		t.Errorf("kept.v = %q", got)
	}
}

// TestStaleLockFiles runs as "nobody" (when root) to cover the fallback user,
// and plants lock files naming a dead PID and an unrelated live one (PID 1),
// which postgres itself would refuse to start over.
func TestStaleLockFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postgres")
	log, _ := testLogger(t)
	c := startCluster(t, dir, log, knobs{runAs: "nobody"})
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		if uid := processUID(t, c.cmd.Process.Pid); strconv.Itoa(int(uid)) != nobody.Uid {
			t.Errorf("postgres runs as uid %d, want nobody (%s)", uid, nobody.Uid)
		}
	}

	_, err := start(context.Background(), Options{Dir: dir}, knobs{})
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second Start on a live cluster: %v", err)
	}
	stopCluster(t, c)

	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(dir, dataName, "postmaster.pid")
	if err := os.WriteFile(pidFile, []byte("1\n"+filepath.Join(dir, dataName)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, socketName+".lock"), []byte(fmt.Sprintf("%d\n", gone.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}

	log2, logs2 := testLogger(t)
	startCluster(t, dir, log2, knobs{runAs: "nobody"})
	for _, want := range []string{"whose PID now belongs to another process", "left by an unclean stop"} {
		if !strings.Contains(logs2.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs2)
		}
	}
}

func TestStartFailureShowsLogTail(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "postgres")
	log, _ := testLogger(t)
	c := startCluster(t, dir, log, knobs{})
	stopCluster(t, c)

	conf := filepath.Join(dir, dataName, "postgresql.conf")
	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, append(orig, "this line is not a setting\n"...), 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = start(ctx, Options{Dir: dir, Logger: log, NoFsync: true}, knobs{})
	if err == nil {
		t.Fatal("start succeeded with a broken postgresql.conf")
	}
	t.Logf("start error: %v", err)
	for _, want := range []string{"postgres exited during startup", "last lines of", "syntax error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	// The failed attempt must release the directory for the next one.
	if err := os.WriteFile(conf, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = start(ctx, Options{Dir: dir, Logger: log, NoFsync: true}, knobs{})
	if err != nil {
		t.Fatalf("start after a failed start: %v", err)
	}

	// A deadline that has already passed skips the fast shutdown and forces
	// an immediate one, which the next start must recover from.
	expired, cancelExpired := context.WithCancel(context.Background())
	cancelExpired()
	pid := c.cmd.Process.Pid
	if err := c.Stop(expired); err == nil || !strings.Contains(err.Error(), "forced an immediate shutdown") {
		t.Errorf("Stop with an expired context: %v", err)
	}
	if alive(pid) {
		t.Fatalf("postgres %d survived the forced shutdown", pid)
	}
	startCluster(t, dir, log, knobs{})
	if tail := logTail(filepath.Join(dir, logName), 0); !strings.Contains(tail, "not properly shut down") {
		t.Errorf("expected crash recovery after the immediate shutdown; log tail:\n%s", tail)
	}
}

func TestSocketPathTooLong(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), strings.Repeat("x", 100))
	_, err := Start(context.Background(), Options{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "byte limit") {
		t.Fatalf("want a socket path length error, got %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory created despite the error: %v", err)
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	c := &Cluster{dir: "/var/lib/haven data/postgres"}
	cfg, err := pgx.ParseConfig(c.URL("my db"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != c.dir || cfg.Port != port || cfg.Database != "my db" || cfg.User != Superuser || cfg.TLSConfig != nil {
		t.Errorf("URL %s parsed to host=%q port=%d db=%q user=%q tls=%v", c.URL("my db"), cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.TLSConfig != nil)
	}
}

func TestIsPostmasterFor(t *testing.T) {
	t.Parallel()
	data := "/srv/haven/postgres/data"
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"/usr/lib/postgresql/15/bin/postgres", "-D", data, "-c", "port=5432"}, true},
		{[]string{"/usr/lib/postgresql/15/bin/postgres", "-D", data + "/"}, true},
		{[]string{"/usr/lib/postgresql/15/bin/postgres", "-D", "/other/data"}, false},
		{[]string{"postgres: checkpointer", "", ""}, false},
		{[]string{"/bin/sleep", "-D", data}, false},
		{nil, false},
	} {
		if got := isPostmasterFor(tc.args, data); got != tc.want {
			t.Errorf("isPostmasterFor(%q) = %v", tc.args, got)
		}
	}
}

func TestResolveRunUser(t *testing.T) {
	t.Parallel()
	wantDefault := "postgres"
	if _, err := user.Lookup("postgres"); err != nil {
		wantDefault = "nobody"
	}
	if u, err := resolveRunUser(""); err != nil || u.name != wantDefault {
		t.Errorf("default user = %+v, %v; want %s", u, err, wantDefault)
	}
	if u, err := resolveRunUser("nobody"); err != nil || u.name != "nobody" {
		t.Errorf("nobody = %+v, %v", u, err)
	}
	if _, err := resolveRunUser("root"); err == nil || !strings.Contains(err.Error(), "refuses to run as root") {
		t.Errorf("root accepted: %v", err)
	}
	if _, err := resolveRunUser("no-such-user-haven"); err == nil || !strings.Contains(err.Error(), "HAVEN_PG_USER") {
		t.Errorf("unknown user: %v", err)
	}
}
