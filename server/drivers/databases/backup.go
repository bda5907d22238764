package databases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// requestedKind is the kind of point a backup job asks for: a backup now
// without a type, and a scheduled incremental slot (the policy's
// incremental schedule is a database's differential schedule), ask for a
// differential; the agent takes it as a full when a rule says so.
func requestedKind(j *api.Job) string {
	switch j.BackupType {
	case api.BackupFull, api.BackupLog:
		return j.BackupType
	}
	return api.BackupDifferential
}

// BackupTypes: a database set's backups are full, differential or log.
func (*Driver) BackupTypes() []string {
	return []string{api.BackupFull, api.BackupDifferential, api.BackupLog}
}

// CheckBackup refuses log backups that cannot run: before the first full,
// and on a server that cannot archive WAL.
func (d *Driver) CheckBackup(ctx context.Context, b driver.Backup) error {
	a := b.Asset()
	s := SetOf(a)
	if s.Server == nil {
		return driver.Skipf("the database set's server is gone")
	}
	if requestedKind(b.Job()) != api.BackupLog {
		return nil
	}
	if det := s.Server.Detected; det != nil && det.LogRefusal != "" {
		return driver.Failed{Err: fmt.Errorf("log backups are refused: %s", det.LogRefusal)}
	}
	if _, err := d.db.LatestPointOf(ctx, a.ID, api.BackupFull); errors.Is(err, db.ErrNotFound) {
		return driver.Skipf("log backups start once a full backup has completed")
	} else if err != nil {
		return err
	}
	return nil
}

// Backup plans the backup (what it builds on) and hands it to the agent
// of the server's host.
func (d *Driver) Backup(ctx context.Context, b driver.Backup) error {
	a := b.Asset()
	s := SetOf(a)
	kind := requestedKind(b.Job())
	// The sets of one server run one after another (their files are read
	// in parallel within each); log backups, which read only the spool,
	// run beside them.
	if kind != api.BackupLog {
		release, ok, err := d.locks.TryLock(ctx, "haven-database-server:"+s.Server.ID)
		if err != nil {
			return err
		}
		if !ok {
			return driver.Wait{Reason: fmt.Sprintf("another set of database server %q is being backed up: sets run one after another", s.Server.Name), After: 2 * time.Second}
		}
		defer release()
	}
	wk := work{DatabaseWork: api.DatabaseWork{Engine: s.Server.Engine, Conn: s.Server.ConnString(), Kind: kind}, ServerID: s.Server.ID}
	plan := driver.Plan{Kind: kind}
	full, err := d.db.LatestPointOf(ctx, a.ID, api.BackupFull)
	hasFull := err == nil
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return err
	}
	r, err := b.Repository(ctx)
	if err != nil {
		return err
	}
	switch kind {
	case api.BackupLog:
		// A log point is replayed onto the full or differential before
		// it; retention keeps that one while the log is kept.
		base, err := d.db.LatestPointOf(ctx, a.ID, api.BackupFull, api.BackupDifferential)
		if err != nil {
			return err
		}
		plan.ParentPoint = base.ID
		if last, err := d.db.LatestPointOf(ctx, a.ID, api.BackupLog); err == nil && last.Database != nil {
			wk.HeldThrough = last.Database.LastSegment
		} else if err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
	case api.BackupDifferential:
		if !hasFull {
			// No complete full: the agent converts, and says why.
			break
		}
		root, err := r.Root(ctx, full.ID)
		if err != nil {
			break // the repository lost it: as if there were none
		}
		plan.ParentPoint, plan.ParentRoot = full.ID, root
		wk.BaseRoot = root.String()
		if wk.LastFullFailed, err = d.db.FullFailedSince(ctx, a.ID, full.CompletedAt); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(wk)
	if err != nil {
		return err
	}
	srv, err := d.db.Get(ctx, db.FileServers, s.Server.FileServerID)
	if err != nil {
		return fmt.Errorf("the database server's file server: %w", err)
	}
	if err := d.hub.BackupOn(ctx, b, srv.ID, srv.Name, plan, db.Dispatch{Workload: Workload, Work: raw, PointKind: kind}); err != nil {
		return err
	}
	if kind == api.BackupLog || !s.Set.VerifyRestore {
		return nil
	}
	return d.queueVerify(ctx, b)
}

// queueVerify queues the verification of the point a backup committed: a
// restore into a scratch cluster on the set's host (see
// api.DatabaseRestore.Verify). A verification that could not be queued
// is a warning on the backup, which succeeded.
func (d *Driver) queueVerify(ctx context.Context, b driver.Backup) error {
	a := b.Asset()
	j, err := d.db.GetJob(ctx, b.Job().ID)
	if err != nil || j.PointID == "" {
		b.Progress().Note(fmt.Sprintf("verify_restore: the point to verify is not known: %v", err))
		return nil
	}
	p, err := d.db.GetPoint(ctx, j.PointID)
	if err == nil {
		var params *driver.RestoreParams
		params, err = d.PrepareRestore(ctx, api.RestoreRequest{PointID: p.ID, Database: &api.DatabaseRestore{Verify: true}}, p, a)
		if err == nil {
			err = b.Queue(ctx, db.NewJob{Kind: api.JobRestore, AssetID: a.ID, StorageID: a.StorageID, Trigger: api.TriggerScheduled,
				PointID: p.ID, Params: params})
		}
	}
	if err != nil {
		b.Progress().Note(fmt.Sprintf("verify_restore: the verification of point %s could not be queued: %v", j.PointID, err))
	}
	return nil
}
