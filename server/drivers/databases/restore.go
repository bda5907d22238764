package databases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// restorePlan is what PrepareRestore decides and the job keeps
// (RestoreParams.Driver): the point whose data is restored, the log
// points replayed after it, and where.
type restorePlan struct {
	Base     string   `json:"base"`
	Logs     []string `json:"logs,omitempty"`
	ServerID string   `json:"server_id"`
	DataDir  string   `json:"data_dir"`
	Original bool     `json:"original,omitempty"`
	// Verify: into a scratch cluster, checked, then removed.
	Verify bool `json:"verify,omitempty"`
	// RollForward: only logs, onto a standby restore in DataDir.
	RollForward bool `json:"roll_forward,omitempty"`
	// ToEnd: the restore goes to the end of what the set holds (its
	// newest point, without a target), which, over the original, includes
	// the tail-log backup taken first.
	ToEnd bool `json:"to_end,omitempty"`
}

// RestoreTargets names the database server a restore writes onto: the one
// the request names, or the set's own.
func (d *Driver) RestoreTargets(ctx context.Context, req api.RestoreRequest, a *driver.Asset) ([]driver.Target, error) {
	if req.Database == nil {
		return nil, nil // PrepareRestore refuses it
	}
	id := req.Database.TargetDatabaseServerID
	if id == "" && SetOf(a).Server != nil {
		id = SetOf(a).Server.ID
	}
	if id == "" {
		return nil, nil
	}
	return driver.ObjectTarget(ctx, d.db, db.DatabaseServers, id, "database.target_database_server_id", "database server")
}

// PrepareRestore picks what a database restore replays and where it
// writes, and refuses at once what cannot work: no target server, no data
// directory known, the original without overwrite, a point in time or a
// restore point no log holds.
func (d *Driver) PrepareRestore(ctx context.Context, req api.RestoreRequest, p api.Point, a *driver.Asset) (*driver.RestoreParams, error) {
	dr := req.Database
	if dr == nil {
		return nil, api.Unprocessable("database", "the point is a database point: say how to restore it with database")
	}
	if err := dr.Validate(); err != nil {
		return nil, err
	}
	set := SetOf(a)
	if dr.TargetDatabaseServerID == "" {
		if set.Server == nil {
			return nil, api.Unprocessable("database.target_database_server_id", "the set was deleted: name the database server to restore onto")
		}
		dr.TargetDatabaseServerID = set.Server.ID
	}
	target, err := loadServer(ctx, d.db, dr.TargetDatabaseServerID)
	if err != nil {
		var apiErr *api.Error
		if errors.As(err, &apiErr) {
			apiErr.Field = "database.target_database_server_id"
		}
		return nil, err
	}
	dr.TargetDatabaseServerID = target.ID
	if dr.Verify {
		if p.Kind == api.BackupLog {
			return nil, api.Unprocessable("database.verify", "a log point is checked with a restore to a point in time; verify a full or differential point")
		}
		raw, err := json.Marshal(restorePlan{ServerID: target.ID, Base: p.ID, Verify: true})
		return &driver.RestoreParams{RestoreRequest: req, TargetLocation: api.LocationAgent, Driver: raw}, err
	}
	plan := restorePlan{ServerID: target.ID, DataDir: dr.DataDir}
	if plan.DataDir == "" {
		if target.Detected == nil || target.Detected.DataDir == "" {
			return nil, api.Unprocessable("database.data_dir", "no backup of database server %q has detected its data directory yet: name the data directory", target.Name)
		}
		plan.DataDir = target.Detected.DataDir
	}
	if dr.RollForward {
		if target.Detected != nil && plan.DataDir == target.Detected.DataDir {
			return nil, api.Unprocessable("database.roll_forward", "%s is database server %q's own data directory, not a standby restore", plan.DataDir, target.Name)
		}
		// Every log the set holds: the standby may have started from any
		// of its points, and recovery reads only what it needs.
		logs, err := d.pointsOf(ctx, p.AssetID, api.BackupLog)
		if err != nil {
			return nil, err
		}
		if len(logs) == 0 {
			return nil, api.Unprocessable("database.roll_forward", "the set holds no log backups to roll forward with")
		}
		plan.Base, plan.RollForward = p.ID, true
		for _, l := range logs {
			plan.Logs = append(plan.Logs, l.ID)
		}
		raw, err := json.Marshal(plan)
		return &driver.RestoreParams{RestoreRequest: req, TargetLocation: api.LocationAgent, Driver: raw}, err
	}
	if target.Detected != nil && plan.DataDir == target.Detected.DataDir {
		plan.Original = true
		if !dr.Overwrite {
			return nil, api.Unprocessable("database.overwrite", "must be true to restore over the data directory of database server %q (%s): its connections are terminated and the cluster is replaced", target.Name, plan.DataDir)
		}
	}
	if err := d.pickPoints(ctx, p, dr, &plan); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	return &driver.RestoreParams{RestoreRequest: req, TargetLocation: api.LocationAgent, Driver: raw}, nil
}

