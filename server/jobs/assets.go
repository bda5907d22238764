package jobs

import (
	"context"
	"encoding/json"
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
}

// scheduled tells whether the schedule should run backups of the asset.
func (a *asset) scheduled() bool { return a.vm == nil || a.vm.Status == api.VMActive }

func (s *Service) loadAsset(ctx context.Context, id string) (*asset, error) {
	table, o, err := s.db.AssetObject(ctx, id)
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
