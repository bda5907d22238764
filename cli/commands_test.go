package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestCommandLine: each command's --help exits 0 and lists that command's
// flags only; unknown flags, bad flag values and a bad -o exit 2 naming the
// flag; under -o json errors are JSON; completion scripts generate for
// bash, zsh and fish.
func TestCommandLine(t *testing.T) {
	t.Setenv("HAVEN_ENDPOINT", "http://127.0.0.1:1")
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"backup", "now", "--help"}, []string{"--full", "--wait", "--timeout", "Exit codes:"}, []string{"--vm-name", "--ttl", "--conflict"}},
		{[]string{"restore", "--help"}, []string{"--vm-name", "--conflict", "--attach-to", "--wait"}, []string{"--full", "--ttl", "--since"}},
		{[]string{"tokens", "create", "-h"}, []string{"--ttl", "--expires"}, []string{"--wait", "--vm-name"}},
		{[]string{"jobs", "list", "--help"}, []string{"--asset", "--state", "--kind"}, []string{"--wait", "--target"}},
		{[]string{"--help"}, []string{"Exit codes:", "storages", "protected-vms", "vm-rules", "completion", "HAVEN_ENDPOINT"}, nil},
	} {
		code, out, _ := haven(t, tc.args...)
		if code != 0 {
			t.Errorf("haven %s: exit %d, want 0", strings.Join(tc.args, " "), code)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("haven %s does not show %s", strings.Join(tc.args, " "), w)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("haven %s shows %s, a flag of another command", strings.Join(tc.args, " "), n)
			}
		}
	}

	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"backup", "now", "docs", "--vm-name", "x"}, "--vm-name"},
		{[]string{"storages", "list", "--wait"}, "--wait"},
		{[]string{"restore", "p", "--disk", "two"}, "--disk"},
		{[]string{"jobs", "list", "--state", "done"}, "--state"},
		{[]string{"restore", "p", "--conflict", "merge"}, "--conflict"},
		{[]string{"-o", "xml", "storages", "list"}, "--output"},
		{[]string{"storages", "list", "-o", "csv"}, "--output"},
		{[]string{"storages", "frobnicate"}, "frobnicate"},
		{[]string{"jobs", "show"}, "jobs show"},
	} {
		code, _, errOut := haven(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.flag) {
			t.Errorf("haven %s: exit %d, want 2 with an error naming %s", strings.Join(tc.args, " "), code, tc.flag)
		}
	}

	// Under -o json a usage error is JSON too, on stderr.
	code, out, errOut := haven(t, "-o", "json", "jobs", "list", "--bogus")
	var body struct {
		Error    api.Error `json:"error"`
		ExitCode int       `json:"exit_code"`
	}
	if code != 2 || out != "" || json.Unmarshal([]byte(errOut), &body) != nil || body.Error.Code != "usage" ||
		!strings.Contains(body.Error.Message, "--bogus") || body.ExitCode != 2 {
		t.Errorf("haven -o json jobs list --bogus: exit %d, stderr %q, want a JSON usage error naming --bogus", code, errOut)
	}

	for shell, want := range map[string]string{"bash": "__start_haven", "zsh": "#compdef haven", "fish": "complete -c haven"} {
		code, out, _ := haven(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("haven completion %s: exit %d, want a script with %q", shell, code, want)
		}
	}
}

