package files_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
)

// A fileset's kind follows its file server's location, live or retired;
// the registry hands out the asset with its policy filled in.
func TestDecoderKindFollowsTheFileServer(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t)
	onServer := c.fileServer(t, "haven-host", api.OSLinux, api.LocationServer)
	onAgent := c.fileServer(t, "web1", api.OSLinux, api.LocationAgent)
	local := c.fileset(t, "etc", onServer, "/etc")
	remote := c.fileset(t, "www", onAgent, "/var/www")

	dec := files.Decoder{DB: c.DB}
	for _, tc := range []struct{ id, server, kind string }{{local, onServer, files.KindLocal}, {remote, onAgent, files.KindAgent}} {
		o, err := c.DB.Get(ctx, db.Filesets, tc.id)
		if err != nil {
			t.Fatal(err)
		}
		a, err := dec.Decode(ctx, driver.Record{Table: db.Filesets, Object: o})
		if err != nil {
			t.Fatal(err)
		}
		fs := files.FilesetOf(a)
		if a.Kind != tc.kind || a.ID != tc.id || fs.Server.ID != tc.server || a.StorageID != c.StorageID || a.Policy.ID != c.PolicyID {
			t.Errorf("decoded %s as kind %q, id %s, server %s, storage %s, policy %s; want %q, %s, %s, %s, %s",
				tc.id, a.Kind, a.ID, fs.Server.ID, a.StorageID, a.Policy.ID, tc.kind, tc.id, tc.server, c.StorageID, c.PolicyID)
		}

		loaded := c.asset(t, tc.id)
		if loaded.Kind != tc.kind || loaded.Retired || loaded.Policy.Name != "daily" || !loaded.Scheduled() {
			t.Errorf("registry loaded %s as kind %q, retired %v, policy %q, scheduled %v", tc.id, loaded.Kind, loaded.Retired, loaded.Policy.Name, loaded.Scheduled())
		}
	}

	// Deleted, the fileset is decoded from what was recorded with it,
	// even once its file server is gone too.
	if err := c.DB.Delete(ctx, db.Filesets, remote, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.DB.Delete(ctx, db.FileServers, onAgent, nil); err != nil {
		t.Fatal(err)
	}
	ra, err := c.DB.GetRetiredAsset(ctx, remote)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Kind != dec.RetiredKind() {
		t.Fatalf("the fileset was retired as kind %q, the decoder reads %q", ra.Kind, dec.RetiredKind())
	}
	a, err := dec.Decode(ctx, driver.Record{Table: db.Filesets, Retired: &ra})
	if err != nil {
		t.Fatal(err)
	}
	fs := files.FilesetOf(a)
	if a.Kind != files.KindAgent || a.ID != remote || a.Name != "www" || fs.Server.ID != onAgent || fs.Server.Name != "web1" ||
		fs.Server.OS != api.OSLinux || len(fs.Fileset.IncludePaths) != 1 || fs.Fileset.IncludePaths[0] != "/var/www" {
		t.Errorf("retired fileset decoded as kind %q, id %s, name %q, server %+v, fileset %+v", a.Kind, a.ID, a.Name, fs.Server, fs.Fileset)
	}
	loaded := c.asset(t, remote)
	if loaded.Kind != files.KindAgent || !loaded.Retired || loaded.Policy.Name != "daily" || loaded.Scheduled() {
		t.Errorf("registry loaded the retired fileset as kind %q, retired %v, policy %q, scheduled %v", loaded.Kind, loaded.Retired, loaded.Policy.Name, loaded.Scheduled())
	}
}

// A live fileset whose file server is missing cannot be decoded, and the
// error names the file server.
func TestDecoderMissingFileServer(t *testing.T) {
	ctx := context.Background()
	c := newCatalog(t)
	gone := uuid.NewString()
	id := c.fileset(t, "orphan", gone, "/srv")
	o, err := c.DB.Get(ctx, db.Filesets, id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = files.Decoder{DB: c.DB}.Decode(ctx, driver.Record{Table: db.Filesets, Object: o})
	if err == nil || !strings.Contains(err.Error(), gone) || !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("want a not-found error naming file server %s, got %v", gone, err)
	}
	if _, err := c.Registry.Load(ctx, id); err == nil || !strings.Contains(err.Error(), gone) {
		t.Fatalf("registry: want an error naming file server %s, got %v", gone, err)
	}
}
