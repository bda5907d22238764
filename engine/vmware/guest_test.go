package vmware_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
)

// TestVMRunScript runs scripts in a lab guest through guest operations and
// checks what comes back, what is refused, and what is left in the guest.
func TestVMRunScript(t *testing.T) {
	env := testparts.VCSim(t)
	const user, password = "backup", "Guest-pw-77!"
	env.CreateVM(t, vcsimlab.VMSpec{Name: "guest-01", PowerOn: true, GuestUser: user, GuestPassword: password})
	c := connect(t, env)
	ctx := context.Background()
	vm, err := c.VMByName(ctx, "guest-01")
	if err != nil {
		t.Fatal(err)
	}
	cred := vmware.GuestCredentials{Username: user, Password: password}
	sandbox, err := env.Lab.GuestDir("guest-01")
	if err != nil {
		t.Fatal(err)
	}
	leftovers := func(t *testing.T) {
		t.Helper()
		entries, err := os.ReadDir(filepath.Join(sandbox, "tmp"))
		if err != nil || len(entries) != 0 {
			t.Fatalf("the guest's temporary directory holds %v (%v)", entries, err)
		}
	}

	t.Run("exit code and output", func(t *testing.T) {
		res, err := c.RunScript(ctx, vm, cred, "echo \"hello $1|$2\"\necho oops >&2\nexit 3\n", []string{"big world's", "$HOME;x"}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 3 || res.Output != "hello big world's|$HOME;x\noops\n" || res.Truncated || res.LeftBehind != "" {
			t.Fatalf("result: %+v", res)
		}
		if res.Started.IsZero() || res.Ended.Before(res.Started) {
			t.Fatalf("times: %v - %v", res.Started, res.Ended)
		}
		res, err = c.RunScript(ctx, vm, cred, "printf ok", nil, time.Minute)
		if err != nil || res.ExitCode != 0 || res.Output != "ok" {
			t.Fatalf("%+v %v", res, err)
		}
		leftovers(t)
	})

	t.Run("long output keeps the tail", func(t *testing.T) {
		res, err := c.RunScript(ctx, vm, cred, `i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done`, nil, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Truncated || len(res.Output) != vmware.MaxScriptOutput || !strings.HasSuffix(res.Output, "line 19998\nline 19999\n") {
			t.Fatalf("truncated=%v, %d bytes ending %q", res.Truncated, len(res.Output), res.Output[max(0, len(res.Output)-30):])
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		bad := vmware.GuestCredentials{Username: user, Password: "Not-the-guest-pw-9"}
		_, err := c.RunScript(ctx, vm, bad, "true", nil, time.Minute)
		if !errors.Is(err, vmware.ErrGuestAuth) {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(err.Error(), bad.Password) || strings.Contains(err.Error(), password) {
			t.Fatalf("the error shows a password: %v", err)
		}
		t.Log(err)
	})

	t.Run("powered off", func(t *testing.T) {
		app, err := c.VMByName(ctx, "app-01")
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.RunScript(ctx, app, vmware.GuestCredentials{Username: vcsimlab.DefaultGuestUser, Password: vcsimlab.DefaultGuestPassword}, "true", nil, time.Minute)
		if !errors.Is(err, vmware.ErrGuestUnavailable) {
			t.Fatalf("got %v", err)
		}
		t.Log(err)
	})

	t.Run("timeout terminates", func(t *testing.T) {
		res, err := c.RunScript(ctx, vm, cred, "echo started\nsleep 60\necho never\n", nil, time.Second)
		if !errors.Is(err, vmware.ErrScriptTimeout) || !strings.Contains(err.Error(), "terminated") {
			t.Fatalf("got %+v, %v", res, err)
		}
		t.Log(err)
		if res.Output != "started\n" {
			t.Fatalf("output before the timeout: %q", res.Output)
		}
		// The guest's process list says whether the script was ended.
		pm, err := guest.NewOperationsManager(env.Client.Client, types.ManagedObjectReference{Type: "VirtualMachine", Value: vm.MoRef}).ProcessManager(ctx)
		if err != nil {
			t.Fatal(err)
		}
		auth := &types.NamePasswordAuthentication{Username: user, Password: password}
		for i := 0; ; i++ {
			procs, err := pm.ListProcesses(ctx, auth, nil)
			if err != nil {
				t.Fatal(err)
			}
			running := 0
			for _, p := range procs {
				if p.EndTime == nil {
					running++
				}
			}
			if running == 0 {
				break
			}
			if i == 100 {
				t.Fatalf("%d guest processes still running after the timeout", running)
			}
			time.Sleep(50 * time.Millisecond)
		}
		leftovers(t)
	})
}
