package server

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/databases"
)

// databaseServerKind serves database servers. The password is sealed with
// the master key and handed only to the server's agent with its jobs.
func databaseServerKind(d *db.DB, master *keys.MasterKey) objectKind[api.DatabaseServerRequest, api.DatabaseServer] {
	return objectKind[api.DatabaseServerRequest, api.DatabaseServer]{
		db: d, label: "database server", table: db.DatabaseServers,
		version: func(r *api.DatabaseServerRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.DatabaseServerRequest, prev *db.Object) (storedObject, error) {
			spec := req.DatabaseServerSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			fs, err := d.Get(ctx, db.FileServers, spec.FileServerID)
			if errors.Is(err, db.ErrNotFound) {
				return storedObject{}, api.Unprocessable("file_server_id", "%q does not exist", spec.FileServerID)
			} else if err != nil {
				return storedObject{}, err
			}
			var fsSpec api.FileServerSpec
			if err := json.Unmarshal(fs.Spec, &fsSpec); err != nil {
				return storedObject{}, err
			}
			if fsSpec.Location != api.LocationAgent {
				return storedObject{}, api.Unprocessable("file_server_id", "file server %q is of location %q: a database server is reached through the agent of its host (location %q)", fs.Name, fsSpec.Location, api.LocationAgent)
			}
			if err := mayUseGroup(ctx, fsSpec.Group, "file_server_id", "file server", fs.Name); err != nil {
				return storedObject{}, err
			}
			spec.FileServerID = fs.ID
			stored := databases.StoredServer{DatabaseServerSpec: spec}
			var sealed []byte
			if prev != nil {
				var old databases.StoredServer
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
				// What the agent detected stays until the next backup
				// detects it again, unless the server moved.
				if old.FileServerID == spec.FileServerID && old.Host == spec.Host && old.Port == spec.Port {
					stored.Detected = old.Detected
				}
				// An update may leave the password out to keep it.
				sealed = prev.SealedSecret
			}
			if spec.Password != "" {
				sealed = master.Seal([]byte(spec.Password), databases.PasswordContext)
			}
			stored.Password = ""
			b, err := json.Marshal(stored)
			return storedObject{name: spec.Name, spec: b, sealed: sealed}, err
		},
		present: func(o db.Object) (api.DatabaseServer, error) {
			var st databases.StoredServer
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return api.DatabaseServer{}, err
			}
			return api.DatabaseServer{Meta: meta(o), DatabaseServerSpec: st.DatabaseServerSpec, HasPassword: o.SealedSecret != nil, Detected: st.Detected}, nil
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			return refusedIfUsed(ctx, d, "database_server_id", o.ID, "database server")
		},
	}
}

// databaseSetKind serves database sets, the database driver's assets.
func databaseSetKind(d *db.DB) objectKind[api.DatabaseSetRequest, api.DatabaseSet] {
	return objectKind[api.DatabaseSetRequest, api.DatabaseSet]{
		db: d, label: "database set", table: db.DatabaseSets,
		version: func(r *api.DatabaseSetRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.DatabaseSetRequest, prev *db.Object) (storedObject, error) {
			spec := req.DatabaseSetSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			if err := mayWriteGroup(ctx, spec.Group); err != nil {
				return storedObject{}, err
			}
			if prev != nil {
				var old api.DatabaseSetSpec
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
				if err := mayWriteGroup(ctx, old.Group); err != nil {
					return storedObject{}, err
				}
			}
			objs, err := resolveRefs(ctx, d, objectRef{"database_server_id", &spec.DatabaseServerID, db.DatabaseServers},
				objectRef{"policy_id", &spec.PolicyID, db.BackupPolicies}, objectRef{"storage_id", &spec.StorageID, db.Storages})
			if err != nil {
				return storedObject{}, err
			}
			var srv api.DatabaseServerSpec
			if err := json.Unmarshal(objs[0].Spec, &srv); err != nil {
				return storedObject{}, err
			}
			if err := mayUseGroup(ctx, srv.Group, "database_server_id", "database server", objs[0].Name); err != nil {
				return storedObject{}, err
			}
			b, err := json.Marshal(spec)
			return storedObject{name: spec.Name, spec: b}, err
		},
		present: func(o db.Object) (api.DatabaseSet, error) {
			s := api.DatabaseSet{Meta: meta(o)}
			return s, json.Unmarshal(o.Spec, &s.DatabaseSetSpec)
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			var spec api.DatabaseSetSpec
			if err := json.Unmarshal(o.Spec, &spec); err != nil {
				return err
			}
			return mayWriteGroup(ctx, spec.Group)
		},
	}
}
