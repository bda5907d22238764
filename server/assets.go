package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/auth"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// fileServerKind serves file servers; an agent silent for longer than
// offlineAfter (Config.AgentOfflineAfter, as for the agent hub and the
// metrics) shows offline.
func fileServerKind(d *db.DB, master *keys.MasterKey, offlineAfter time.Duration) objectKind[api.FileServerRequest, api.FileServer] {
	return objectKind[api.FileServerRequest, api.FileServer]{
		db: d, label: "file server", table: db.FileServers,
		version: func(r *api.FileServerRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.FileServerRequest, prev *db.Object) (storedObject, error) {
			spec := req.FileServerSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			if err := mayManageServerHost(ctx, spec.Location); err != nil {
				return storedObject{}, err
			}
			if prev != nil {
				var old api.FileServerSpec
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
				if old.Location != spec.Location {
					return storedObject{}, api.Unprocessable("location", "cannot change from %q to %q: create a new file server instead", old.Location, spec.Location)
				}
			}
			b, err := json.Marshal(spec)
			return storedObject{name: spec.Name, spec: b}, err
		},
		present: func(o db.Object) (api.FileServer, error) {
			f := api.FileServer{Meta: meta(o)}
			if err := json.Unmarshal(o.Spec, &f.FileServerSpec); err != nil {
				return f, err
			}
			if f.Location == api.LocationAgent {
				f.AgentStatus, f.AgentLastSeen = d.AgentStatus(context.Background(), o.ID, offlineAfter)
			}
			return f, nil
		},
		afterCreate: func(ctx context.Context, o db.Object, answer *api.FileServer) error {
			if answer.Location != api.LocationAgent {
				return nil
			}
			a, err := activationToken(ctx, d, master, o.ID, true)
			if err != nil {
				return err
			}
			answer.ActivationToken = a.ActivationToken
			answer.AgentStatus = "pending"
			return nil
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			var spec api.FileServerSpec
			if err := json.Unmarshal(o.Spec, &spec); err != nil {
				return err
			}
			if err := mayManageServerHost(ctx, spec.Location); err != nil {
				return err
			}
			return refusedIfUsed(ctx, d, "file_server_id", o.ID, "file server")
		},
	}
}

// mayManageServerHost keeps file servers of the Haven host itself (location
// "server") to admins: whoever defines one decides what the server reads
// and writes on its own host (within --local-roots).
func mayManageServerHost(ctx context.Context, location string) error {
	p := auth.FromContext(ctx)
	if location != api.LocationServer || p == nil || p.Role == api.RoleAdmin {
		return nil
	}
	return &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden, Field: "location",
		Message: fmt.Sprintf("role %s may not create, change or delete a file server of location %q (the Haven host itself): only admins may", p.Role, api.LocationServer)}
}

func filesetKind(d *db.DB, localRoots *confine.Roots) objectKind[api.FilesetRequest, api.Fileset] {
	return objectKind[api.FilesetRequest, api.Fileset]{
		db: d, label: "fileset", table: db.Filesets,
		version: func(r *api.FilesetRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.FilesetRequest, prev *db.Object) (storedObject, error) {
			spec := req.FilesetSpec
			spec.Normalize()
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			if err := mayWriteGroup(ctx, spec.Group); err != nil {
				return storedObject{}, err
			}
			if prev != nil {
				var old api.FilesetSpec
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
				if err := mayWriteGroup(ctx, old.Group); err != nil {
					return storedObject{}, err
				}
			}
			objs, err := resolveRefs(ctx, d, objectRef{"file_server_id", &spec.FileServerID, db.FileServers},
				objectRef{"policy_id", &spec.PolicyID, db.BackupPolicies}, objectRef{"storage_id", &spec.StorageID, db.Storages})
			if err != nil {
				return storedObject{}, err
			}
			if err := checkFilesetHost(ctx, objs[0], spec.IncludePaths, localRoots); err != nil {
				return storedObject{}, err
			}
			b, err := json.Marshal(spec)
			return storedObject{name: spec.Name, spec: b}, err
		},
		present: func(o db.Object) (api.Fileset, error) {
			f := api.Fileset{Meta: meta(o)}
			return f, json.Unmarshal(o.Spec, &f.FilesetSpec)
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			var spec api.FilesetSpec
			if err := json.Unmarshal(o.Spec, &spec); err != nil {
				return err
			}
			return mayWriteGroup(ctx, spec.Group)
		},
	}
}

// checkFilesetHost holds the include paths of a fileset on the Haven host
// itself to the server's --local-roots (the job checks them again when it
// runs: the roots or the file system may have changed meanwhile).
// A group admin's filesets live on its groups' file servers only: a
// fileset elsewhere would read another group's host (and widen what
// restores may write there).
func checkFilesetHost(ctx context.Context, fileServer db.Object, paths []string, roots *confine.Roots) error {
	var fs api.FileServerSpec
	if err := json.Unmarshal(fileServer.Spec, &fs); err != nil {
		return err
	}
	if err := mayUseGroup(ctx, fs.Group, "file_server_id", "file server", fileServer.Name); err != nil {
		return err
	}
	if fs.Location != api.LocationServer {
		return nil
	}
	for i, p := range paths {
		if err := roots.Check(p); err != nil {
			return api.Unprocessable("include_paths["+strconv.Itoa(i)+"]", "%v", err)
		}
	}
	return nil
}

// mayWriteGroup lets admins and operators write any asset, and group
// admins only the assets of their administrative groups.
func mayWriteGroup(ctx context.Context, group string) error {
	p := auth.FromContext(ctx)
	if p == nil {
		return nil
	}
	if p.Allows(auth.WriteGlobal) || p.InGroup(group) {
		return nil
	}
	return &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden, Field: "group",
		Message: fmt.Sprintf("role %s may only manage assets of its administrative groups %v", p.Role, p.Groups)}
}

// refusedIfUsed refuses to delete an object a user-declared asset or rule
// still refers to (see db.Referencing).
func refusedIfUsed(ctx context.Context, d *db.DB, field, id, label string) error {
	kind, name, err := d.Referencing(ctx, field, id)
	if err != nil || kind == "" {
		return err
	}
	return api.Conflict("", "the %s is used by %s %q: change or delete the %s first", label, kind, name, kind)
}

// refusedIfUsedByUsers is refusedIfUsed for what protected VMs refer to
// (policy, storage, vCenter): protections a rule made do not hold it. With
// no rule referring to it, they are leftovers, retired with it (their
// points stay restorable under the policy they were made under).
func refusedIfUsedByUsers(ctx context.Context, d *db.DB, js *engine, field, id, label string) error {
	if err := refusedIfUsed(ctx, d, field, id, label); err != nil {
		return err
	}
	return js.RetireRuleMade(ctx, field, id)
}
