// Package vms is the driver of protected VMware VMs: backups through
// snapshots and changed block tracking (with the policy's guest scripts),
// restores as a new VM, over the original VM or as one disk, and the
// janitor that removes snapshots crashed backups left behind.
package vms

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/repos"
)

// Kind is the asset kind of protected VMs.
const Kind = "vmware-vm"

// Driver serves protected VMs.
type Driver struct {
	db     *db.DB
	master *keys.MasterKey
	locks  driver.Locker
	repos  *repos.Cache
	log    *slog.Logger
	// concurrency bounds the VM backups that run at once against one
	// vCenter, over all replicas.
	concurrency int
}

// New returns the VM driver; concurrency zero is 4 backups per vCenter.
func New(d *db.DB, master *keys.MasterKey, locks driver.Locker, rc *repos.Cache, log *slog.Logger, concurrency int) *Driver {
	if concurrency <= 0 {
		concurrency = 4
	}
	return &Driver{db: d, master: master, locks: locks, repos: rc, log: log, concurrency: concurrency}
}

func (*Driver) Kind() string { return Kind }

// VMOf is the protected VM of an asset of this kind.
func VMOf(a *driver.Asset) *api.ProtectedVM { return a.Spec.(*api.ProtectedVM) }

// Decoder reads protected VMs from the catalog.
type Decoder struct{}

func (Decoder) Table() db.Table     { return db.ProtectedVMs }
func (Decoder) RetiredKind() string { return "protected_vm" }

func (Decoder) Decode(_ context.Context, rec driver.Record) (*driver.Asset, error) {
	pv := &api.ProtectedVM{}
	a := &driver.Asset{Kind: Kind, Spec: pv}
	if r := rec.Retired; r != nil {
		if err := json.Unmarshal(r.Spec, pv); err != nil {
			return nil, err
		}
		pv.Meta = api.Meta{ID: r.ID}
		a.ID, a.Name = r.ID, r.Name
	} else {
		o := rec.Object
		if err := json.Unmarshal(o.Spec, pv); err != nil {
			return nil, err
		}
		pv.Meta = api.Meta{ID: o.ID, Version: o.Version}
		a.ID, a.Name, a.Sealed = o.ID, pv.Name, o.SealedSecret
	}
	a.StorageID, a.Policy.ID = pv.StorageID, pv.PolicyID
	if pv.Status != api.VMActive {
		a.Inactive = fmt.Sprintf("the VM is %s", pv.Status)
	}
	return a, nil
}

// CheckBackup skips a scheduled backup of a VM that is not active (no
// rule selects it, or it is missing from its vCenter). An on-demand one
// is tried.
func (*Driver) CheckBackup(_ context.Context, b driver.Backup) error {
	pv := VMOf(b.Asset())
	if pv.Status != api.VMActive && b.Job().Trigger == api.TriggerScheduled {
		return driver.Skipf("the VM is %s; it is not backed up", pv.Status)
	}
	return nil
}
