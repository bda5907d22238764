package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestStoragesImport: `haven storages import --wait` gives a server that
// lost its database the points a storage holds, following the import job
// to its end; run again, it adds nothing; a location without a repository
// is refused with exit 1, a missing argument with exit 2.
func TestStoragesImport(t *testing.T) {
	ctx := context.Background()
	masterKey := filepath.Join(t.TempDir(), "master.key")
	withKey := func(c *server.Config) { c.MasterKeyFile = masterKey }
	lost := servertest.StartWith(t, withKey)
	c := lost.Client
	dir, src := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("kept in the store"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "s", Kind: api.StorageFilesystem, Path: dir}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "p", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	here, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "h", Hostname: "localhost", OS: "linux", Location: api.LocationServer}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "docs", FileServerID: here.ID,
		IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: st.ID}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if j, err = c.WaitJob(wctx, j.ID, 50*time.Millisecond); err != nil || j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v %v", j, err)
	}
	if err := lost.Server.Shutdown(wctx); err != nil {
		t.Fatal(err)
	}

	fresh := servertest.StartWith(t, withKey)
	t.Setenv("HAVEN_ENDPOINT", fresh.URL)
	t.Setenv("HAVEN_TOKEN", fresh.AdminToken)
	code, out, _ := haven(t, "storages", "import", "recovered", dir, "--wait")
	if code != 0 || !strings.Contains(out, "1 recovery points added") || !strings.Contains(out, "succeeded") {
		t.Fatalf("import: exit %d, %q", code, out)
	}
	if p, err := fresh.Client.GetPoint(ctx, j.PointID); err != nil || p.StorageID != st.ID || p.AssetName != "docs" {
		t.Errorf("the imported point: %+v %v", p, err)
	}
	code, out, _ = haven(t, "storages", "import", "recovered", dir, "--wait", "-o", "json")
	var again api.Job
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || again.Kind != api.JobImport || again.State != api.JobSucceeded ||
		again.Result[api.ImportResultPoints] != "0" || again.Result[api.ImportResultKnownPoints] != "1" || again.StorageID != st.ID {
		t.Errorf("second import: exit %d, %q", code, out)
	}
	// Without --wait the command answers with the queued job.
	code, out, _ = haven(t, "storages", "import", "recovered", dir)
	if code != 0 || !strings.HasPrefix(out, "job ") {
		t.Errorf("import without --wait: exit %d, %q", code, out)
	}
	other := t.TempDir()
	if code, _, _ := haven(t, "storages", "import", "other", other); code != 1 {
		t.Errorf("importing an empty location: exit %d, want 1", code)
	}
	if code, _, _ := haven(t, "storages", "import", "recovered"); code != 2 {
		t.Errorf("import without a location: exit %d, want 2", code)
	}
}

// TestImportSpec reads an S3 location with its settings, and refuses
// settings it does not know.
func TestImportSpec(t *testing.T) {
	t.Setenv("HAVEN_STORAGE_ACCESS_KEY_ID", "AKID")
	t.Setenv("HAVEN_STORAGE_SECRET_ACCESS_KEY", "shh")
	spec, err := importSpec("b", "s3://bucket-1/some/prefix?endpoint=http://127.0.0.1:9000&region=eu-west-1&force_path_style=true")
	want := api.StorageSpec{Name: "b", Kind: api.StorageS3, Bucket: "bucket-1", Prefix: "some/prefix", Endpoint: "http://127.0.0.1:9000",
		Region: "eu-west-1", ForcePathStyle: true, AccessKeyID: "AKID", SecretAccessKey: "shh"}
	if err != nil || spec != want {
		t.Errorf("s3 location: %+v %v\nwant %+v", spec, err, want)
	}
	if spec, err := importSpec("f", "/srv/haven"); err != nil || spec.Kind != api.StorageFilesystem || spec.Path != "/srv/haven" || spec.AccessKeyID != "" {
		t.Errorf("filesystem location: %+v %v", spec, err)
	}
	if _, err := importSpec("b", "s3://bucket-1?storage_class=X"); err == nil || !strings.Contains(err.Error(), "storage_class") {
		t.Errorf("an unknown setting: %v", err)
	}
}