// fixture is a server with a storage, a policy and a fileset on the
// server host, each with a name, and the fileset's source directory.
type fixture struct {
	srv                  *servertest.Server
	storage, policy, set string
	src                  string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := servertest.Start(t)
	ctx := context.Background()
	t.Setenv("HAVEN_ENDPOINT", srv.URL)
	t.Setenv("HAVEN_TOKEN", srv.AdminToken)
	f := &fixture{srv: srv, storage: "vault", policy: "nightly", set: "docs", src: t.TempDir()}
	if _, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: f.storage, Kind: api.StorageFilesystem, Path: t.TempDir()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: f.policy, Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "here", Hostname: "localhost", OS: "linux", Location: api.LocationServer}}); err != nil {
		t.Fatal(err)
	}
	// The fileset is made through the CLI, naming the objects it refers
	// to: names are accepted wherever ids are.
	spec := filepath.Join(t.TempDir(), "docs.yaml")
	yaml := fmt.Sprintf("name: %s\nfile_server_id: here\ninclude_paths: [%q]\npolicy_id: %s\nstorage_id: %s\n", f.set, f.src, f.policy, f.storage)
	if err := os.WriteFile(spec, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := haven(t, "filesets", "create", "-f", spec); code != 0 {
		t.Fatalf("filesets create -f with names for ids: exit %d", code)
	}
	return f
}

// writeData writes files of incompressible bytes, so a backup of them
// takes long enough to be watched.
func writeData(t *testing.T, dir string, files, size int) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, size)
	for i := range files {
		_, _ = rng.Read(buf)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.bin", i)), buf, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompletionAndNames: shell completion offers the names of storages,
// policies, assets and the ids of points from the server, and commands
// take names where they take ids.
func TestCompletionAndNames(t *testing.T) {
	f := newFixture(t)
	writeData(t, f.src, 3, 1000)
	code, out, _ := haven(t, "backup", "now", f.set, "--wait", "-o", "json")
	var job api.Job
	if code != 0 || json.Unmarshal([]byte(out), &job) != nil || job.PointID == "" {
		t.Fatalf("backup now %s --wait: exit %d", f.set, code)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"storages", "show", ""}, f.storage},
		{[]string{"storages", "verify", ""}, f.storage},
		{[]string{"policies", "preview", ""}, f.policy},
		{[]string{"backup", "now", ""}, f.set},
		{[]string{"points", "list", ""}, f.set},
		{[]string{"jobs", "list", "--asset", ""}, f.set},
		{[]string{"restore", ""}, job.PointID},
		{[]string{"points", "legal-hold", "set", ""}, job.PointID},
		{[]string{"jobs", "show", ""}, job.ID},
		{[]string{"jobs", "list", "--state", ""}, api.JobSucceeded},
	} {
		code, out, _ := haven(t, append([]string{"__complete"}, tc.args...)...)
		if code != 0 || !strings.Contains(out, tc.want+"\t") && !strings.Contains(out, tc.want+"\n") {
			t.Errorf("completing haven %s: exit %d, want %s offered", strings.Join(tc.args, " "), code, tc.want)
		}
	}

	code, out, _ = haven(t, "jobs", "list", "--asset", f.set, "-o", "json")
	var jobs []api.Job
	if code != 0 || json.Unmarshal([]byte(out), &jobs) != nil || len(jobs) != 1 || jobs[0].ID != job.ID {
		t.Errorf("jobs list --asset %s: exit %d, want job %s only", f.set, code, job.ID)
	}
	code, out, _ = haven(t, "points", "list", f.set, "-o", "yaml")
	if code != 0 || !strings.Contains(out, "id: "+job.PointID) || !strings.Contains(out, "asset_name: "+f.set) {
		t.Errorf("points list %s -o yaml: exit %d, want point %s as YAML", f.set, code, job.PointID)
	}
	if code, out, _ := haven(t, "policies", "preview", f.policy); code != 0 || !strings.Contains(out, "expires 0 recovery points") {
		t.Errorf("policies preview %s: exit %d", f.policy, code)
	}
	if code, out, _ := haven(t, "points", "legal-hold", "set", job.PointID); code != 0 || !strings.Contains(out, "legal hold set") {
		t.Errorf("points legal-hold set: exit %d", code)
	}
	if p, err := f.srv.Client.GetPoint(context.Background(), job.PointID); err != nil || !p.LegalHold {
		t.Errorf("after legal-hold set the point has no legal hold: %+v %v", p, err)
	}

	// A refusal under -o json is the server's error, as JSON.
	code, _, errOut := haven(t, "-o", "json", "storages", "show", "nowhere")
	var body struct {
		Error    api.Error `json:"error"`
		ExitCode int       `json:"exit_code"`
	}
	if code != 1 || json.Unmarshal([]byte(errOut), &body) != nil || body.Error.Code != api.CodeNotFound || body.ExitCode != 1 {
		t.Errorf("storages show nowhere -o json: exit %d, stderr %q, want a JSON not_found", code, errOut)
	}
}

