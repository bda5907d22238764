//go:build unix

package vcsimlab

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// guestCommand runs program with its argument string through /bin/sh, as
// VMware Tools runs programs through a shell on Linux guests. The program
// leads its own process group so that terminating it also ends what it
// started, as a shell script's children.
func guestCommand(program, args string) *exec.Cmd {
	line := shellQuote(program)
	if strings.TrimSpace(args) != "" {
		line += " " + args
	}
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func signalGroup(p *os.Process, kill bool) {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	syscall.Kill(-p.Pid, sig)
}

// exitStatus reports a signalled program as a shell does (128+signal),
// since vSphere's exit code has no other way to say it.
func exitStatus(ps *os.ProcessState) int32 {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int32(ws.Signal())
	}
	return int32(ps.ExitCode())
}
