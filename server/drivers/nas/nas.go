// Package nas is the driver of NAS shares: shares (SMB) and exports (NFS)
// of NAS devices, read and written by a NAS proxy, the Haven agent of one
// of the device's proxy file servers, which speaks the protocol itself
// (engine/nas) and mounts nothing. The files.Hub carries the jobs to the
// proxies; this package picks the proxy, fills in the work (with the
// device's secrets, which never rest in the job row), and keeps a backup
// of a share from running while a restore writes into it.
package nas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
)

// Kind is the asset kind of NAS shares.
const Kind = "nas-share"

// Workload names this driver's hub extension (db.Dispatch.Workload).
const Workload = "nas"

// Share is a NAS share asset's spec as the driver sees it: the share and
// its device (nil for a deleted share: its points are restored into a
// share the restore names).
type Share struct {
	api.NASShare
	Device *Device
}

// Device is a NAS device with its id and sealed secrets.
type Device struct {
	ID string
	api.NASDevice
	Sealed []byte
}

// ShareOf is the share of an asset served by this driver.
func ShareOf(a *driver.Asset) *Share { return a.Spec.(*Share) }

// Decoder reads NAS shares from the catalog.
type Decoder struct{ DB *db.DB }

func (Decoder) Table() db.Table     { return db.NASShares }
func (Decoder) RetiredKind() string { return "nas_share" }

func (d Decoder) Decode(ctx context.Context, rec driver.Record) (*driver.Asset, error) {
	s := &Share{}
	a := &driver.Asset{Spec: s, Kind: Kind}
	var raw []byte
	if r := rec.Retired; r != nil {
		a.ID, a.Name, raw = r.ID, r.Name, r.Spec
	} else {
		a.ID, a.Name, raw = rec.Object.ID, rec.Object.Name, rec.Object.Spec
	}
	if err := json.Unmarshal(raw, &s.NASShare); err != nil {
		return nil, fmt.Errorf("NAS share %s: %w", a.ID, err)
	}
	s.ID, s.Name = a.ID, a.Name
	if rec.Retired == nil {
		dev, err := loadDevice(ctx, d.DB, s.NASDeviceID, "nas_device_id")
		if err != nil {
			return nil, err
		}
		s.Device = dev
	}
	a.StorageID, a.Policy.ID = s.StorageID, s.PolicyID
	return a, nil
}

func loadDevice(ctx context.Context, d *db.DB, id, field string) (*Device, error) {
	o, err := d.Get(ctx, db.NASDevices, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, api.Unprocessable(field, "NAS device %q does not exist", id)
	} else if err != nil {
		return nil, err
	}
	dev := &Device{ID: o.ID, Sealed: o.SealedSecret}
	if err := json.Unmarshal(o.Spec, &dev.NASDevice); err != nil {
		return nil, fmt.Errorf("NAS device %s: %w", o.ID, err)
	}
	dev.NASDevice.ID, dev.NASDevice.Name = o.ID, o.Name
	return dev, nil
}

// loadShare reads a live share with its device.
func loadShare(ctx context.Context, d *db.DB, id, field string) (*Share, error) {
	o, err := d.Get(ctx, db.NASShares, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, api.Unprocessable(field, "NAS share %q does not exist", id)
	} else if err != nil {
		return nil, err
	}
	s := &Share{}
	if err := json.Unmarshal(o.Spec, &s.NASShare); err != nil {
		return nil, fmt.Errorf("NAS share %s: %w", o.ID, err)
	}
	s.ID, s.Name = o.ID, o.Name
	if s.Device, err = loadDevice(ctx, d, s.NASDeviceID, field); err != nil {
		return nil, err
	}
	return s, nil
}

// Driver serves NAS shares.
type Driver struct {
	db     *db.DB
	hub    *files.Hub
	master *keys.MasterKey
	locks  driver.Locker
	now    func() time.Time
}

// New returns the driver and registers its extension with the hub; locks
// keep a backup of a share from running while a restore writes into it.
func New(d *db.DB, hub *files.Hub, master *keys.MasterKey, locks driver.Locker) *Driver {
	drv := &Driver{db: d, hub: hub, master: master, locks: locks, now: time.Now}
	hub.Extend(Workload, extension{drv})
	return drv
}

func (*Driver) Kind() string { return Kind }

// Cleanup has nothing to do: an interrupted restore's temporary files are
// overwritten by its next attempt (they have fixed names beside their
// destinations), and a backup leaves nothing on the NAS.
func (*Driver) Cleanup(context.Context) error { return nil }

// CheckBackup skips the backups of a share whose device is gone, and puts
// back in the queue one asked for while a restore writes into the share:
// before the asset's lock is taken, so that the job says why it waits even
// when another backup still holds that lock.
func (d *Driver) CheckBackup(ctx context.Context, b driver.Backup) error {
	if ShareOf(b.Asset()).Device == nil {
		return driver.Skipf("the NAS share's device is gone")
	}
	return d.restoreRunning(ctx, b.Asset())
}

