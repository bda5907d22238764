//go:build linux || darwin

package pgembed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// knobs holds settings that only tests turn.
type knobs struct {
	search *searchSpec // nil means the real machine
	runAs  string      // user to run as when root; "" means HAVEN_PG_USER or the default
	// noDeathSig leaves postgres running when this process dies, which is
	// how tests manufacture an orphaned postmaster.
	noDeathSig bool
}

// Start runs the cluster in opts.Dir, creating it with initdb on first use,
// and returns once opts.Database accepts connections. A cluster left behind
// by a previous process that was killed (stale lock files, or a postmaster
// still running) is cleaned up first.
//
// When the process runs as root, postgres runs as HAVEN_PG_USER, else
// "postgres" if that user exists, else "nobody"; the cluster directory is
// chowned to that user and any ancestor directory it cannot traverse gets o+x
// (each change is logged at WARN).
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	return start(ctx, opts, knobs{})
}

func start(ctx context.Context, opts Options, in knobs) (_ *Cluster, err error) {
	if opts.Dir == "" {
		return nil, errors.New("pgembed: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := checkSocketPath(dir); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	database := opts.Database
	if database == "" {
		database = DefaultDatabase
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	search := defaultSearch()
	if in.search != nil {
		search = *in.search
	}
	candidates, err := findAll(search)
	if err != nil {
		return nil, err
	}

	var user *runUser
	if os.Geteuid() == 0 {
		name := in.runAs
		if name == "" {
			name = os.Getenv("HAVEN_PG_USER")
		}
		if user, err = resolveRunUser(name); err != nil {
			return nil, err
		}
	}

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c := &Cluster{dir: dir, dataDir: filepath.Join(dir, dataName), log: log, settings: opts.Settings, role: opts.Role}
	if err := c.lock(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.closeFiles()
		}
	}()

	if c.bin, err = pickBinaries(candidates, c.dataDir); err != nil {
		return nil, err
	}
	// MkdirAll leaves an existing directory's mode alone, and with trust
	// authentication this mode is what keeps other local users out.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, err
	}
	if user != nil {
		if err := ensureTraversable(dir, user, log); err != nil {
			return nil, err
		}
	}
	logOffset, err := c.openLog()
	if err != nil {
		return nil, err
	}
	if user != nil {
		if err := chownTree(dir, user); err != nil {
			return nil, fmt.Errorf("give %s to user %s: %w", dir, user.name, err)
		}
	}

	userName := currentUserName()
	if user != nil {
		userName = user.name
	}
	log.Info("starting embedded PostgreSQL", "dir", dir, "version", c.bin.Version, "bindir", c.bin.Dir, "user", userName)

	if err := c.initIfNeeded(ctx, user, opts.NoFsync); err != nil {
		return nil, err
	}
	if err := c.clearStaleLocks(ctx); err != nil {
		return nil, err
	}
	if err := c.startPostgres(user, opts.NoFsync, in.noDeathSig); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, logOffset); err != nil {
		c.abort()
		return nil, err
	}
	if err := c.CreateDatabase(ctx, database); err != nil {
		c.abort()
		return nil, err
	}
	c.ready.Store(true)
	log.Info("embedded PostgreSQL ready", "dir", dir, "pid", c.cmd.Process.Pid, "database", database)
	return c, nil
}

// Stop shuts postgres down with a fast shutdown (SIGINT: roll back open
// transactions, checkpoint, exit). If that has not finished when ctx ends it
// escalates to an immediate shutdown (SIGQUIT), which is crash-safe but
// replays WAL on the next start. Stop is idempotent.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	c.stopping.Store(true)
	defer c.closeFiles()

	select {
	case <-c.exited:
		if c.exitErr != nil {
			return fmt.Errorf("postgres had already exited: %w", c.exitErr)
		}
		return nil
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.exited:
		c.log.Info("embedded PostgreSQL stopped", "dir", c.dir)
		return nil
	case <-ctx.Done():
	}
	c.log.Warn("embedded PostgreSQL did not finish a fast shutdown in time; forcing an immediate shutdown", "dir", c.dir)
	c.forceExit()
	return fmt.Errorf("postgres did not stop before the deadline (%w); forced an immediate shutdown", ctx.Err())
}

// Kill ends postgres and every process of it at once with SIGKILL, as a
// crash of the host would: no shutdown checkpoint, nothing more written,
// and the next start replays WAL. For tests of what survives a crash.
func (c *Cluster) Kill() {
	c.stopOnce.Do(func() {
		c.stopping.Store(true)
		// Its own process group (see startPostgres): the backends and
		// the archiver die with it, not a moment later.
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		c.closeFiles()
	})
}

// abort gets rid of a postgres that failed to become usable during Start.
func (c *Cluster) abort() {
	c.stopping.Store(true)
	c.forceExit()
	c.closeFiles()
}

