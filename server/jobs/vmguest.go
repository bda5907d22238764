//go:build haven_guestops

package jobs

import (
	"context"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
)

type guestLogin struct{ username, password string }

type scriptResult struct {
	ExitCode int
	Output   string
}

func runGuestScript(ctx context.Context, c *vmware.Client, vm vmware.VM, g guestLogin, script, arg string, timeout time.Duration) (scriptResult, error) {
	res, err := c.RunScript(ctx, vm, vmware.GuestCredentials{Username: g.username, Password: g.password}, script, []string{arg}, timeout)
	return scriptResult{ExitCode: res.ExitCode, Output: res.Output}, err
}
