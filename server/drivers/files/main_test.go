package files_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/driver/drivertest"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

// catalog is a drivertest environment with the file drivers registered
// as the server registers them.
type catalog struct {
	*drivertest.Env
	Hub      *files.Hub
	Local    *files.Local
	Agent    *files.Agent
	Registry *driver.Registry
	Commits  *commitRecorder
}

// newCatalog registers the file drivers over a fresh catalog; localRoots
// confine what they read and write on this host.
func newCatalog(t *testing.T, localRoots ...string) *catalog {
	t.Helper()
	env := drivertest.New(t)
	roots, err := confine.New(localRoots, nil, " (test roots)")
	if err != nil {
		t.Fatal(err)
	}
	c := &catalog{Env: env, Commits: &commitRecorder{db: env.DB}}
	c.Hub = files.NewHub(env.DB, env.Repos, c.Commits, func() time.Time { return env.Now }, 0)
	c.Local = files.NewLocal(env.DB, roots, c.Hub)
	c.Agent = files.NewAgent(env.DB, roots, c.Hub)
	c.Registry = driver.NewRegistry(env.DB)
	c.Registry.RegisterDecoder(files.Decoder{DB: env.DB})
	c.Registry.Register(c.Local, c.Agent)
	return c
}

// fileServer creates a file server and returns its id.
func (c *catalog) fileServer(t *testing.T, name, osName, location string, restoreRoots ...string) string {
	t.Helper()
	return c.Create(t, db.FileServers, name, api.FileServerSpec{Name: name, Hostname: name + ".example", OS: osName,
		Location: location, RestoreRoots: restoreRoots})
}

// fileset creates a fileset on a file server, under the test's policy and
// storage, and returns its id.
func (c *catalog) fileset(t *testing.T, name, fileServerID string, include ...string) string {
	t.Helper()
	return c.Create(t, db.Filesets, name, api.FilesetSpec{Name: name, FileServerID: fileServerID, IncludePaths: include,
		PolicyID: c.PolicyID, StorageID: c.StorageID})
}

// asset loads an asset through the registry, as the engine does.
func (c *catalog) asset(t *testing.T, id string) *driver.Asset {
	t.Helper()
	a, err := c.Registry.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("loading asset %s: %v", id, err)
	}
	return a
}

// apiError returns err as an *api.Error, failing the test when it is not
// one with the wanted status and field.
func apiError(t *testing.T, err error, status int, field string) *api.Error {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error %d on %q, got %v", status, field, err)
	}
	if ae.Status != status || ae.Field != field {
		t.Fatalf("want an API error %d on %q, got %d on %q: %v", status, field, ae.Status, ae.Field, ae)
	}
	return ae
}