func (c *Cluster) forceExit() {
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func (c *Cluster) closeFiles() {
	if c.logFile != nil {
		c.logFile.Close()
	}
	// Closing the descriptor releases the flock.
	if c.lockFile != nil {
		c.lockFile.Close()
	}
}

// lock takes an exclusive flock on the cluster directory for as long as the
// Cluster lives. Besides refusing a second haven on the same directory, it is
// what makes orphan detection safe: whoever holds the lock owns any postgres
// running there, so a postmaster found running while we hold it was left
// behind by a dead process. The descriptor is close-on-exec, so postgres never
// inherits the lock and cannot keep it alive after we die.
func (c *Cluster) lock() error {
	p := filepath.Join(c.dir, lockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock cluster directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(p)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("cluster directory %s is in use by another process (pid %s)", c.dir, strings.TrimSpace(string(holder)))
		}
		return fmt.Errorf("lock cluster directory: %w", err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	c.lockFile = f
	return nil
}

// openLog opens postgres.log for appending and returns the offset where this
// start's output begins, so a failure report shows only this attempt.
func (c *Cluster) openLog() (int64, error) {
	p := filepath.Join(c.dir, logName)
	// postgres writes the file directly for its whole life, so the only
	// chance to keep it bounded is between runs.
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxLogBytes {
		_ = os.Rename(p, p+".1")
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("open postgres log: %w", err)
	}
	fmt.Fprintf(f, "%s haven: starting PostgreSQL %s from %s\n", time.Now().UTC().Format(time.RFC3339), c.bin.Version, c.bin.Dir)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	c.logFile = f
	return fi.Size(), nil
}

// pickBinaries prefers the newest installation, except that an existing
// cluster can only be opened by the major version that created it.
func pickBinaries(candidates []Binaries, dataDir string) (Binaries, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if errors.Is(err, fs.ErrNotExist) {
		return candidates[0], nil
	}
	if err != nil {
		return Binaries{}, err
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return Binaries{}, fmt.Errorf("unreadable %s: %q", filepath.Join(dataDir, "PG_VERSION"), b)
	}
	var have []string
	for _, cand := range candidates {
		if cand.Major == major {
			return cand, nil
		}
		have = append(have, cand.Version)
	}
	return Binaries{}, fmt.Errorf("%w for the existing cluster in %s, created by PostgreSQL %d (found only %s): install PostgreSQL %d server binaries, or upgrade the cluster with pg_upgrade",
		ErrNoBinaries, dataDir, major, strings.Join(have, ", "), major)
}

// initIfNeeded runs initdb into a scratch directory and renames it into place,
// so a first start that is interrupted never leaves a half-built data
// directory that would look initialized.
func (c *Cluster) initIfNeeded(ctx context.Context, user *runUser, noFsync bool) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	if _, err := os.Stat(c.dataDir); err == nil {
		return fmt.Errorf("%s exists but is not a PostgreSQL data directory (no PG_VERSION): move it aside", c.dataDir)
	}
	tmp := c.dataDir + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	args := []string{
		"-D", tmp,
		"-U", Superuser,
		// Only the unix socket exists, and the directory mode guards it;
		// TCP is refused even if someone turns listen_addresses on.
		"--auth-local=trust", "--auth-host=reject",
		"-E", "UTF8", "--no-locale",
		"--no-instructions",
	}
	if noFsync {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin.Dir, "initdb"), args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = procAttr(user, syscall.SIGKILL, false)

	c.log.Info("initializing new PostgreSQL cluster", "dir", c.dataDir)
	start := time.Now()
	err := runPinned(cmd)
	fmt.Fprintf(c.logFile, "%s haven: initdb output:\n%s", time.Now().UTC().Format(time.RFC3339), out.Bytes())
	if err != nil {
		return fmt.Errorf("initdb failed (%v): %s", err, lastLines(out.String(), 10))
	}
	if err := os.Rename(tmp, c.dataDir); err != nil {
		return err
	}
	c.log.Info("initialized PostgreSQL cluster", "dir", c.dataDir, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func (c *Cluster) startPostgres(user *runUser, noFsync, noDeathSig bool) error {
	cmd := exec.Command(filepath.Join(c.bin.Dir, "postgres"), serverArgs(c.dir, c.dataDir, noFsync, c.settings)...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.Stdout = c.logFile
	cmd.Stderr = c.logFile
	// SIGINT asks for a fast shutdown, so a postmaster whose owner was
	// killed still checkpoints and exits cleanly.
	deathSig := syscall.SIGINT
	if noDeathSig {
		deathSig = 0
	}
	// Its own process group keeps a Ctrl-C aimed at haven from shutting the
	// database down underneath a server that is still draining its work.
	cmd.SysProcAttr = procAttr(user, deathSig, true)
	c.cmd = cmd
	c.exited = make(chan struct{})

	started := make(chan error, 1)
	go func() {
		// The kernel sends the parent-death signal when the forking
		// *thread* exits (go.dev/issue/27505). Pinning this goroutine to
		// its thread until postgres is gone keeps the runtime from ever
		// retiring that thread under a live postgres.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.exitErr = cmd.Wait()
		close(c.exited)
		if c.ready.Load() && !c.stopping.Load() {
			c.log.Error("embedded PostgreSQL exited unexpectedly", "err", c.exitErr, "log", filepath.Join(c.dir, logName))
		}
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	return nil
}

// waitReady polls with real connections: a socket file can exist while the
// server is still replaying WAL and refusing logins.
func (c *Cluster) waitReady(ctx context.Context, logOffset int64) error {
	logPath := filepath.Join(c.dir, logName)
	url := c.URL("postgres")
	var lastErr error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attempt, url)
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		lastErr = err
		select {
		case <-c.exited:
			return withLogTail(fmt.Errorf("postgres exited during startup (%v)", c.exitErr), logPath, logOffset)
		case <-ctx.Done():
			return withLogTail(fmt.Errorf("postgres did not accept connections on %s in time (%v)", filepath.Join(c.dir, socketName), lastErr), logPath, logOffset)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clearStaleLocks deals with what a killed haven leaves behind. postgres
// refuses to start while postmaster.pid or the socket lock names a live
// process, and after a reboot or in a container that PID is readily reused
// by something unrelated.
func (c *Cluster) clearStaleLocks(ctx context.Context) error {
	for _, p := range []string{filepath.Join(c.dataDir, "postmaster.pid"), filepath.Join(c.dir, socketName+".lock")} {
		if err := c.clearStaleLock(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) clearStaleLock(ctx context.Context, path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if pid < 0 {
		pid = -pid // a single-user backend records its PID negated
	}
	if err != nil || pid == 0 {
		c.log.Warn("removing unreadable PostgreSQL lock file", "file", path)
		return removeIfExists(path)
	}

	if !alive(pid) {
		c.log.Warn("removing stale PostgreSQL lock file left by an unclean stop", "file", path, "pid", pid)
		return removeIfExists(path)
	}
	args, _ := processArgs(pid)
	if !isPostmasterFor(args, c.dataDir) {
		cmdline := strings.Join(args, " ")
		if len(cmdline) > 100 {
			cmdline = cmdline[:100] + "..."
		}
		c.log.Warn("removing stale PostgreSQL lock file whose PID now belongs to another process", "file", path, "pid", pid, "process", cmdline)
		return removeIfExists(path)
	}
	c.log.Warn("stopping orphaned postgres left running by a previous haven process", "pid", pid, "dir", c.dataDir)
	if err := stopOrphan(ctx, pid); err != nil {
		return err
	}
	return removeIfExists(path)
}

// isPostmasterFor recognises a postmaster by the command line we give it; the
// postmaster keeps its original argv, unlike its child processes.
func isPostmasterFor(args []string, dataDir string) bool {
	if len(args) < 3 {
		return false
	}
	if base := filepath.Base(args[0]); base != "postgres" && base != "postmaster" {
		return false
	}
	for i, a := range args[1:] {
		if a == "-D" && i+2 < len(args) && filepath.Clean(args[i+2]) == dataDir {
			return true
		}
	}
	return false
}

// stopOrphan shuts down a postmaster that is not our child, so it can only be
// polled, not waited for.
func stopOrphan(ctx context.Context, pid int) error {
	steps := []struct {
		sig   syscall.Signal
		grace time.Duration
	}{
		{syscall.SIGINT, 30 * time.Second},
		{syscall.SIGQUIT, 5 * time.Second},
		{syscall.SIGKILL, 5 * time.Second},
	}
	for _, s := range steps {
		if err := syscall.Kill(pid, s.sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop orphaned postgres (pid %d): %w", pid, err)
		}
		if waitGone(ctx, pid, s.grace) {
			return nil
		}
	}
	return fmt.Errorf("orphaned postgres (pid %d) did not exit", pid)
}

func waitGone(ctx context.Context, pid int, grace time.Duration) bool {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if !alive(pid) {
			return true
		}
		select {
		case <-ctx.Done():
			return !alive(pid)
		case <-deadline.C:
			return !alive(pid)
		case <-tick.C:
		}
	}
}

// alive treats a zombie as dead: an orphan that exited stays a zombie until
// its new parent reaps it, and some container init processes never do.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return !isZombie(pid)
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func procAttr(user *runUser, deathSig syscall.Signal, setpgid bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: setpgid}
	if user != nil {
		attr.Credential = &syscall.Credential{Uid: user.uid, Gid: user.gid, Groups: user.groups}
	}
	setDeathSignal(attr, deathSig)
	return attr
}

// runPinned runs a short-lived child with a parent-death signal; see
// startPostgres for why the thread is pinned.
func runPinned(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Run()
}

// childEnv is deliberately minimal: PG* variables would override our settings
// (PGPORT changes the socket name), and haven's own environment may carry
// credentials that the database user has no business reading from
// /proc/<pid>/environ.
func childEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C"}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
