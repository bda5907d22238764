package vmware

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

var (
	// ErrGuestAuth: the guest OS rejected the user name or password.
	ErrGuestAuth = errors.New("vsphere: the guest user name or password was rejected")
	// ErrGuestUnavailable: guest operations cannot run now (the VM is not
	// powered on, or VMware Tools is not running in it).
	ErrGuestUnavailable = errors.New("vsphere: guest operations are unavailable")
	// ErrScriptTimeout: a guest script ran past its timeout and was terminated.
	ErrScriptTimeout = errors.New("vsphere: the guest script timed out")
)

// GuestCredentials log into a VM's guest OS for guest operations.
type GuestCredentials struct {
	Username string
	Password string
}

// String keeps the password out of logs and error messages that format
// the credentials.
func (c GuestCredentials) String() string { return c.Username + ":***" }

// GoString is String for %#v.
func (c GuestCredentials) GoString() string {
	return fmt.Sprintf("GuestCredentials{%q, ***}", c.Username)
}

// MaxScriptOutput is how much of a script's output RunScript returns: the
// end of it, where errors usually are.
const MaxScriptOutput = 64 << 10

// DefaultScriptTimeout applies when RunScript is given no timeout.
const DefaultScriptTimeout = 10 * time.Minute

// ScriptResult is what a guest script left behind.
type ScriptResult struct {
	ExitCode int
	// Output is the script's standard output and standard error,
	// interleaved, or their last MaxScriptOutput bytes if Truncated.
	Output    string
	Truncated bool
	// Started and Ended are the guest's times for the script's process.
	Started, Ended time.Time
	// LeftBehind names the guest directory holding the script and its
	// output when removing it failed; the script's result is still valid.
	LeftBehind string
}

// Polling the guest's process list starts fast, for short scripts, and
// backs off to a bounded interval for long ones.
const (
	pollFirst = 50 * time.Millisecond
	pollMax   = 2 * time.Second
)

// cleanupTimeout bounds the steps RunScript takes after its context ends:
// terminating the script and removing its directory.
const cleanupTimeout = 30 * time.Second

// RunScript runs script in the guest OS of vm with guest operations
// (VMware Tools) and returns its exit code and output.
//
// The script goes into a new temporary directory in the guest, with its
// output file beside it, and the directory is removed afterwards.
//   - Linux and other POSIX guests: the script is run by /bin/sh, as
//     `/bin/sh <script> <args> > <output> 2>&1 < /dev/null`, with each
//     argument single-quoted.
//   - Windows guests (guest family or guest id says Windows): the script
//     is a PowerShell script, run as `C:\Windows\System32\cmd.exe /d /s /c
//     ""powershell.exe" -NoLogo -NoProfile -NonInteractive -ExecutionPolicy
//     Bypass -File "<script>.ps1" "<args>" > "<output>" 2>&1"`; cmd.exe is
//     what gives the redirection, and powershell's exit code (the script's
//     `exit N`) is the result's. Arguments may not contain `"`, `%` or line
//     breaks, which cmd.exe would interpret.
//
// A script still running after timeout (DefaultScriptTimeout if zero) is
// terminated and RunScript returns ErrScriptTimeout, with what output
// there was. Wrong guest credentials give ErrGuestAuth; a powered-off VM
// or one without running Tools gives ErrGuestUnavailable. No error
// carries the guest password.
func (c *Client) RunScript(ctx context.Context, vm VM, cred GuestCredentials, script string, args []string, timeout time.Duration) (result ScriptResult, _ error) {
	if timeout <= 0 {
		timeout = DefaultScriptTimeout
	}
	g := &guestRun{c: c, vm: vm, cred: cred, auth: &types.NamePasswordAuthentication{Username: cred.Username, Password: cred.Password}}
	om := guest.NewOperationsManager(c.vc, vmRef(vm))
	var err error
	if g.pm, err = om.ProcessManager(ctx); err != nil {
		return ScriptResult{}, g.fail("finding the guest process manager", err)
	}
	if g.fm, err = om.FileManager(ctx); err != nil {
		return ScriptResult{}, g.fail("finding the guest file manager", err)
	}
	windows, err := c.guestIsWindows(ctx, vm)
	if err != nil {
		return ScriptResult{}, g.fail("reading the guest OS type", err)
	}
	var cmd command
	if windows {
		cmd, err = windowsCommand(args)
	} else {
		cmd, err = posixCommand(args)
	}
	if err != nil {
		return ScriptResult{}, err
	}

	dir, err := g.fm.CreateTemporaryDirectory(ctx, g.auth, "haven-", "", "")
	if err != nil {
		return ScriptResult{}, g.fail("creating a temporary directory in the guest", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if g.fm.DeleteDirectory(cctx, g.auth, dir, true) != nil {
			result.LeftBehind = dir
		}
	}()
	var res ScriptResult

	scriptPath, outPath := cmd.join(dir, cmd.script), cmd.join(dir, "output.txt")
	if err := g.upload(ctx, scriptPath, []byte(script), cmd.attrs); err != nil {
		return res, err
	}
	spec := &types.GuestProgramSpec{ProgramPath: cmd.program, Arguments: cmd.arguments(scriptPath, outPath), WorkingDirectory: dir}
	pid, err := g.pm.StartProgram(ctx, g.auth, spec)
	if err != nil {
		return res, g.fail("starting the script", err)
	}

	info, err := g.wait(ctx, pid, timeout)
	if info != nil {
		res.Started = info.StartTime
	}
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		// Termination fails harmlessly when the script ended meanwhile.
		g.pm.TerminateProcess(cctx, g.auth, pid)
		if errors.Is(err, ErrScriptTimeout) {
			// What the script printed before it hung is the best clue.
			res.Output, res.Truncated, _ = g.download(cctx, outPath)
		}
		res.ExitCode = -1
		return res, err
	}
	res.ExitCode = int(info.ExitCode)
	res.Ended = *info.EndTime
	if res.Output, res.Truncated, err = g.download(ctx, outPath); err != nil {
		return res, err
	}
	return res, nil
}

