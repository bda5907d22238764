package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestNASCommands manages a NAS device and its shares through `haven
// nas-devices` and `haven nas-shares`: created from YAML files naming
// other objects by name, the SMB password read from the file only and
// never shown, kept by an update that leaves it out; refusals name the
// field; a device in use is not deleted; a share is found by name where
// assets are.
func TestNASCommands(t *testing.T) {
	srv := servertest.Start(t)
	t.Setenv("HAVEN_ENDPOINT", srv.URL)
	t.Setenv("HAVEN_TOKEN", srv.AdminToken)
	ctx := context.Background()
	if _, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "store", Kind: api.StorageFilesystem, Path: t.TempDir()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}}); err != nil {
		t.Fatal(err)
	}
	proxy, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "proxy",
		Hostname: "proxy", OS: api.OSLinux, Location: api.LocationAgent}})
	if err != nil {
		t.Fatal(err)
	}
	file := func(yaml string) string {
		p := filepath.Join(t.TempDir(), "spec.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret = "cli-nas-Pa55-7d1e"
	device := "name: filer\nhost: filer.example.com\nprotocols: [smb, nfs]\nsmb_user: backup\nproxy_file_server_ids: [proxy]\n"

	code, out, _ := haven(t, "nas-devices", "create", "-f", file(device+"smb_password: "+secret+"\n"), "-o", "json")
	var created api.NASDevice
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || !created.HasSMBPassword || len(created.ProxyFileServerIDs) != 1 ||
		created.ProxyFileServerIDs[0] != proxy.ID || strings.Contains(out, secret) {
		t.Fatalf("nas-devices create: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "nas-devices", "list")
	if code != 0 || !regexp.MustCompile(`filer\s+filer\.example\.com\s+nfs,smb\s+1\s+password`).MatchString(out) {
		t.Fatalf("nas-devices list: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "nas-device", "show", "filer", "-o", "yaml")
	if code != 0 || !strings.Contains(out, "has_smb_password: true") || strings.Contains(out, secret) {
		t.Fatalf("nas-device show: exit %d, printed %q", code, out)
	}
	// The update's file has no password: the server keeps it.
	code, out, _ = haven(t, "nas-devices", "update", "filer", "-f", file(device+"group: team-a\n"), "-o", "json")
	var updated api.NASDevice
	if code != 0 || json.Unmarshal([]byte(out), &updated) != nil || updated.Group != "team-a" || !updated.HasSMBPassword ||
		updated.Version != created.Version+1 {
		t.Fatalf("nas-devices update keeping the password: exit %d, printed %q", code, out)
	}
	code, _, errOut := haven(t, "nas-devices", "create", "-f", file(strings.Replace(device, "filer\n", "other\n", 1)))
	if code != 1 || !strings.Contains(errOut, "smb_password") || !strings.Contains(errOut, "is required") {
		t.Fatalf("a device without its SMB secret: exit %d, stderr %q", code, errOut)
	}

	share := "name: projects\nnas_device_id: filer\nprotocol: smb\nshare: projects\npath: \"2024\"\nexclude: [\"*.tmp\"]\npolicy_id: daily\nstorage_id: store\n"
	code, out, _ = haven(t, "nas-shares", "create", "-f", file(share), "-o", "json")
	var projects api.NASShare
	if code != 0 || json.Unmarshal([]byte(out), &projects) != nil || projects.NASDeviceID != created.ID || projects.Group != "team-a" {
		t.Fatalf("nas-shares create: exit %d, printed %q", code, out)
	}
	code, out, _ = haven(t, "nas-shares", "list")
	if code != 0 || !regexp.MustCompile(`projects\s+`+created.ID+`\s+smb\s+projects\s+2024\s+team-a`).MatchString(out) {
		t.Fatalf("nas-shares list: exit %d, printed %q", code, out)
	}
	code, _, errOut = haven(t, "nas-shares", "create", "-f", file(strings.Replace(share, "path: \"2024\"", "path: /2024", 1)))
	if code != 1 || !strings.Contains(errOut, "path") || !strings.Contains(errOut, "relative to its root") {
		t.Fatalf("a share with an absolute path: exit %d, stderr %q", code, errOut)
	}
	// Jobs and points of a NAS share are listed by its name.
	if code, out, _ := haven(t, "jobs", "list", "--asset", "projects", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("jobs list --asset projects: exit %d, printed %q", code, out)
	}
	if code, out, _ := haven(t, "__complete", "backup", "now", ""); code != 0 || !strings.Contains(out, "projects\tNAS share") {
		t.Errorf("completing backup now: exit %d, printed %q", code, out)
	}

	code, _, errOut = haven(t, "nas-devices", "delete", "filer")
	if code != 1 || !strings.Contains(errOut, `used by NAS share "projects"`) {
		t.Fatalf("deleting a device in use: exit %d, stderr %q", code, errOut)
	}
	// A NAS restore's field refused by the server names the flag.
	code, _, errOut = haven(t, "restore", "00000000-0000-4000-8000-000000000000", "--nas-path", "/restored")
	if code != 1 || !strings.Contains(errOut, "nas.path") || !strings.Contains(errOut, "--nas-path") {
		t.Fatalf("restore --nas-path /restored: exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := haven(t, "nas-shares", "delete", "projects"); code != 0 || !strings.Contains(out, "NAS share projects ("+projects.ID+") deleted") {
		t.Fatalf("nas-shares delete: exit %d, printed %q", code, out)
	}
	if code, out, _ := haven(t, "nas-devices", "delete", "filer"); code != 0 || !strings.Contains(out, "NAS device filer ("+created.ID+") deleted") {
		t.Fatalf("nas-devices delete: exit %d, printed %q", code, out)
	}
}

// TestNASRestoreFlags: the NAS flags make a NAS restore whose conflict is
// --conflict's, keeping the file selection; they do not mix with the
// target directory, VM or database flags.
func TestNASRestoreFlags(t *testing.T) {
	req, err := restoreRequest("p1", restoreOptions{nasShare: "archive", nasPath: "restored/today", conflict: "rename",
		paths: []string{"/reports"}, exclude: []string{"*.tmp"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := req.NAS; n == nil || n.ShareID != "archive" || n.Path != "restored/today" || n.Conflict != "rename" || req.Conflict != "" ||
		len(req.Paths) != 1 || len(req.Exclude) != 1 || req.Database != nil || req.VM != nil {
		t.Fatalf("NAS restore request: %+v (nas %+v)", req, req.NAS)
	}
	if req, err := restoreRequest("p1", restoreOptions{nas: true}); err != nil || req.NAS == nil || *req.NAS != (api.NASRestore{}) {
		t.Fatalf("--nas alone: %+v %v", req, err)
	}
	if req, err := restoreRequest("p1", restoreOptions{conflict: "skip"}); err != nil || req.NAS != nil || req.Conflict != "skip" {
		t.Fatalf("a file restore: %+v %v", req, err)
	}
	for _, o := range []restoreOptions{
		{nas: true, target: "/srv"}, {nasPath: "x", pitr: "2026-12-05T10:30:00Z"}, {nasShare: "x", vmName: "copy"}, {nas: true, dbServer: "pg"},
	} {
		if _, err := restoreRequest("p1", o); err == nil || !strings.Contains(err.Error(), "do not apply to a NAS restore") {
			t.Errorf("%+v: %v, want a refusal", o, err)
		}
	}
}
