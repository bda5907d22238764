// Package files holds the drivers of filesets: files on the Haven host
// itself (Local), and files on a host whose agent captures and restores
// them (Agent, with the Hub that serves agents' calls). Both share the
// fileset decoder and the checks of where a restore may write.
package files

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// Asset kinds of filesets, by where their file server runs.
const (
	KindLocal = "files-local"
	KindAgent = "files-agent"
)

// Fileset is a fileset asset's spec as its drivers see it: the fileset
// and its file server (as it was when a retired fileset was deleted).
type Fileset struct {
	Fileset api.Fileset
	Server  api.FileServer
}

// FilesetOf is the fileset of an asset served by this package's drivers.
func FilesetOf(a *driver.Asset) *Fileset { return a.Spec.(*Fileset) }

// Decoder reads filesets from the catalog.
type Decoder struct{ DB *db.DB }

func (Decoder) Table() db.Table     { return db.Filesets }
func (Decoder) RetiredKind() string { return "fileset" }

// Decode makes a fileset an asset of the Local or Agent kind, by its file
// server's location.
func (d Decoder) Decode(ctx context.Context, rec driver.Record) (*driver.Asset, error) {
	fs := &Fileset{}
	a := &driver.Asset{Spec: fs}
	if r := rec.Retired; r != nil {
		fs.Fileset = api.Fileset{Meta: api.Meta{ID: r.ID}}
		if err := json.Unmarshal(r.Spec, &fs.Fileset.FilesetSpec); err != nil {
			return nil, err
		}
		if r.FileServer != nil {
			var s struct {
				ID string `json:"id"`
				api.FileServerSpec
			}
			if err := json.Unmarshal(r.FileServer, &s); err != nil {
				return nil, err
			}
			fs.Server.ID, fs.Server.FileServerSpec = s.ID, s.FileServerSpec
		}
		a.ID, a.Name = r.ID, r.Name
	} else {
		o := rec.Object
		fs.Fileset = api.Fileset{Meta: api.Meta{ID: o.ID, Version: o.Version}}
		if err := json.Unmarshal(o.Spec, &fs.Fileset.FilesetSpec); err != nil {
			return nil, err
		}
		so, err := d.DB.Get(ctx, db.FileServers, fs.Fileset.FileServerID)
		if err != nil {
			return nil, fmt.Errorf("file server %s: %w", fs.Fileset.FileServerID, err)
		}
		fs.Server = api.FileServer{Meta: api.Meta{ID: so.ID}}
		if err := json.Unmarshal(so.Spec, &fs.Server.FileServerSpec); err != nil {
			return nil, err
		}
		a.ID, a.Name, a.Sealed = o.ID, o.Name, o.SealedSecret
	}
	a.StorageID, a.Policy.ID = fs.Fileset.StorageID, fs.Fileset.PolicyID
	a.Kind = KindLocal
	if fs.Server.Location == api.LocationAgent {
		a.Kind = KindAgent
	}
	return a, nil
}
