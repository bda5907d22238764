package server_test

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// childServerEnv makes the test binary act as `haven server` with the
// arguments in the variable (split on the unit separator \x1f), so tests can kill a real server
// process with SIGKILL.
const childServerEnv = "HAVEN_TEST_CHILD_SERVER_ARGS"

// childFastRescueEnv is childServerEnv for a server that takes a job
// attempt silent for two seconds (not ten minutes) for one whose process
// died, and retries it: a test kills such a server with SIGKILL and sees
// the next one finish its jobs.
const childFastRescueEnv = "HAVEN_TEST_CHILD_SERVER_FAST_RESCUE_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(childServerEnv); ok {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := server.Main(ctx, strings.Split(args, "\x1f"), os.Stderr)
		stop()
		os.Exit(code)
	}
	if args, ok := os.LookupEnv(childFastRescueEnv); ok {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		cfg, err := server.ParseFlags(strings.Split(args, "\x1f"), os.Stderr)
		if err != nil {
			os.Exit(server.FlagsFailed(os.Stderr, err))
		}
		cfg.RescueAfter, cfg.JobAttempts = 2*time.Second, 5
		code := server.Run(ctx, cfg, os.Stderr)
		stop()
		os.Exit(code)
	}
	code := m.Run()
	servertest.StopShared()
	testparts.StopMoto()
	os.Exit(code)
}