// pickPoints chooses the base (a full or differential) and the log points
// a restore replays. Without a target the point itself is restored: a full
// or a differential alone, a log point on its base up to its end. With a
// target, the base is the requested point if it ends before the target,
// else the newest that does, and every log point after it is replayed
// (PostgreSQL stops at the target).
func (d *Driver) pickPoints(ctx context.Context, p api.Point, dr *api.DatabaseRestore, plan *restorePlan) error {
	if dr.Targets() == 0 {
		newest, err := d.db.LatestPoint(ctx, p.AssetID)
		if err != nil {
			return err
		}
		plan.ToEnd = newest.ID == p.ID
	}
	if p.Kind != api.BackupLog && dr.Targets() == 0 {
		plan.Base = p.ID
		return nil
	}
	bases, err := d.pointsOf(ctx, p.AssetID, api.BackupFull, api.BackupDifferential)
	if err != nil {
		return err
	}
	logs, err := d.pointsOf(ctx, p.AssetID, api.BackupLog)
	if err != nil {
		return err
	}
	// before tells whether a base ends before the restore's stop.
	var before func(b api.Point) bool
	field := "database"
	switch {
	case dr.Targets() == 0: // a log point's end
		before = func(b api.Point) bool { return b.CompletedAt.Before(p.CompletedAt) }
		logs = slices.DeleteFunc(logs, func(l api.Point) bool { return l.CompletedAt.After(p.CompletedAt) })
	case dr.PointInTime != nil:
		field = "database.point_in_time"
		t := *dr.PointInTime
		before = func(b api.Point) bool { return !b.CompletedAt.After(t) }
		// Over the original, the tail-log backup may cover it.
		if !plan.Original && !slices.ContainsFunc(logs, func(l api.Point) bool { return l.LogEnd != nil && !l.LogEnd.Before(t) }) {
			return api.Unprocessable(field, "no log backup covers %s: %s", t.Format(time.RFC3339), logSpan(logs))
		}
	case dr.RestorePoint != "":
		field = "database.restore_point"
		var lsn string
		for _, l := range logs {
			if l.Database == nil {
				continue
			}
			for _, rp := range l.Database.RestorePoints {
				if rp.Name == dr.RestorePoint {
					lsn = rp.LSN
				}
			}
		}
		if lsn == "" {
			return api.Unprocessable(field, "no log backup holds a restore point named %q", dr.RestorePoint)
		}
		before = func(b api.Point) bool { return b.Database != nil && lsnLess(b.Database.EndLSN, lsn) }
	case dr.LSN != "":
		field = "database.lsn"
		before = func(b api.Point) bool { return b.Database != nil && lsnLess(b.Database.EndLSN, dr.LSN) }
	default: // a transaction id: its commit is not known in advance
		field = "database.xid"
		before = func(b api.Point) bool { return !b.CompletedAt.After(p.CompletedAt) }
	}
	base := -1
	for i, b := range bases {
		if before(b) {
			base = i // the newest that ends before the stop
		}
	}
	if i := slices.IndexFunc(bases, func(b api.Point) bool { return b.ID == p.ID }); i >= 0 && before(bases[i]) {
		base = i // the requested point, when it can serve
	}
	if base < 0 {
		return api.Unprocessable(field, "no full or differential backup ends before it")
	}
	plan.Base = bases[base].ID
	for _, l := range logs {
		// A log point holds WAL from after the previous one's end; those
		// that ended before the base began are not needed.
		if l.CompletedAt.After(bases[base].StartedAt) {
			plan.Logs = append(plan.Logs, l.ID)
		}
	}
	if len(plan.Logs) == 0 && !plan.Original {
		return api.Unprocessable(field, "no log backup was taken after the full or differential it would start from")
	}
	return nil
}

