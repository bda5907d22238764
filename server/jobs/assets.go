package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// asset is a protected asset with everything a job needs about it: a
// fileset (with its file server) or a protected VM.
type asset struct {
	id        string
	storageID string
	policy    api.Policy

	fileset *api.Fileset
	server  *api.FileServer
	vm      *api.ProtectedVM
	// sealed is the asset's sealed secret (a protected VM's guest password).
	sealed []byte
	// retired is set for a deleted asset: its points are restored and
	// retained, it is never backed up again.
	retired bool
}

// scheduled tells whether the schedule should run backups of the asset.
func (a *asset) scheduled() bool { return a.vm == nil || a.vm.Status == api.VMActive }

// loadAsset loads an asset, live or retired (deleted while it had
// recovery points: see db.RetiredAsset). A retired asset is what its
// points need: its spec, the policy it was under and a fileset's file
// server as they were when it was deleted.
func (s *Service) loadAsset(ctx context.Context, id string) (*asset, error) {
	table, o, err := s.db.AssetObject(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return s.loadRetiredAsset(ctx, id)
	}
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", id, err)
	}
	a := &asset{id: o.ID, sealed: o.SealedSecret}
	var policyID string
	switch table {
	case db.ProtectedVMs:
		a.vm = &api.ProtectedVM{}
		if err := json.Unmarshal(o.Spec, a.vm); err != nil {
			return nil, err
		}
		a.vm.Meta = api.Meta{ID: o.ID, Version: o.Version}
		a.storageID, policyID = a.vm.StorageID, a.vm.PolicyID
	default:
		a.fileset = &api.Fileset{Meta: api.Meta{ID: o.ID, Version: o.Version}}
		if err := json.Unmarshal(o.Spec, &a.fileset.FilesetSpec); err != nil {
			return nil, err
		}
		fs, err := s.db.Get(ctx, db.FileServers, a.fileset.FileServerID)
		if err != nil {
			return nil, fmt.Errorf("file server %s: %w", a.fileset.FileServerID, err)
		}
		a.server = &api.FileServer{Meta: api.Meta{ID: fs.ID}}
		if err := json.Unmarshal(fs.Spec, &a.server.FileServerSpec); err != nil {
			return nil, err
		}
		a.storageID, policyID = a.fileset.StorageID, a.fileset.PolicyID
	}
	pol, err := s.db.Get(ctx, db.BackupPolicies, policyID)
	if err != nil {
		return nil, fmt.Errorf("backup policy %s: %w", policyID, err)
	}
	a.policy.Meta = api.Meta{ID: pol.ID}
	if err := json.Unmarshal(pol.Spec, &a.policy.PolicySpec); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Service) loadRetiredAsset(ctx context.Context, id string) (*asset, error) {
	r, err := s.db.GetRetiredAsset(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", id, err)
	}
	a := &asset{id: r.ID, retired: true}
	switch r.Kind {
	case "protected_vm":
		a.vm = &api.ProtectedVM{}
		if err := json.Unmarshal(r.Spec, a.vm); err != nil {
			return nil, err
		}
		a.vm.Meta = api.Meta{ID: r.ID}
		a.storageID = a.vm.StorageID
	default:
		a.fileset = &api.Fileset{Meta: api.Meta{ID: r.ID}}
		if err := json.Unmarshal(r.Spec, &a.fileset.FilesetSpec); err != nil {
			return nil, err
		}
		a.server = &api.FileServer{}
		if r.FileServer != nil {
			var fs struct {
				ID string `json:"id"`
				api.FileServerSpec
			}
			if err := json.Unmarshal(r.FileServer, &fs); err != nil {
				return nil, err
			}
			a.server.ID, a.server.FileServerSpec = fs.ID, fs.FileServerSpec
		}
		a.storageID = a.fileset.StorageID
	}
	if r.Policy == nil {
		return nil, fmt.Errorf("deleted asset %s (%s) has no recorded backup policy", r.Name, r.ID)
	}
	return a, json.Unmarshal(r.Policy, &a.policy.PolicySpec)
}
