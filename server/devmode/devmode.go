// Package devmode runs `haven server --dev`: a server on embedded
// PostgreSQL with a local storage and an in-process vCenter simulator whose
// VMs' disks hold real data, for trying Haven and for `make demo` without
// any infrastructure. The simulator is in memory: its inventory (and so
// its VMs' instance UUIDs) is new at every start.
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// EnvFile is written under the data dir with what clients need, as shell
// variable assignments (mode 0600: it holds the admin token).
const EnvFile = "dev.env"

// StorageName is the local storage dev mode creates.
const StorageName = "local"

// VMs are the simulator's VMs: a web server, a two-disk database and an
// app server, their disks partly filled with data.
var VMs = []vcsimlab.VMSpec{
	{Folder: "prod", Name: "web-01", DiskSizes: []int64{64 << 20}, Tags: []string{"backup:gold"}, PowerOn: true},
	{Folder: "prod", Name: "db-01", DiskSizes: []int64{64 << 20, 32 << 20}, Tags: []string{"backup:gold"}, PowerOn: true},
	{Folder: "dev", Name: "app-01", DiskSizes: []int64{32 << 20}, PowerOn: true},
}

// Run runs the dev server (haven server --dev) until ctx ends.
func Run(ctx context.Context, cfg server.Config, stdout, stderr io.Writer) int {
	log := server.NewLogger(stderr, cfg.LogLevel)
	slog.SetDefault(log)
	d, err := Start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "haven server --dev:", err)
		return 1
	}
	d.Print(stdout, isTerminal(stdout))
	select {
	case <-ctx.Done():
	case err := <-d.Server.Done():
		log.Error("listener stopped", "error", fmt.Sprint(err))
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d.Close(shutdownCtx)
	return 0
}

// Dev is a running dev server and its simulator.
type Dev struct {
	Server  *server.Server
	Lab     *vcsimlab.Lab
	Token   string
	DataDir string
}

// Start brings up the simulator, the server and the local storage.
func Start(ctx context.Context, cfg server.Config, log *slog.Logger) (*Dev, error) {
	labDir := filepath.Join(cfg.DataDir, "vcsim")
	if err := os.MkdirAll(labDir, 0o700); err != nil {
		return nil, err
	}
	lab, err := vcsimlab.Start(ctx, vcsimlab.Options{VMs: VMs, Dir: labDir})
	if err != nil {
		return nil, fmt.Errorf("starting the vCenter simulator: %w", err)
	}
	for i, vm := range VMs {
		for d := range vm.DiskSizes {
			if _, err := lab.FillDisk(ctx, vm.Name, d, uint64(i*10+d+1), 0.4); err != nil {
				lab.Close()
				return nil, err
			}
		}
	}
	srv, err := server.Start(ctx, cfg, log)
	if err != nil {
		lab.Close()
		return nil, err
	}
	dev := &Dev{Server: srv, Lab: lab, DataDir: cfg.DataDir}
	token, err := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminTokenFile))
	if err != nil {
		dev.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("reading the admin token: %w", err)
	}
	dev.Token = strings.TrimSpace(string(token))
	if err := dev.ensureStorage(ctx); err != nil {
		dev.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	if err := dev.writeEnv(); err != nil {
		dev.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return dev, nil
}

// ensureStorage creates the local storage unless it exists (a restart on
// the same data dir keeps it, and its points).
func (d *Dev) ensureStorage(ctx context.Context) error {
	c, err := api.NewClient(api.ClientOptions{Endpoint: d.Server.URL(), Token: d.Token})
	if err != nil {
		return err
	}
	_, err = c.Storages().Get(ctx, StorageName)
	var e *api.Error
	if errors.As(err, &e) && e.Status == 404 {
		_, err = c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: StorageName, Kind: api.StorageFilesystem,
			Path: filepath.Join(d.DataDir, "store")}})
	}
	return err
}

func (d *Dev) env() [][2]string {
	return [][2]string{
		{"HAVEN_ENDPOINT", d.Server.URL()},
		{"HAVEN_TOKEN", d.Token},
		{"HAVEN_DEV_STORAGE", StorageName},
		{"HAVEN_DEV_VCENTER_URL", d.Lab.URL},
		{"HAVEN_DEV_VCENTER_USER", d.Lab.Username},
		{"HAVEN_DEV_VCENTER_PASSWORD", d.Lab.Password},
		{"HAVEN_DEV_VCENTER_THUMBPRINT", d.Lab.Thumbprint},
		{"HAVEN_DEV_GUEST_USER", vcsimlab.DefaultGuestUser},
		{"HAVEN_DEV_GUEST_PASSWORD", vcsimlab.DefaultGuestPassword},
	}
}

func (d *Dev) writeEnv() error {
	var b strings.Builder
	for _, kv := range d.env() {
		// Exported, so that the programs run after `. dev.env` (terraform,
		// haven) see the variables, not only the shell itself.
		fmt.Fprintf(&b, "export %s='%s'\n", kv[0], strings.ReplaceAll(kv[1], "'", `'\''`))
	}
	path := filepath.Join(d.DataDir, EnvFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// Print tells the user how to reach everything. The secrets (the admin
// token, the simulator's password) are shown only with secrets set, which
// Main does when stdout is a terminal: the person who started the server
// sees them, while a stdout sent to a file or a journal (where logs end up)
// gets the names of the 0600 files that hold them. They never go to the
// structured log.
func (d *Dev) Print(w io.Writer, secrets bool) {
	token := "in " + filepath.Join(d.DataDir, server.AdminTokenFile)
	login := fmt.Sprintf("%s / password in %s", d.Lab.Username, filepath.Join(d.DataDir, EnvFile))
	if secrets {
		token, login = d.Token, d.Lab.Username+" / "+d.Lab.Password
	}
	fmt.Fprintf(w, "\nHaven dev server\n")
	fmt.Fprintf(w, "  endpoint        %s\n", d.Server.URL())
	fmt.Fprintf(w, "  admin token     %s\n", token)
	fmt.Fprintf(w, "  local storage   %q (%s)\n", StorageName, filepath.Join(d.DataDir, "store"))
	fmt.Fprintf(w, "  vCenter URL     %s\n", d.Lab.URL)
	fmt.Fprintf(w, "  vCenter login   %s\n", login)
	fmt.Fprintf(w, "  thumbprint      %s\n", d.Lab.Thumbprint)
	fmt.Fprintf(w, "  VMs             %s\n", strings.Join(d.Lab.VMs, ", "))
	fmt.Fprintf(w, "  shell variables %s (source it)\n\n", filepath.Join(d.DataDir, EnvFile))
}

// isTerminal reports whether w is a terminal (a character device), and
// not a pipe or a file that outlives the session.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Close stops the server, then the simulator.
func (d *Dev) Close(ctx context.Context) {
	if err := d.Server.Shutdown(ctx); err != nil {
		slog.Default().Error("shutdown", "error", err.Error())
	}
	d.Lab.Close()
}
