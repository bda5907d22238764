package files

import (
	"context"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// Agent is the driver of filesets on hosts with a Haven agent. The agent
// captures into a repo.Sink of its own (its connection to the server,
// which deduplicates before transfer) and restores from a repo.Source of
// its own; the Hub hands it the work and commits what it reports.
type Agent struct {
	restorer
}

// NewAgent returns the driver of filesets on agents' hosts; localRoots
// confine the restores of its points onto the Haven host.
func NewAgent(d *db.DB, localRoots *confine.Roots, hub *Hub) *Agent {
	return &Agent{restorer{restorePreparer{db: d, localRoots: localRoots}, hub}}
}

func (*Agent) Kind() string { return KindAgent }

func (*Agent) CheckBackup(context.Context, driver.Backup) error { return nil }

func (*Agent) Cleanup(context.Context) error { return nil }

// Backup dispatches the backup to the file server's agent and follows it
// until the agent's point is committed or the attempt fails.
func (a *Agent) Backup(ctx context.Context, b driver.Backup) error { return a.hub.backup(ctx, b) }
