package nas

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
)

// restorePlan is what PrepareRestore decides and the job keeps
// (RestoreParams.Driver).
type restorePlan struct {
	ShareID string `json:"share_id"`
	// Alternate: the restore does not write where the point was taken
	// (another share, or a directory inside one).
	Alternate bool `json:"alternate,omitempty"`
}

// RestoreTargets names the share a restore writes into, for the group
// checks: the one the request names, or the point's own.
func (d *Driver) RestoreTargets(ctx context.Context, req api.RestoreRequest, a *driver.Asset) ([]driver.Target, error) {
	id := a.ID
	if req.NAS != nil && req.NAS.ShareID != "" {
		id = req.NAS.ShareID
	}
	return driver.ObjectTarget(ctx, d.db, db.NASShares, id, "nas.share_id", "NAS share")
}

// PrepareRestore picks the target share and refuses at once what cannot
// work: a share that does not exist, or one of the other protocol (SMB
// security descriptors and DOS attributes have no place on NFS, nor POSIX
// modes and owners on SMB).
func (d *Driver) PrepareRestore(ctx context.Context, req api.RestoreRequest, p api.Point, a *driver.Asset) (*driver.RestoreParams, error) {
	switch {
	case req.VM != nil:
		return nil, api.Unprocessable("vm", "the point is a NAS share's point, not a VM point")
	case req.Database != nil:
		return nil, api.Unprocessable("database", "the point is a NAS share's point, not a database point")
	case req.NAS == nil && (req.TargetFileServerID != "" || req.TargetPath != ""):
		return nil, api.Unprocessable("nas", "the point is a NAS share's: say where to restore it with nas (share_id, path)")
	case req.NAS == nil:
		// The point's own share, where its files were, under the
		// request's conflict policy.
		req.NAS = &api.NASRestore{Conflict: req.Conflict}
		req.Conflict = ""
	}
	if err := req.NAS.Validate(); err != nil {
		return nil, err
	}
	src := ShareOf(a)
	if req.NAS.ShareID == "" {
		if a.Retired {
			return nil, api.Unprocessable("nas.share_id", "NAS share %q was deleted: name the share to restore into", a.Name)
		}
		req.NAS.ShareID = a.ID
	}
	target, err := loadShare(ctx, d.db, req.NAS.ShareID, "nas.share_id")
	if err != nil {
		return nil, err
	}
	req.NAS.ShareID = target.ID
	if target.Protocol != src.Protocol {
		return nil, api.Unprocessable("nas.share_id", "the point is of an %s share and NAS share %q is %s: %s",
			src.Protocol, target.Name, target.Protocol, protocolMismatch(src.Protocol))
	}
	plan := restorePlan{ShareID: target.ID,
		Alternate: req.NAS.Path != "" || target.NASDeviceID != src.NASDeviceID || target.Share != src.Share}
	raw, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	return &driver.RestoreParams{RestoreRequest: req, TargetLocation: api.LocationAgent, Driver: raw}, nil
}

func protocolMismatch(from string) string {
	if from == api.ProtocolSMB {
		return "its security descriptors and DOS attributes cannot be kept on NFS; restore it into an SMB share"
	}
	return "its POSIX modes and owners cannot be kept on SMB; restore it into an NFS share"
}

// Restore hands the restore to a proxy of the target share's device. It
// holds the share's restore lock meanwhile, so that a backup of the share
// waits for it (and a second restore into it too).
func (d *Driver) Restore(ctx context.Context, run driver.Restore) error {
	params := run.Params()
	var plan restorePlan
	if err := json.Unmarshal(params.Driver, &plan); err != nil {
		return driver.Failed{Err: fmt.Errorf("the restore's plan is unreadable: %w", err)}
	}
	target, err := loadShare(ctx, d.db, plan.ShareID, "nas.share_id")
	if err != nil {
		return driver.Failed{Err: fmt.Errorf("the target share: %w", err)}
	}
	release, ok, err := d.locks.TryLock(ctx, restoreLock(target.ID))
	if err != nil {
		return err
	}
	if !ok {
		return driver.Wait{Reason: fmt.Sprintf("another restore into NAS share %q is running", target.Name), After: 3 * time.Second}
	}
	defer release()
	proxy, err := d.proxy(ctx, target.Device)
	if err != nil {
		return err
	}
	root, err := run.Root(ctx)
	if err != nil {
		return err
	}
	wk := work{ShareID: target.ID, DeviceID: target.Device.ID, NASWork: d.reach(target)}
	wk.Target, wk.Alternate = params.NAS.Path, plan.Alternate
	raw, err := json.Marshal(wk)
	if err != nil {
		return err
	}
	pt := run.Point()
	dsp := db.Dispatch{Kind: api.JobRestore, StorageID: pt.StorageID, PointID: pt.ID, Root: root.String(),
		Paths: params.Paths, Conflict: params.NAS.Conflict, Resume: run.Job().Attempt > 1,
		RestoreInclude: params.Include, RestoreExclude: params.Exclude, Workload: Workload, Work: raw}
	dsp.FilesTotal, dsp.BytesTotal = files.RestoreTotals(params.RestoreRequest, pt)
	return d.hub.RestoreOn(ctx, run, proxy.ID, dsp)
}
