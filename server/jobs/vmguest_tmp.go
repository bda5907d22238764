//go:build !haven_guestops

package jobs

// TEMPORARY until engine/vmware.RunScript lands; removed before commit.

import (
	"context"
	"errors"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
)

type guestLogin struct{ username, password string }

type scriptResult struct {
	ExitCode int
	Output   string
}

func runGuestScript(ctx context.Context, c *vmware.Client, vm vmware.VM, g guestLogin, script, arg string, timeout time.Duration) (scriptResult, error) {
	return scriptResult{}, errors.New("guest operations are not built in yet")
}
