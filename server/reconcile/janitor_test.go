package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// cleaner records its runs and fails with err.
type cleaner struct {
	kind string
	err  error
	runs int
}

func (c *cleaner) Kind() string { return c.kind }
func (c *cleaner) Cleanup(context.Context) error {
	c.runs++
	return c.err
}

// TestJanitorCleansEveryWorkload: every workload's cleanup runs on each
// pass, a failing one does not stop those after it, and the run's error
// names each failing workload.
func TestJanitorCleansEveryWorkload(t *testing.T) {
	boom := errors.New("vCenter unreachable")
	a, b, c := &cleaner{kind: "files"}, &cleaner{kind: "vms", err: boom}, &cleaner{kind: "nas"}
	j := &Janitor{Cleaners: func() []Cleaner { return []Cleaner{a, b, c} }, Log: quiet}
	err := j.Run(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "vms: vCenter unreachable") {
		t.Fatalf("run error %v, want the vms cleaner's failure named", err)
	}
	if a.runs != 1 || b.runs != 1 || c.runs != 1 {
		t.Fatalf("cleanups ran %d, %d, %d times; want each once, the one after the failure included", a.runs, b.runs, c.runs)
	}
	b.err = nil
	if err := j.Run(context.Background()); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if a.runs != 2 || b.runs != 2 || c.runs != 2 {
		t.Fatalf("after two runs cleanups ran %d, %d, %d times", a.runs, b.runs, c.runs)
	}
}
