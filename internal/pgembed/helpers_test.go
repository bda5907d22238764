//go:build linux || darwin

package pgembed

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The kill -9 tests re-execute the test binary in this role: start a cluster
// in $PGEMBED_TEST_CHILD_DIR, report the postmaster PID, then block until
// killed.
const (
	childDirEnv    = "PGEMBED_TEST_CHILD_DIR"
	childOrphanEnv = "PGEMBED_TEST_CHILD_ORPHAN"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		runChild(dir, os.Getenv(childOrphanEnv) == "1")
		return
	}
	os.Exit(m.Run())
}

func runChild(dir string, orphan bool) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	c, err := start(context.Background(), Options{Dir: dir, NoFsync: true, Logger: log}, knobs{noDeathSig: orphan})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	fmt.Printf("ready %d\n", c.cmd.Process.Pid)
	for {
		time.Sleep(time.Hour)
	}
}

// startChild runs the child role and returns it with its postmaster's PID.
func startChild(t *testing.T, dir string, orphan bool) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childDirEnv+"="+dir)
	if orphan {
		cmd.Env = append(cmd.Env, childOrphanEnv+"=1")
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		s.Scan()
		line <- s.Text()
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		pid, err := strconv.Atoi(strings.TrimPrefix(l, "ready "))
		if err != nil {
			t.Fatalf("child did not start a cluster (output %q); stderr:\n%s", l, stderr.String())
		}
		return cmd, pid
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not report readiness; stderr:\n%s", stderr.String())
	}
	return nil, 0
}

// testLogger captures everything logged and prints it if the test fails, or
// always with PGEMBED_TEST_VERBOSE=1.
func testLogger(t *testing.T) (*slog.Logger, *syncBuffer) {
	t.Helper()
	var buf syncBuffer
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("PGEMBED_TEST_VERBOSE") != "" {
			t.Logf("pgembed log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), &buf
}

// startCluster starts a cluster that the test stops on cleanup. A machine
// without PostgreSQL fails here with the install hint: these tests never skip.
func startCluster(t *testing.T, dir string, log *slog.Logger, in knobs) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := start(ctx, Options{Dir: dir, Logger: log, NoFsync: true}, in)
	if err != nil {
		t.Fatalf("start embedded PostgreSQL: %v", err)
	}
	t.Cleanup(func() { stopCluster(t, c) })
	return c
}

func stopCluster(t *testing.T, c *Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func waitDead(t *testing.T, pid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive after %v", pid, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
