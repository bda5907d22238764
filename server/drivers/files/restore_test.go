package files_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// PrepareRestore fills in the target file server and says where the
// restore runs, and refuses at once what cannot work, naming the field.
func TestPrepareRestore(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	c := newCatalog(t, base)
	host := c.fileServer(t, "haven-host", api.OSLinux, api.LocationServer)
	web := c.fileServer(t, "web1", api.OSLinux, api.LocationAgent, "/restores")
	win := c.fileServer(t, "fs-win", api.OSWindows, api.LocationAgent)
	local := c.asset(t, c.fileset(t, "data", host, filepath.Join(base, "data")))
	remote := c.asset(t, c.fileset(t, "www", web, "/var/www", "/etc/nginx"))
	point := api.Point{ID: uuid.NewString(), AssetID: local.ID, StorageID: c.StorageID, LogicalBytes: 1000, Files: 3}

	// Accepted: to the point's own file server by default, and to an
	// agent's file server within what it allows.
	params, err := c.Local.PrepareRestore(ctx, api.RestoreRequest{PointID: point.ID, TargetPath: filepath.Join(base, "out")}, point, local)
	if err != nil {
		t.Fatalf("restore onto the Haven host: %v", err)
	}
	if params.TargetFileServerID != host || params.TargetLocation != api.LocationServer {
		t.Errorf("restore goes to %s (%s), want the point's own %s (server)", params.TargetFileServerID, params.TargetLocation, host)
	}
	for _, req := range []api.RestoreRequest{
		{TargetPath: "/restores/today"},
		{Paths: []string{"/var/www/site", "/etc/nginx/nginx.conf"}},
		{}, // every include path, to where it came from
	} {
		params, err := c.Agent.PrepareRestore(ctx, req, point, remote)
		if err != nil {
			t.Errorf("restore %+v onto the agent's host: %v", req, err)
			continue
		}
		if params.TargetFileServerID != web || params.TargetLocation != api.LocationAgent {
			t.Errorf("restore %+v goes to %s (%s), want %s (agent)", req, params.TargetFileServerID, params.TargetLocation, web)
		}
	}

	for _, tc := range []struct {
		name   string
		req    api.RestoreRequest
		source string
		field  string
	}{
		{"another OS", api.RestoreRequest{TargetFileServerID: win, TargetPath: "/restores"}, remote.ID, "target_file_server_id"},
		{"unknown target", api.RestoreRequest{TargetFileServerID: uuid.NewString()}, remote.ID, "target_file_server_id"},
		{"a VM restore", api.RestoreRequest{VM: &api.VMRestore{Name: "copy"}}, local.ID, "vm"},
		{"outside the agent's roots", api.RestoreRequest{TargetPath: "/home"}, remote.ID, "target_path"},
		{"a path outside the agent's roots", api.RestoreRequest{Paths: []string{"/var/www/site", "/var/lib/secret"}}, remote.ID, "paths[1]"},
		{"from an agent to outside the Haven host's roots", api.RestoreRequest{TargetFileServerID: host, TargetPath: "/var/tmp/x"}, remote.ID, "target_path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := c.asset(t, tc.source)
			drv, err := c.Registry.For(a.Kind)
			if err != nil {
				t.Fatal(err)
			}
			_, err = drv.PrepareRestore(ctx, tc.req, point, a)
			apiError(t, err, http.StatusUnprocessableEntity, tc.field)
		})
	}
}