// restoreRunning is a driver.Wait while a restore into the share a runs.
func (d *Driver) restoreRunning(ctx context.Context, a *driver.Asset) error {
	release, ok, err := d.locks.TryLock(ctx, restoreLock(a.ID))
	if err != nil {
		return err
	}
	if !ok {
		return driver.Wait{Reason: fmt.Sprintf("a restore into NAS share %q is running: the backup waits for it to end", a.Name), After: 3 * time.Second}
	}
	release()
	return nil
}

// restoreLock is held, on the replica that follows it, for the length of
// a restore into a share.
func restoreLock(shareID string) string { return "haven-nas-restore:" + shareID }

// Backup waits while a restore writes into the share, then hands the
// capture to one of the device's proxies.
func (d *Driver) Backup(ctx context.Context, b driver.Backup) error {
	a := b.Asset()
	s := ShareOf(a)
	// Again under the asset's lock: a restore may have begun since
	// CheckBackup.
	if err := d.restoreRunning(ctx, a); err != nil {
		return err
	}
	proxy, err := d.proxy(ctx, s.Device)
	if err != nil {
		return err
	}
	plan, err := b.Plan(ctx)
	if err != nil {
		return err
	}
	wk := work{ShareID: a.ID, DeviceID: s.Device.ID, NASWork: d.reach(s)}
	wk.Path, wk.Include, wk.Exclude = s.Path, s.Include, s.Exclude
	if b.Job().Trigger == api.TriggerScheduled && a.Policy.BandwidthMbps > 0 {
		wk.ReadBytesPerS = int64(a.Policy.BandwidthMbps) * 1_000_000 / 8
	}
	raw, err := json.Marshal(wk)
	if err != nil {
		return err
	}
	return d.hub.BackupOn(ctx, b, proxy.ID, proxy.Name, plan, db.Dispatch{Workload: Workload, Work: raw})
}

// reach is how a proxy reaches a share (without the secrets).
func (d *Driver) reach(s *Share) api.NASWork {
	dev := s.Device
	w := api.NASWork{Protocol: s.Protocol, Host: dev.Host, Share: s.Share, SMBUser: dev.SMBUser, SMBDomain: dev.SMBDomain,
		NFSPort: dev.NFSPort, NFSMountPort: dev.NFSMountPort}
	w.NFSUID, w.NFSGID = uint32(dev.NFSUID), uint32(dev.NFSGID)
	return w
}

// proxy picks the file server whose agent serves a job of the device: the
// first of its proxies whose agent is online, else the first (the job
// then waits for it).
func (d *Driver) proxy(ctx context.Context, dev *Device) (db.Object, error) {
	var first *db.Object
	for _, id := range dev.ProxyFileServerIDs {
		o, err := d.db.Get(ctx, db.FileServers, id)
		if errors.Is(err, db.ErrNotFound) {
			continue
		} else if err != nil {
			return db.Object{}, err
		}
		if d.hub.Online(ctx, o.ID) {
			return o, nil
		}
		if first == nil {
			first = &o
		}
	}
	if first == nil {
		return db.Object{}, driver.Failed{Err: fmt.Errorf("NAS device %q has no proxy file server", dev.Name)}
	}
	return *first, nil
}

// work is what this driver stores in a job's dispatch: the proxy's work
// without the secrets, and the share and device they come from.
type work struct {
	api.NASWork
	ShareID  string `json:"share_id"`
	DeviceID string `json:"device_id"`
}

// extension is the driver's part in the hub's agent jobs.
type extension struct{ d *Driver }

func (e extension) Work(ctx context.Context, jobID string, dsp db.Dispatch, w *api.AgentWork) error {
	var wk work
	if err := json.Unmarshal(dsp.Work, &wk); err != nil {
		return fmt.Errorf("job %s: NAS work: %w", jobID, err)
	}
	dev, err := loadDevice(ctx, e.d.db, wk.DeviceID, "nas_device_id")
	if err != nil {
		return err
	}
	if dev.Sealed != nil && wk.Protocol == api.ProtocolSMB {
		plain, err := e.d.master.Open(dev.Sealed, api.NASCredentialsContext)
		if err != nil {
			return fmt.Errorf("NAS device %q: opening its credentials: %w", dev.Name, err)
		}
		var c api.NASCredentials
		if err := json.Unmarshal(plain, &c); err != nil {
			return fmt.Errorf("NAS device %q: its credentials: %w", dev.Name, err)
		}
		wk.SMBPassword, wk.SMBKeytab = c.SMBPassword, c.SMBKeytab
	}
	w.NAS = &wk.NASWork
	return nil
}

// Completed commits a share's point as the hub planned it (full, or
// incremental on the parent the proxy reused from).
func (extension) Completed(context.Context, string, db.Dispatch, api.AgentComplete, *driver.Plan, *driver.PointStats) error {
	return nil
}

func (extension) Restored(context.Context, string, db.Dispatch, api.AgentComplete) error { return nil }