// guestRun is one RunScript's guest session.
type guestRun struct {
	c    *Client
	vm   VM
	cred GuestCredentials
	auth *types.NamePasswordAuthentication
	pm   *guest.ProcessManager
	fm   *guest.FileManager
}

// wait polls the script's process until it ends, the timeout passes or
// ctx ends. It returns the last process info seen.
func (g *guestRun) wait(ctx context.Context, pid int64, timeout time.Duration) (*types.GuestProcessInfo, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var last *types.GuestProcessInfo
	for delay := pollFirst; ; delay = min(2*delay, pollMax) {
		procs, err := g.pm.ListProcesses(ctx, g.auth, []int64{pid})
		if err != nil {
			if ctx.Err() != nil {
				return last, fmt.Errorf("vsphere: script on VM %s: %w", g.vm.Name, ctx.Err())
			}
			return last, g.fail("watching the script", err)
		}
		var found bool
		for i := range procs {
			if procs[i].Pid == pid {
				last, found = &procs[i], true
			}
		}
		if !found {
			return last, fmt.Errorf("vsphere: script on VM %s: guest process %d disappeared from the guest's process list", g.vm.Name, pid)
		}
		if last.EndTime != nil {
			return last, nil
		}
		wait := time.NewTimer(delay)
		select {
		case <-wait.C:
		case <-deadline.C:
			wait.Stop()
			return last, fmt.Errorf("%w: script on VM %s still running after %s; terminated guest process %d",
				ErrScriptTimeout, g.vm.Name, timeout, pid)
		case <-ctx.Done():
			wait.Stop()
			return last, fmt.Errorf("vsphere: script on VM %s: %w", g.vm.Name, ctx.Err())
		}
	}
}

func (g *guestRun) upload(ctx context.Context, guestPath string, data []byte, attrs types.BaseGuestFileAttributes) error {
	raw, err := g.fm.InitiateFileTransferToGuest(ctx, g.auth, guestPath, attrs, int64(len(data)), true)
	if err != nil {
		return g.fail("uploading the script", err)
	}
	u, err := g.fm.TransferURL(ctx, raw)
	if err != nil {
		return g.fail("uploading the script", err)
	}
	p := soap.DefaultUpload
	p.ContentLength = int64(len(data))
	if err := g.c.soap.Upload(ctx, bytes.NewReader(data), u, &p); err != nil {
		return g.fail("uploading the script", err)
	}
	return nil
}

