package devmode_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/devmode"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

// TestDevServer: the dev server has a local storage, a simulator whose VMs
// hold data, and writes what a client needs to a 0600 file.
func TestDevServer(t *testing.T) {
	ctx := context.Background()
	cfg := server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), DatabaseURL: testparts.PostgresURL(t), LogLevel: "info"}
	d, err := devmode.Start(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	var out bytes.Buffer
	d.Print(&out, true)
	for _, want := range []string{d.Server.URL(), d.Token, d.Lab.URL, "web-01"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the banner lacks %q:\n%s", want, out.String())
		}
	}
	env := filepath.Join(cfg.DataDir, devmode.EnvFile)
	if fi, err := os.Stat(env); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", env, fi, err)
	}
	// `. dev.env`, as the banner says, exports the variables: a program
	// started from that shell (terraform, haven) sees them.
	sh := exec.Command("sh", "-c", `. "$1" && exec env`, "sh", env)
	sh.Env = []string{"PATH=" + os.Getenv("PATH")}
	seen, err := sh.Output()
	if err != nil {
		t.Fatalf("sourcing %s: %v", env, err)
	}
	for _, want := range []string{"HAVEN_ENDPOINT=" + d.Server.URL(), "HAVEN_TOKEN=" + d.Token, "HAVEN_DEV_VCENTER_PASSWORD=" + d.Lab.Password} {
		if !strings.Contains("\n"+string(seen), "\n"+want+"\n") {
			t.Errorf("a program started after `. dev.env` does not see %s; it sees:\n%s", strings.SplitN(want, "=", 2)[0], seen)
		}
	}
	c, err := api.NewClient(api.ClientOptions{Endpoint: d.Server.URL(), Token: d.Token})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Storages().Get(ctx, devmode.StorageName); err != nil || st.Kind != api.StorageFilesystem {
		t.Fatalf("local storage: %+v %v", st, err)
	}
	vc, err := vmware.Connect(ctx, vmware.Config{URL: d.Lab.URL, Username: d.Lab.Username, Password: d.Lab.Password, Thumbprint: d.Lab.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	defer vc.Logout(ctx)
	for _, spec := range devmode.VMs {
		vm, err := vc.VMByName(ctx, spec.Name)
		if err != nil || len(vm.Disks) != len(spec.DiskSizes) {
			t.Fatalf("VM %s: %+v %v", spec.Name, vm, err)
		}
		b, err := d.Lab.DiskBytes(ctx, spec.Name, 0)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(b, []byte{0}) > len(b)*9/10 {
			t.Errorf("VM %s's disk is nearly empty; dev VMs hold data", spec.Name)
		}
	}
}

// TestDevSecretsStayOutOfLogs runs `haven server --dev` as the command
// does (devmode.Run), with stdout and stderr sent to files (as a service manager or
// `make demo` does): neither the structured log nor the redirected banner
// holds the admin token or the simulator's passwords; dev.env (0600) does.
func TestDevSecretsStayOutOfLogs(t *testing.T) {
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr servertest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- devmode.Run(ctx, server.Config{Listen: "127.0.0.1:0", DataDir: dataDir, DatabaseURL: testparts.PostgresURL(t), LogLevel: "info"}, &stdout, &stderr)
	}()
	env := filepath.Join(dataDir, devmode.EnvFile)
	for {
		if _, err := os.Stat(env); err == nil {
			break
		}
		select {
		case code := <-done:
			t.Fatalf("the dev server exited with %d:\n%s", code, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	token, err := os.ReadFile(filepath.Join(dataDir, server.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"admin token": strings.TrimSpace(string(token)), "vCenter password": vcsimlab.DefaultPassword,
		"guest password": vcsimlab.DefaultGuestPassword}
	if !strings.Contains(stderr.String(), "haven server listening") || !strings.Contains(stdout.String(), "Haven dev server") {
		t.Fatalf("no log or no banner:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	for what, secret := range secrets {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("the server's log holds the %s", what)
		}
		if strings.Contains(stdout.String(), secret) {
			t.Errorf("the banner, sent to a file, holds the %s:\n%s", what, stdout.String())
		}
	}
	if !strings.Contains(stdout.String(), env) {
		t.Errorf("the banner does not say where the secrets are:\n%s", stdout.String())
	}
	b, err := os.ReadFile(env)
	if fi, serr := os.Stat(env); err != nil || serr != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", env, err, serr)
	}
	for what, secret := range secrets {
		if !strings.Contains(string(b), secret) {
			t.Errorf("dev.env lacks the %s", what)
		}
	}
}
