//go:build !unix

package vcsimlab

import (
	"os"
	"os/exec"
	"strings"
)

// guestCommand starts the program directly with its arguments split on
// white space: hosts without a POSIX shell (Windows) cannot emulate a
// Linux guest's redirections, so lab guest programs there are limited to
// plain commands.
func guestCommand(program, args string) *exec.Cmd {
	return exec.Command(program, strings.Fields(args)...)
}

func signalGroup(p *os.Process, _ bool) { p.Kill() }

func exitStatus(ps *os.ProcessState) int32 {
	if ps == nil {
		return -1
	}
	return int32(ps.ExitCode())
}
