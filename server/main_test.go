package server_test

import (
	"context"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// childServerEnv makes the test binary act as `haven server` with the
// arguments in the variable (split on the unit separator \x1f), so tests can kill a real server
// process with SIGKILL.
const childServerEnv = "HAVEN_TEST_CHILD_SERVER_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(childServerEnv); ok {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := server.Main(ctx, strings.Split(args, "\x1f"), os.Stderr)
		stop()
		os.Exit(code)
	}
	code := m.Run()
	servertest.StopShared()
	os.Exit(code)
}