// pointsOf lists an asset's live points of kinds, oldest first.
func (d *Driver) pointsOf(ctx context.Context, assetID string, kinds ...string) ([]api.Point, error) {
	var out []api.Point
	for _, k := range kinds {
		ps, err := d.db.PointsSince(ctx, assetID, k, time.Time{})
		if err != nil {
			return nil, err
		}
		out = append(out, ps...)
	}
	slices.SortFunc(out, func(a, b api.Point) int { return a.CompletedAt.Compare(b.CompletedAt) })
	return out, nil
}

func logSpan(logs []api.Point) string {
	var first, last *time.Time
	for _, l := range logs {
		if l.LogStart != nil && (first == nil || l.LogStart.Before(*first)) {
			first = l.LogStart
		}
		if l.LogEnd != nil && (last == nil || l.LogEnd.After(*last)) {
			last = l.LogEnd
		}
	}
	if first == nil || last == nil {
		return "the set has no log backups with transactions"
	}
	return fmt.Sprintf("the logs cover %s to %s", first.Format(time.RFC3339), last.Format(time.RFC3339))
}

// lsnLess compares two LSNs written as PostgreSQL shows them (X/Y).
func lsnLess(a, b string) bool {
	pa, errA := parseLSN(a)
	pb, errB := parseLSN(b)
	return errA == nil && errB == nil && pa < pb
}

func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("LSN %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, err
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	return h<<32 | l, err
}

// Restore hands the restore to the agent of the target server's host,
// with the roots of the base and of the logs it replays.
func (d *Driver) Restore(ctx context.Context, run driver.Restore) error {
	params := run.Params()
	var plan restorePlan
	if err := json.Unmarshal(params.Driver, &plan); err != nil {
		return driver.Failed{Err: fmt.Errorf("the restore's plan is unreadable: %w", err)}
	}
	target, err := loadServer(ctx, d.db, plan.ServerID)
	if err != nil {
		return driver.Failed{Err: fmt.Errorf("the target database server: %w", err)}
	}
	r, err := run.Repository(ctx)
	if err != nil {
		return err
	}
	baseRoot, err := r.Root(ctx, plan.Base)
	if err != nil {
		return driver.Failed{Err: fmt.Errorf("point %s: %w", plan.Base, err)}
	}
	wk := work{ServerID: target.ID, DatabaseWork: api.DatabaseWork{Engine: target.Engine, Conn: target.ConnString(),
		Restore: params.Database, DataDir: plan.DataDir, Original: plan.Original, StagingID: run.Job().ID, Verify: plan.Verify, RollForward: plan.RollForward}}
	for _, id := range plan.Logs {
		root, err := r.Root(ctx, id)
		if err != nil {
			return driver.Failed{Err: fmt.Errorf("log point %s: %w", id, err)}
		}
		wk.LogRoots = append(wk.LogRoots, root.String())
	}
	pt := run.Point()
	// The job names the point asked for (a log point, say), whatever base
	// its restore starts from.
	dsp := db.Dispatch{Kind: api.JobRestore, StorageID: pt.StorageID, PointID: pt.ID, Root: baseRoot.String(), Roots: wk.LogRoots,
		Workload: Workload, Resume: run.Job().Attempt > 1}
	if plan.Original {
		// Before the data directory is replaced, the agent backs up the
		// WAL Haven does not hold yet (the tail of the log), through a
		// session of this job, even if the cluster is down or will not
		// start: nothing committed is lost.
		wk.Kind, wk.ReplayTail = api.BackupLog, plan.ToEnd || params.Database.Targets() > 0
		if det := target.Detected; det != nil {
			wk.SystemID, wk.Version = det.SystemID, det.Version
		}
		if last, err := d.db.LatestPointOf(ctx, pt.AssetID, api.BackupLog); err == nil && last.Database != nil {
			wk.HeldThrough = last.Database.LastSegment
		} else if err != nil && !errors.Is(err, db.ErrNotFound) {
			return err
		}
		if dsp.SessionID, err = r.BeginSession(ctx, plan.Base); err != nil {
			return err
		}
		defer func() { _ = r.EndSession(context.WithoutCancel(ctx), dsp.SessionID) }()
	}
	if dsp.Work, err = json.Marshal(wk); err != nil {
		return err
	}
	return d.hub.RestoreOn(ctx, run, target.FileServerID, dsp)
}
