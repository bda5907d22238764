package pgembed

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// maxSocketPath is sizeof(sun_path) minus the terminating NUL.
const maxSocketPath = 107

func setDeathSignal(attr *syscall.SysProcAttr, sig syscall.Signal) {
	attr.Pdeathsig = sig
}

// processArgs returns a process's argv as the kernel reports it.
func processArgs(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil, nil
	}
	var args []string
	for _, a := range bytes.Split(b, []byte{0}) {
		args = append(args, string(a))
	}
	return args, nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The command name in parentheses may itself contain ") ", so the
	// state is found after the last one.
	i := bytes.LastIndex(b, []byte(") "))
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}
