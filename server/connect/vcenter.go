package connect

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// VCenterSecretContext binds sealed vCenter passwords to their purpose.
const VCenterSecretContext = "haven/vcenter/password"

// LoginTimeout bounds one login.
const LoginTimeout = 30 * time.Second

// VCenter logs in with the given settings.
func VCenter(ctx context.Context, spec api.VCenterSpec, password string) (*vmware.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, LoginTimeout)
	defer cancel()
	cfg := vmware.Config{URL: spec.URL, Username: spec.Username, Password: password, Thumbprint: spec.Thumbprint, Insecure: spec.Insecure}
	if spec.CAPEM != "" {
		f, err := os.CreateTemp("", "haven-vcenter-ca-*.pem")
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		if _, err := f.WriteString(spec.CAPEM); err != nil {
			f.Close()
			return nil, err
		}
		f.Close()
		cfg.CAFile = f.Name()
	}
	c, err := vmware.Connect(ctx, cfg)
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, vmware.ErrBadCredentials):
		return nil, api.Unprocessable("password", "the vCenter rejected the user name or password")
	case errors.Is(err, vmware.ErrCertificate):
		field := "thumbprint"
		if spec.CAPEM != "" {
			field = "ca_pem"
		}
		return nil, api.Unprocessable(field, "%v", err)
	case errors.Is(err, vmware.ErrUnreachable):
		return nil, api.Unprocessable("url", "the vCenter cannot be reached: %v", err)
	}
	return nil, api.Unprocessable("url", "logging in to the vCenter failed: %v", err)
}

// StoredVCenter logs into a registered vCenter with its sealed password.
func StoredVCenter(ctx context.Context, d *db.DB, master *keys.MasterKey, id string) (*vmware.Client, api.VCenter, error) {
	o, err := d.Get(ctx, db.VCenters, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, api.VCenter{}, api.NotFound("vCenter", id)
	}
	if err != nil {
		return nil, api.VCenter{}, err
	}
	vc := api.VCenter{Meta: api.Meta{ID: o.ID, Version: o.Version}}
	if err := json.Unmarshal(o.Spec, &vc.VCenterSpec); err != nil {
		return nil, vc, err
	}
	password, err := master.Open(o.SealedSecret, VCenterSecretContext)
	if err != nil {
		return nil, vc, err
	}
	c, err := VCenter(ctx, vc.VCenterSpec, string(password))
	return c, vc, err
}

// GuestPasswordContext binds a protected VM's sealed guest password.
const GuestPasswordContext = "haven/protected-vm/guest-password"

// APIVM is a VM of a vCenter's inventory as the API shows it.
func APIVM(vcenterID string, vm vmware.VM) api.VM {
	item := api.VM{VCenterID: vcenterID, Name: vm.Name, InventoryPath: vm.InventoryPath, InstanceUUID: vm.InstanceUUID,
		MoRef: vm.MoRef, Folder: vm.Folder, Tags: vm.Tags, PowerState: vm.PowerState, Disks: []api.VMDisk{}}
	if item.Tags == nil {
		item.Tags = []string{}
	}
	for _, d := range vm.Disks {
		item.Disks = append(item.Disks, api.VMDisk{Key: d.Key, Label: d.Label, CapacityBytes: d.CapacityBytes})
	}
	return item
}
