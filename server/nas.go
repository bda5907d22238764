package server

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// storedNASDevice is what the nas_devices table keeps as spec: the
// settings without the secrets, and which secret the sealed one holds. It
// reads as an api.NASDevice without Meta.
type storedNASDevice struct {
	api.NASDeviceSpec
	HasSMBPassword bool `json:"has_smb_password"`
	HasSMBKeytab   bool `json:"has_smb_keytab"`
}

// storedNASShare is what the nas_shares table keeps as spec: the share
// with its device's group, as an api.NASShare without Meta.
type storedNASShare struct {
	api.NASShareSpec
	Group string `json:"group,omitempty"`
}

// nasDeviceKind serves NAS devices. The SMB password or keytab is sealed
// with the master key (api.NASCredentials under api.NASCredentialsContext)
// and handed only to the device's NAS proxies with their jobs.
func nasDeviceKind(d *db.DB, master *keys.MasterKey) objectKind[api.NASDeviceRequest, api.NASDevice] {
	return objectKind[api.NASDeviceRequest, api.NASDevice]{
		db: d, label: "NAS device", table: db.NASDevices,
		version: func(r *api.NASDeviceRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.NASDeviceRequest, prev *db.Object) (storedObject, error) {
			spec := req.NASDeviceSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			ids := make([]string, len(spec.ProxyFileServerIDs))
			for i, ref := range spec.ProxyFileServerIDs {
				field := "proxy_file_server_ids[" + strconv.Itoa(i) + "]"
				fs, err := d.Get(ctx, db.FileServers, ref)
				if errors.Is(err, db.ErrNotFound) {
					return storedObject{}, api.Unprocessable(field, "file server %q does not exist", ref)
				} else if err != nil {
					return storedObject{}, err
				}
				var fsSpec api.FileServerSpec
				if err := json.Unmarshal(fs.Spec, &fsSpec); err != nil {
					return storedObject{}, err
				}
				if fsSpec.Location != api.LocationAgent {
					return storedObject{}, api.Unprocessable(field, "file server %q is of location %q: a NAS proxy is the Haven agent of a file server of location %q", fs.Name, fsSpec.Location, api.LocationAgent)
				}
				if err := mayUseGroup(ctx, fsSpec.Group, field, "file server", fs.Name); err != nil {
					return storedObject{}, err
				}
				if slices.Contains(ids, fs.ID) {
					return storedObject{}, api.FieldError(field, "file server %q is listed twice", fs.Name)
				}
				// Store ids, even when the request named file servers by name.
				ids[i] = fs.ID
			}
			spec.ProxyFileServerIDs = ids

			// The secrets: the one sent replaces what is stored; none
			// sent keeps it; a device without SMB keeps none.
			var creds *api.NASCredentials
			switch {
			case spec.SMBPassword != "":
				creds = &api.NASCredentials{SMBPassword: spec.SMBPassword}
			case spec.SMBKerberosKeytab != "":
				keytab, err := api.DecodeKeytab(spec.SMBKerberosKeytab)
				if err != nil {
					return storedObject{}, api.FieldError("smb_kerberos_keytab", "%v", err)
				}
				creds = &api.NASCredentials{SMBKeytab: keytab}
			}
			stored := storedNASDevice{NASDeviceSpec: spec}
			var sealed []byte
			if creds != nil {
				b, err := json.Marshal(creds)
				if err != nil {
					return storedObject{}, err
				}
				sealed = master.Seal(b, api.NASCredentialsContext)
				stored.HasSMBPassword, stored.HasSMBKeytab = creds.SMBPassword != "", creds.SMBKeytab != nil
			} else if prev != nil && spec.Serves(api.ProtocolSMB) {
				var old storedNASDevice
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
				sealed, stored.HasSMBPassword, stored.HasSMBKeytab = prev.SealedSecret, old.HasSMBPassword, old.HasSMBKeytab
			}
			if spec.Serves(api.ProtocolSMB) && sealed == nil {
				return storedObject{}, api.FieldError("smb_password", "is required with %q: give smb_password or smb_kerberos_keytab", api.ProtocolSMB)
			}
			stored.SMBPassword, stored.SMBKerberosKeytab = "", ""
			b, err := json.Marshal(stored)
			return storedObject{name: spec.Name, spec: b, sealed: sealed}, err
		},
		present: func(o db.Object) (api.NASDevice, error) {
			var st storedNASDevice
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return api.NASDevice{}, err
			}
			return api.NASDevice{Meta: meta(o), NASDeviceSpec: st.NASDeviceSpec, HasSMBPassword: st.HasSMBPassword,
				HasSMBKeytab: st.HasSMBKeytab}, nil
		},
		// The shares' group is the device's.
		afterUpdate: func(ctx context.Context, o db.Object) {
			var st storedNASDevice
			if json.Unmarshal(o.Spec, &st) == nil {
				_ = d.SetNASShareGroup(ctx, o.ID, st.Group)
			}
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			return refusedIfUsed(ctx, d, "nas_device_id", o.ID, "NAS device")
		},
	}
}

// nasShareKind serves NAS shares, the NAS driver's assets. A share's group
// is its device's: group admins manage the shares of their groups'
// devices.
func nasShareKind(d *db.DB) objectKind[api.NASShareRequest, api.NASShare] {
	return objectKind[api.NASShareRequest, api.NASShare]{
		db: d, label: "NAS share", table: db.NASShares,
		version: func(r *api.NASShareRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.NASShareRequest, prev *db.Object) (storedObject, error) {
			spec := req.NASShareSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			if prev != nil {
				var old storedNASShare
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
				if err := mayWriteGroup(ctx, old.Group); err != nil {
					return storedObject{}, err
				}
			}
			stored := storedNASShare{}
			objs, err := resolveRefs(ctx, d, objectRef{"nas_device_id", &spec.NASDeviceID, db.NASDevices},
				objectRef{"policy_id", &spec.PolicyID, db.BackupPolicies}, objectRef{"storage_id", &spec.StorageID, db.Storages})
			if err != nil {
				return storedObject{}, err
			}
			var dev api.NASDeviceSpec
			if err := json.Unmarshal(objs[0].Spec, &dev); err != nil {
				return storedObject{}, err
			}
			if err := mayUseGroup(ctx, dev.Group, "nas_device_id", "NAS device", objs[0].Name); err != nil {
				return storedObject{}, err
			}
			if !dev.Serves(spec.Protocol) {
				return storedObject{}, api.Unprocessable("protocol", "NAS device %q serves %v, not %q", objs[0].Name, dev.Protocols, spec.Protocol)
			}
			stored.Group = dev.Group
			stored.NASShareSpec = spec
			b, err := json.Marshal(stored)
			return storedObject{name: spec.Name, spec: b}, err
		},
		present: func(o db.Object) (api.NASShare, error) {
			var st storedNASShare
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return api.NASShare{}, err
			}
			return api.NASShare{Meta: meta(o), NASShareSpec: st.NASShareSpec, Group: st.Group}, nil
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			var st storedNASShare
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return err
			}
			return mayWriteGroup(ctx, st.Group)
		},
	}
}
