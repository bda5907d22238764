//go:build !linux && !darwin

package pgembed

import (
	"context"
	"fmt"
	"runtime"
)

const maxSocketPath = 103

// Start is not available on this platform.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	return nil, fmt.Errorf("the embedded PostgreSQL is not supported on %s: set HAVEN_DATABASE_URL to an existing database", runtime.GOOS)
}

// Stop does nothing on this platform, where no cluster can be started.
func (c *Cluster) Stop(ctx context.Context) error { return nil }

// Kill does nothing on this platform, where no cluster can be started.
func (c *Cluster) Kill() {}