// TestWaitShowsProgress: --wait with stdout not a terminal prints progress
// lines while a real backup runs and ends with the job's outcome; a
// --full backup makes a full point; a failed job exits 1.
func TestWaitShowsProgress(t *testing.T) {
	f := newFixture(t)
	writeData(t, f.src, 48, 4<<20)

	code, out, _ := haven(t, "backup", "now", f.set, "--wait", "--progress-every", "0s")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	outcome := regexp.MustCompile(`^job (\S+) succeeded point (\S+) \(48 files, 192\.0 MiB\)$`)
	m := outcome.FindStringSubmatch(lines[len(lines)-1])
	if code != 0 || m == nil {
		t.Fatalf("backup now --wait: exit %d, last line %q, want the job's outcome", code, lines[len(lines)-1])
	}
	// A running job's line says what it does and what it has done so far:
	// "starting" until its first progress record. A backup on the server
	// host scans its selection beside the capture, so its lines show the
	// files and bytes done of their totals (growing ones end in "+") and
	// the percentage, and the time left once the totals are final.
	running := regexp.MustCompile(`^\d\d:\d\d:\d\d job ` + m[1] + ` (starting: 0 files, 0 B|backing up(, scanning)?: \d+ (of \d+\+? )?files, [0-9.]+ [KMG]?i?B( of [0-9.]+ [KMG]i?B\+?( \(\d+%\))?)?(, [0-9.]+ [KMG]?i?B/s)?(, ETA \S+)?)$`)
	withTotals := regexp.MustCompile(` of 48 files, [0-9.]+ [KMG]?i?B of 192\.0 MiB \(\d+%\)`)
	progress, totals := 0, 0
	for _, l := range lines[:len(lines)-1] {
		if running.MatchString(l) {
			progress++
		}
		if withTotals.MatchString(l) {
			totals++
		}
	}
	if progress == 0 || totals == 0 {
		t.Fatalf("backup now --wait printed no progress line for the running job, or none with its final totals and percentage, before its outcome:\n%s", out)
	}

	code, out, _ = haven(t, "backup", "now", f.set, "--full", "--wait", "-o", "json")
	var job api.Job
	if code != 0 || json.Unmarshal([]byte(out), &job) != nil {
		t.Fatalf("backup now --full --wait -o json: exit %d, want the job as JSON alone on stdout", code)
	}
	if p, err := f.srv.Client.GetPoint(context.Background(), job.PointID); err != nil || p.Kind != api.BackupFull {
		t.Fatalf("backup now --full made %+v (%v), want a full point", p, err)
	}

	// A fileset whose directory turned into a link to the server's data
	// dir fails at once, without retries.
	later := filepath.Join(t.TempDir(), "later")
	if err := os.Mkdir(later, 0o750); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(t.TempDir(), "later.json")
	os.WriteFile(spec, []byte(fmt.Sprintf(`{"name":"later","file_server_id":"here","include_paths":[%q],"policy_id":%q,"storage_id":%q}`,
		later, f.policy, f.storage)), 0o600)
	if code, _, _ := haven(t, "filesets", "create", "-f", spec); code != 0 {
		t.Fatalf("filesets create: exit %d", code)
	}
	os.Remove(later)
	if err := os.Symlink(f.srv.DataDir, later); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := haven(t, "backup", "now", "later", "--wait")
	if code != 1 || !strings.Contains(out, " failed ") || !strings.Contains(errOut, "never reads or writes") {
		t.Fatalf("backup now of a failing fileset --wait: exit %d, want 1 with the job's error", code)
	}
}
