// Package databases is the driver of database sets: clusters on hosts
// whose Haven agent connects to them, takes their full, differential and
// log backups and restores them (engine/database holds the engines). The
// files.Hub carries the jobs to the agents; this package's Extension
// fills in the database work (with the password, which never rests in the
// job row) and reads what the agent reports into the point it commits.
package databases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
)

// KindPostgreSQL is the asset kind of PostgreSQL database sets.
const KindPostgreSQL = "database-postgresql"

// Workload names this driver's hub extension (db.Dispatch.Workload).
const Workload = "database"

// PasswordContext binds sealed database passwords to their purpose.
const PasswordContext = "haven/database/password"

// StoredServer is what the database_servers table keeps as spec: the
// settings without the password, and what the agent detected.
type StoredServer struct {
	api.DatabaseServerSpec
	Detected *api.DatabaseDetected `json:"detected,omitempty"`
}

// Set is a database set asset's spec as the driver sees it: the set and
// its server (nil for a deleted set: its points are restored onto a
// server the restore names).
type Set struct {
	Set    api.DatabaseSetSpec
	Server *Server
}

// Server is a database server with its id.
type Server struct {
	ID string
	StoredServer
	Sealed []byte
}

// SetOf is the set of an asset served by this package's driver.
func SetOf(a *driver.Asset) *Set { return a.Spec.(*Set) }

// Decoder reads database sets from the catalog.
type Decoder struct{ DB *db.DB }

func (Decoder) Table() db.Table     { return db.DatabaseSets }
func (Decoder) RetiredKind() string { return "database_set" }

func (d Decoder) Decode(ctx context.Context, rec driver.Record) (*driver.Asset, error) {
	s := &Set{}
	a := &driver.Asset{Spec: s, Kind: KindPostgreSQL}
	raw := []byte(nil)
	if r := rec.Retired; r != nil {
		a.ID, a.Name, raw = r.ID, r.Name, r.Spec
	} else {
		a.ID, a.Name, raw = rec.Object.ID, rec.Object.Name, rec.Object.Spec
	}
	if err := json.Unmarshal(raw, &s.Set); err != nil {
		return nil, fmt.Errorf("database set %s: %w", a.ID, err)
	}
	if rec.Retired == nil {
		srv, err := loadServer(ctx, d.DB, s.Set.DatabaseServerID)
		if err != nil {
			return nil, err
		}
		s.Server = srv
		a.TakesLogs = srv.Detected == nil || srv.Detected.LogRefusal == ""
	}
	a.StorageID, a.Policy.ID = s.Set.StorageID, s.Set.PolicyID
	return a, nil
}

func loadServer(ctx context.Context, d *db.DB, id string) (*Server, error) {
	o, err := d.Get(ctx, db.DatabaseServers, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, api.Unprocessable("database_server_id", "database server %q does not exist", id)
	} else if err != nil {
		return nil, err
	}
	srv := &Server{ID: o.ID, Sealed: o.SealedSecret}
	if err := json.Unmarshal(o.Spec, &srv.StoredServer); err != nil {
		return nil, fmt.Errorf("database server %s: %w", o.ID, err)
	}
	return srv, nil
}

// Driver serves PostgreSQL database sets.
type Driver struct {
	db     *db.DB
	hub    *files.Hub
	master *keys.MasterKey
	locks  driver.Locker
}

// New returns the driver and registers its extension with the hub; locks
// keep the sets of one database server to one backup at a time.
func New(d *db.DB, hub *files.Hub, master *keys.MasterKey, locks driver.Locker) *Driver {
	drv := &Driver{db: d, hub: hub, master: master, locks: locks}
	hub.Extend(Workload, extension{drv})
	return drv
}

func (*Driver) Kind() string { return KindPostgreSQL }

// Cleanup has nothing to do: what an interrupted job leaves on the host
// (a temporary replication slot, a staging directory) goes with its
// session or is removed by the agent's next attempt.
func (*Driver) Cleanup(context.Context) error { return nil }

// work is what this driver stores in a job's dispatch: the agent's work
// without the password, and the server whose password the hand-out adds.
type work struct {
	api.DatabaseWork
	ServerID string `json:"server_id"`
}

// extension is the driver's part in the hub's agent jobs.
type extension struct{ d *Driver }

func (e extension) Work(ctx context.Context, jobID string, dsp db.Dispatch, w *api.AgentWork) error {
	var wk work
	if err := json.Unmarshal(dsp.Work, &wk); err != nil {
		return fmt.Errorf("job %s: database work: %w", jobID, err)
	}
	srv, err := loadServer(ctx, e.d.db, wk.ServerID)
	if err != nil {
		return err
	}
	if srv.Sealed != nil {
		plain, err := e.d.master.Open(srv.Sealed, PasswordContext)
		if err != nil {
			return fmt.Errorf("database server %q: opening its password: %w", srv.Name, err)
		}
		wk.Password = string(plain)
	}
	w.Database = &wk.DatabaseWork
	return nil
}

func (e extension) Completed(ctx context.Context, jobID string, dsp db.Dispatch, c api.AgentComplete, plan *driver.Plan, st *driver.PointStats) error {
	r := c.Database
	if r == nil || r.Point == nil {
		return api.FieldError("database", "is required to complete a database backup")
	}
	var wk work
	if err := json.Unmarshal(dsp.Work, &wk); err != nil {
		return err
	}
	switch {
	case r.Kind == wk.Kind:
	case wk.Kind == api.BackupDifferential && r.Kind == api.BackupFull && r.Point.Converted != "":
		// Converted to a full: it builds on nothing.
		plan.ParentPoint, plan.ParentRoot = "", [32]byte{}
	default:
		return api.FieldError("database.kind", "a %s backup cannot complete as %q", wk.Kind, r.Kind)
	}
	plan.Kind = r.Kind
	if r.Kind == api.BackupLog && plan.ParentPoint == "" {
		// A restore's tail-log backup follows the newest full or
		// differential, as a scheduled log backup does.
		j, err := e.d.db.GetJob(ctx, jobID)
		if err != nil {
			return err
		}
		base, err := e.d.db.LatestPointOf(ctx, j.AssetID, api.BackupFull, api.BackupDifferential)
		if err != nil {
			return fmt.Errorf("the log point's base: %w", err)
		}
		plan.ParentPoint = base.ID
	}
	st.Database, st.LogStart, st.LogEnd = r.Point, r.LogStart, r.LogEnd
	if r.Detected != nil {
		if err := e.d.db.SetDatabaseDetected(ctx, wk.ServerID, r.Detected); err != nil {
			return err
		}
	}
	return nil
}

// Restored records a verification's result on the point it checked.
func (e extension) Restored(ctx context.Context, jobID string, dsp db.Dispatch, c api.AgentComplete) error {
	if c.Database == nil || c.Database.Point == nil || c.Database.Point.Verified == nil {
		return nil
	}
	return e.d.db.SetPointVerification(ctx, dsp.PointID, *c.Database.Point.Verified)
}