// download returns the last MaxScriptOutput bytes of a guest file. It asks
// for just the tail of a long file, and keeps only the tail of whatever
// the guest sends.
func (g *guestRun) download(ctx context.Context, guestPath string) (string, bool, error) {
	info, err := g.fm.InitiateFileTransferFromGuest(ctx, g.auth, guestPath)
	if err != nil {
		return "", false, g.fail("downloading the script's output", err)
	}
	u, err := g.fm.TransferURL(ctx, info.Url)
	if err != nil {
		return "", false, g.fail("downloading the script's output", err)
	}
	p := soap.DefaultDownload
	if info.Size > MaxScriptOutput {
		p.Headers = map[string]string{"Range": fmt.Sprintf("bytes=%d-", info.Size-MaxScriptOutput)}
	}
	res, err := g.c.soap.DownloadRequest(ctx, u, &p)
	if err != nil {
		return "", false, g.fail("downloading the script's output", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusPartialContent {
		return "", false, fmt.Errorf("vsphere: downloading the output of the script on VM %s: %s", g.vm.Name, res.Status)
	}
	out, truncated, err := tail(res.Body, MaxScriptOutput)
	if err != nil {
		return "", false, fmt.Errorf("vsphere: downloading the output of the script on VM %s: %w", g.vm.Name, err)
	}
	return string(out), truncated || res.StatusCode == http.StatusPartialContent, nil
}

// tail reads r to the end and keeps its last n bytes.
func tail(r io.Reader, n int) ([]byte, bool, error) {
	buf := make([]byte, 0, n)
	chunk := make([]byte, 32<<10)
	truncated := false
	for {
		k, err := r.Read(chunk)
		buf = append(buf, chunk[:k]...)
		if len(buf) > n {
			buf = append(buf[:0], buf[len(buf)-n:]...)
			truncated = true
		}
		if errors.Is(err, io.EOF) {
			return buf, truncated, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
}

// fail maps a guest operation's fault onto the package's errors and keeps
// the guest password out of the message.
func (g *guestRun) fail(what string, err error) error {
	switch {
	case fault.Is(err, &types.InvalidGuestLogin{}):
		return fmt.Errorf("%w (guest user %q on VM %s)", ErrGuestAuth, g.cred.Username, g.vm.Name)
	case fault.Is(err, &types.InvalidPowerState{}), fault.Is(err, &types.InvalidState{}),
		fault.Is(err, &types.GuestOperationsUnavailable{}), fault.Is(err, &types.ToolsUnavailable{}):
		return fmt.Errorf("%w on VM %s (it must be powered on with VMware Tools running): %s: %s",
			ErrGuestUnavailable, g.vm.Name, what, scrub(err.Error(), g.cred.Password))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("vsphere: %s on VM %s: %w", what, g.vm.Name, err)
	}
	return fmt.Errorf("vsphere: %s on VM %s: %s", what, g.vm.Name, scrub(err.Error(), g.cred.Password))
}

// guestIsWindows tells from the running guest's family, or failing that
// the configured guest id, whether the guest is Windows.
func (c *Client) guestIsWindows(ctx context.Context, vm VM) (bool, error) {
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, vmRef(vm), []string{"config.guestId", "guest.guestFamily"}, &m); err != nil {
		return false, err
	}
	if m.Guest != nil && m.Guest.GuestFamily != "" {
		return m.Guest.GuestFamily == string(types.VirtualMachineGuestOsFamilyWindowsGuest), nil
	}
	return m.Config != nil && strings.HasPrefix(strings.ToLower(m.Config.GuestId), "win"), nil
}

// command is how a guest OS runs a script file with its output redirected.
type command struct {
	program   string
	script    string // file name of the script in the temporary directory
	sep       string
	attrs     types.BaseGuestFileAttributes
	arguments func(script, output string) string
}

func (c command) join(dir, name string) string { return strings.TrimRight(dir, c.sep) + c.sep + name }

func posixCommand(args []string) (command, error) {
	var quoted []string
	for _, a := range args {
		if strings.ContainsRune(a, 0) {
			return command{}, errors.New("vsphere: a script argument contains a NUL byte")
		}
		quoted = append(quoted, shellQuote(a))
	}
	return command{
		program: "/bin/sh", script: "script.sh", sep: "/",
		attrs: &types.GuestPosixFileAttributes{Permissions: 0o700},
		arguments: func(script, output string) string {
			return strings.Join(append([]string{shellQuote(script)}, quoted...), " ") +
				" > " + shellQuote(output) + " 2>&1 < /dev/null"
		},
	}, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func windowsCommand(args []string) (command, error) {
	var quoted []string
	for _, a := range args {
		if strings.ContainsAny(a, "\"%\r\n\x00") {
			return command{}, fmt.Errorf("vsphere: script argument %q contains a character cmd.exe would interpret (\", %%, or a line break)", a)
		}
		quoted = append(quoted, winQuote(a))
	}
	return command{
		program: `C:\Windows\System32\cmd.exe`, script: "script.ps1", sep: `\`,
		attrs: &types.GuestWindowsFileAttributes{},
		arguments: func(script, output string) string {
			// /s makes cmd.exe strip exactly the outer pair of quotes and
			// keep the inner ones.
			line := append([]string{`"powershell.exe"`, "-NoLogo", "-NoProfile", "-NonInteractive",
				"-ExecutionPolicy", "Bypass", "-File", winQuote(script)}, quoted...)
			return `/d /s /c "` + strings.Join(line, " ") + " > " + winQuote(output) + ` 2>&1"`
		},
	}, nil
}

// winQuote quotes an argument for a Windows program's command line:
// backslashes before the closing quote are doubled so that they do not
// escape it.
func winQuote(s string) string {
	trailing := len(s) - len(strings.TrimRight(s, `\`))
	return `"` + s + strings.Repeat(`\`, trailing) + `"`
}
