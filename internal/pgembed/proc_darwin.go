package pgembed

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxSocketPath is sizeof(sun_path) minus the terminating NUL.
const maxSocketPath = 103

// setDeathSignal does nothing: macOS has no parent-death signal, so a
// postmaster outlives a killed haven until the next Start stops it as an
// orphan.
func setDeathSignal(*syscall.SysProcAttr, syscall.Signal) {}

// processArgs asks ps, as there is no /proc; arguments containing spaces come
// back split, which only makes orphan detection more conservative.
func processArgs(pid int) ([]string, error) {
	out, err := ps(pid, "command=")
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

func isZombie(pid int) bool {
	out, err := ps(pid, "stat=")
	return err == nil && strings.HasPrefix(strings.TrimSpace(out), "Z")
}

func ps(pid int, format string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ps", "-ww", "-o", format, "-p", strconv.Itoa(pid)).Output()
	return string(out), err
}
