package provider

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// terraform-plugin-testing does not show a test the warnings of a plan, so
// the retention preview is tested as users meet it: the real terraform
// binary runs plan on a working directory, with the provider binary built
// from this repository installed through dev_overrides (as scripts/demo.sh
// does), and the test reads what terraform printed.

// providerBinaryDir holds the binary providerBinary built; TestMain
// removes it.
var providerBinaryDir string

// providerBinary builds the haven binary once per test process; with no
// argument it serves the provider, which is how terraform starts it.
var providerBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "haven-provider-")
	if err != nil {
		return "", err
	}
	providerBinaryDir = dir
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "terraform-provider-haven")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the provider binary: %v\n%s", err, out)
	}
	return bin, nil
})

// terraformDir is a terraform working directory that uses the provider
// binary built from this repository.
type terraformDir struct {
	t   *testing.T
	dir string
	env []string
}

func newTerraformDir(t *testing.T) *terraformDir {
	t.Helper()
	bin, err := providerBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rc := filepath.Join(dir, "terraformrc")
	if err := os.WriteFile(rc, fmt.Appendf(nil, `provider_installation {
  dev_overrides {
    "havenbackup/haven" = %q
  }
  direct {}
}
`, filepath.Dir(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1", "CHECKPOINT_DISABLE=1",
		"TF_DATA_DIR="+filepath.Join(dir, "tfdata"))
	// The provider's own settings come from the configuration only.
	for _, k := range []string{EnvEndpoint, EnvToken, EnvMaxRetries, "TF_LOG", "TF_CLI_ARGS", "TF_CLI_ARGS_plan", "TF_CLI_ARGS_apply"} {
		env = append(env, k+"=")
	}
	return &terraformDir{t: t, dir: work, env: env}
}

// write replaces the configuration.
func (d *terraformDir) write(hcl string) {
	d.t.Helper()
	if err := os.WriteFile(filepath.Join(d.dir, "main.tf"), []byte(hcl), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// run runs terraform and returns everything it printed; a failure of
// terraform fails the test.
func (d *terraformDir) run(args ...string) string {
	d.t.Helper()
	out, err := d.tryRun(args...)
	if err != nil {
		d.t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// tryRun runs terraform and returns what it printed and whether it failed.
func (d *terraformDir) tryRun(args ...string) (string, error) {
	cmd := exec.Command(os.Getenv("TF_ACC_TERRAFORM_PATH"), append(args, "-no-color", "-input=false")...)
	cmd.Dir, cmd.Env = d.dir, d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// settableClock is the server's clock in tests that need points on given
// days.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// previewPolicyConfig is a fileset under a policy named "preview" whose
// description and retention and tiering blocks vary.
func previewPolicyConfig(storeDir, srcDir, description, retentionAndTiering string) string {
	return fmt.Sprintf(`
terraform {
  required_providers {
    haven = {
      source = "havenbackup/haven"
    }
  }
}

variable "endpoint" {
  type = string
}

variable "token" {
  type      = string
  sensitive = true
}

provider "haven" {
  endpoint    = var.endpoint
  token       = var.token
  max_retries = 0
}

resource "haven_storage" "test" {
  name = "store"
  kind = "filesystem"
  path = %q
}

resource "haven_backup_policy" "test" {
  name        = "preview"
  description = %q
  timezone    = "UTC"

  full {
    days_of_week = ["sun"]
    at           = "01:00"
  }
%s
}

resource "haven_file_server" "local" {
  name     = "this-host"
  hostname = "localhost"
  os       = "linux"
  location = "server"
}

resource "haven_fileset" "test" {
  name           = "docs"
  file_server_id = haven_file_server.local.id
  include_paths  = [%q]
  policy_id      = haven_backup_policy.test.id
  storage_id     = haven_storage.test.id
}
`, storeDir, description, retentionAndTiering, srcDir)
}

// TestBackupPolicyRetentionPreview makes three points on one Wednesday
// under "keep 30 days of dailies", then plans a change to "keep the latest
// point of each week for a week": the plan must warn that two of the
// points would expire, without expiring anything, and apply must expire
// them.
func TestBackupPolicyRetentionPreview(t *testing.T) {
	t.Parallel()
	clock := &settableClock{now: time.Date(2026, 5, 6, 9, 0, 0, 0, time.UTC)}
	srv := servertest.StartWith(t, func(c *server.Config) {
		c.Now = clock.Now
		// No periodic sweep during the test: retention runs only after
		// backups and policy changes, which the test makes.
		c.RetentionEvery = time.Hour
	})
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeSourceTree(t, src)
	store := filepath.Join(dir, "store")
	tf := newTerraformDir(t)
	vars := []string{"-var", "endpoint=" + srv.URL, "-var", "token=" + srv.AdminToken}

	const keep30Days = `
  retention {
    daily_days = 30
  }
`
	const keepWeekly = `
  retention {
    weekly_weeks = 1
  }
`
	tf.write(previewPolicyConfig(store, src, "before", keep30Days))
	tf.run(append([]string{"apply", "-auto-approve"}, vars...)...)

	var points []string
	for i, hour := range []int{10, 11, 12} {
		clock.Set(time.Date(2026, 5, 6, hour, 0, 0, 0, time.UTC))
		if err := os.WriteFile(filepath.Join(src, "readme.txt"), fmt.Appendf(nil, "version %d\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := backUpNow(srv, "docs")
		if err != nil {
			t.Fatal(err)
		}
		points = append(points, p.ID)
	}
	set, err := srv.Client.Filesets().Get(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	livePoints := func() []string {
		t.Helper()
		l, err := srv.Client.ListPoints(ctx, set.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range l.Items {
			ids = append(ids, p.ID)
		}
		return ids
	}
	newestFirst := []string{points[2], points[1], points[0]}
	if got := livePoints(); !slices.Equal(got, newestFirst) {
		t.Fatalf("after three backups the live points are %v, want %v", got, newestFirst)
	}
	previews := func() int { return strings.Count(srv.Logs(), `"route":"/v1/backup-policies/{id}/preview"`) }

	// A change that leaves retention alone asks for no preview.
	tf.write(previewPolicyConfig(store, src, "after", keep30Days))
	out := tf.run(append([]string{"plan"}, vars...)...)
	if !errorLike(`~ description = "before" -> "after"`).MatchString(out) || strings.Contains(out, "Retention") {
		t.Errorf("plan of a description change:\n%s", out)
	}
	if n := previews(); n != 0 {
		t.Errorf("a plan that keeps retention asked for %d previews", n)
	}

	tf.write(previewPolicyConfig(store, src, "after", keepWeekly))
	out = tf.run(append([]string{"plan"}, vars...)...)
	want := errorLike("Warning: Retention change expires recovery points", "with haven_backup_policy.test",
		`Backup policy "preview": this change expires 2 recovery points on 1 assets (oldest 2026-05-06); 0 move to cold.`,
		"Nothing changes before apply.", "expired points cannot be restored")
	if !want.MatchString(out) || !errorLike("Plan: 0 to add, 1 to change, 0 to destroy.").MatchString(out) {
		t.Errorf("plan of the stricter retention does not warn as expected (%s):\n%s", want, out)
	}
	if n := previews(); n != 1 {
		t.Errorf("the plan asked for %d previews, want 1", n)
	}
	if got := livePoints(); !slices.Equal(got, newestFirst) {
		t.Fatalf("planning expired points: live points are %v, want %v", got, newestFirst)
	}

	// Without a server to ask, the plan still succeeds, and says it could
	// not preview. -refresh=false: the preview is the only request.
	out = tf.run("plan", "-refresh=false", "-var", "endpoint=http://127.0.0.1:1", "-var", "token=unused")
	if !errorLike("Warning: Retention preview unavailable", `Could not preview what the new retention of backup policy "preview" expires`,
		"could not reach the Haven server:", "connection refused", "Applying the change expires at once").MatchString(out) ||
		!errorLike("Plan: 0 to add, 1 to change, 0 to destroy.").MatchString(out) {
		t.Errorf("plan without a server does not warn that the preview was unavailable:\n%s", out)
	}

	// A retention that is only known after apply cannot be previewed.
	tf.write(previewPolicyConfig(store, src, "after", `
  retention {
    daily_days = terraform_data.days.output
  }
`) + `
resource "terraform_data" "days" {
  input = 3
}
`)
	out = tf.run(append([]string{"plan"}, vars...)...)
	if !errorLike("Warning: Retention preview unavailable", `Could not preview what the new retention of backup policy "preview" expires`,
		"the policy depends on values that are only known after apply").MatchString(out) {
		t.Errorf("plan of a retention known after apply does not say it could not be previewed:\n%s", out)
	}
	if n := previews(); n != 1 {
		t.Errorf("%d previews were asked for, want still 1", n)
	}

	// Applying the change expires the two older points.
	tf.write(previewPolicyConfig(store, src, "after", keepWeekly))
	tf.run(append([]string{"apply", "-auto-approve"}, vars...)...)
	var live []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if live = livePoints(); len(live) == 1 {
			break
		}
	}
	if !slices.Equal(live, points[2:]) {
		t.Fatalf("after apply the live points are %v, want only the newest, %s", live, points[2])
	}

	// Eight days later, the current policy still keeps the point (through
	// Sunday 17 May), so a retention run the apply queued cannot expire it
	// meanwhile. Keeping weeklies longer and moving points to cold after a
	// week expires nothing but moves the kept point.
	clock.Set(time.Date(2026, 5, 14, 12, 0, 0, 0, time.UTC))
	tf.write(previewPolicyConfig(store, src, "after", `
  retention {
    weekly_weeks = 8
  }
  tiering {
    warm_days       = 7
    cold_after_days = 7
  }
`))
	out = tf.run(append([]string{"plan"}, vars...)...)
	if !errorLike("Warning: Retention change moves recovery points to cold storage",
		`Backup policy "preview": this change expires 0 recovery points on 0 assets; 1 move to cold.`).MatchString(out) {
		t.Errorf("plan of tiering does not warn about the move to cold:\n%s", out)
	}
}
