package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestImportRecoversTheServer is the disaster recovery of Haven itself: a
// server backs a fileset up twice and is lost with its database; a fresh
// server on a brand-new database, holding only the master key file,
// imports the storage (a job) and gets back both points (with their kinds, sizes,
// asset and legal hold), restores each byte-identical, verifies the storage, and
// deduplicates a new backup against what it imported. Importing again
// adds nothing; a wrong master key, a location without a repository and
// a location the catalog already has are refused.
func TestImportRecoversTheServer(t *testing.T) {
	ctx := context.Background()
	masterKey := filepath.Join(t.TempDir(), "master.key")
	withKey := func(c *server.Config) { c.MasterKeyFile = masterKey }
	lost := servertest.StartWith(t, withKey)

	src := t.TempDir()
	writeSampleTree(t, src)
	set := protectedFileset(t, lost, src)
	stg, err := lost.Client.Storages().Get(ctx, set.StorageID)
	if err != nil {
		t.Fatal(err)
	}
	var states []map[string]string
	for i := range 2 {
		if i == 1 {
			os.WriteFile(filepath.Join(src, "d1", "f01.txt"), []byte("changed"), 0o640)
			os.WriteFile(filepath.Join(src, "new.txt"), []byte("new file"), 0o644)
		}
		states = append(states, backUpAndRecord(t, lost, set.ID, src))
	}
	before, err := lost.Client.ListPoints(ctx, set.ID, "", 0)
	if err != nil || len(before.Items) != 2 {
		t.Fatalf("points before the loss: %+v %v", before, err)
	}
	// A legal hold set after the commit survives the loss too.
	if _, err := lost.Client.SetLegalHold(ctx, before.Items[1].ID, true); err != nil {
		t.Fatal(err)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := lost.Server.Shutdown(stopCtx); err != nil {
		t.Fatal(err)
	}

	fresh := servertest.StartWith(t, withKey)
	if fresh.DatabaseURL == lost.DatabaseURL {
		t.Fatal("the fresh server shares the lost server's database")
	}
	if page, err := fresh.Client.ListPoints(ctx, "", "", 0); err != nil || len(page.Items) != 0 {
		t.Fatalf("the fresh server lists points before any import: %+v %v", page, err)
	}
	req := api.StorageImportRequest{StorageSpec: api.StorageSpec{Name: "recovered", Kind: api.StorageFilesystem, Path: stg.Path}}
	imp := importStorage(t, fresh, req, stg.ID)
	if imp.Result[api.ImportResultPoints] != "2" || imp.Result[api.ImportResultKnownPoints] != "0" || imp.Result[api.ImportResultAssets] != "1" ||
		imp.Result[api.ImportResultPacks] == "0" || imp.Result[api.ImportResultChunks] == "0" || imp.Result[api.ImportResultSkipped] != "0" ||
		imp.Progress.FilesDone == 0 || imp.Progress.FilesDone != imp.Progress.FilesTotal || imp.Progress.PointsDone != 2 || imp.Progress.PointsTotal != 2 {
		t.Fatalf("import: %+v, want storage %s with 2 points of 1 asset and nothing skipped", imp, stg.ID)
	}
	if got, err := fresh.Client.Storages().Get(ctx, stg.ID); err != nil || got.Name != "recovered" || got.Path != stg.Path {
		t.Fatalf("the imported storage: %+v %v", got, err)
	}

	after, err := fresh.Client.ListPoints(ctx, set.ID, "", 0)
	if err != nil || len(after.Items) != 2 {
		t.Fatalf("points after the import: %+v %v", after, err)
	}
	for i, p := range after.Items {
		b := before.Items[i]
		if p.ID != b.ID || p.Kind != b.Kind || p.ParentID != b.ParentID || p.StorageID != stg.ID || p.LogicalBytes != b.LogicalBytes ||
			p.NewBytes != b.NewBytes || p.Files != b.Files || !p.StartedAt.Equal(b.StartedAt) || !p.CompletedAt.Equal(b.CompletedAt) ||
			p.AssetName != "docs" || !p.AssetDeleted || p.LegalHold != (i == 1) {
			t.Errorf("point %d after the import:\n  %+v\nwas\n  %+v", i, p, b)
		}
	}
	if after.Items[0].Kind != api.BackupIncremental || after.Items[1].Kind != api.BackupFull {
		t.Errorf("imported kinds %s, %s; want incremental then full", after.Items[0].Kind, after.Items[1].Kind)
	}

	again := importStorage(t, fresh, req, stg.ID)
	if again.ID == imp.ID || again.Result[api.ImportResultPoints] != "0" || again.Result[api.ImportResultKnownPoints] != "2" ||
		again.Result[api.ImportResultAssets] != "0" || again.Result[api.ImportResultPacks] != "0" || again.Result[api.ImportResultChunks] != "0" ||
		again.Result[api.ImportResultKnownPacks] != imp.Result[api.ImportResultPacks] || again.Result[api.ImportResultSkipped] != "0" {
		t.Errorf("a second import changed something: %+v", again)
	}

	// The points' file server went with the database: restore to a new one.
	here, err := fresh.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "rebuilt", Hostname: "localhost", OS: "linux", Location: "server"}})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []api.Point{after.Items[1], after.Items[0]} {
		dst := t.TempDir()
		r, err := fresh.Client.Restore(ctx, api.RestoreRequest{PointID: p.ID, TargetPath: dst, TargetFileServerID: here.ID})
		if err != nil {
			t.Fatalf("restoring point %s: %v", p.ID, err)
		}
		if r = waitJob(t, fresh, r.ID); r.State != api.JobSucceeded {
			t.Fatalf("restore of point %s: %+v", p.ID, r)
		}
		got := treeState(t, filepath.Join(dst, src))
		want := states[i]
		delete(got, ".")
		delete(want, ".")
		sameTree(t, want, got)
	}

	var verify api.Job
	if err := fresh.Client.Do(ctx, http.MethodPost, "/v1/storages/"+stg.ID+"/verify", nil, nil, &verify); err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, fresh, verify.ID); j.State != api.JobSucceeded {
		t.Fatalf("verify of the imported storage: %+v", j)
	}

	// A new fileset on the imported storage, over the same files and one
	// more, stores little: the imported chunks deduplicate it.
	copyDir := t.TempDir()
	copyTree(t, src, copyDir)
	os.WriteFile(filepath.Join(copyDir, "another.txt"), []byte("one more file"), 0o644)
	var pol api.Policy
	if err := fresh.Client.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, json.RawMessage(validPolicyJSON("daily")), &pol); err != nil {
		t.Fatal(err)
	}
	set2, err := fresh.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "docs-again", FileServerID: here.ID,
		IncludePaths: []string{copyDir}, PolicyID: pol.ID, StorageID: stg.ID}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := fresh.Client.BackupNow(ctx, set2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, fresh, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("backup on the imported storage: %+v", j)
	}
	p, err := fresh.Client.GetPoint(ctx, j.PointID)
	if err != nil {
		t.Fatal(err)
	}
	full, latest := before.Items[1], before.Items[0]
	if p.LogicalBytes <= latest.LogicalBytes || p.NewBytes*20 >= full.NewBytes {
		t.Errorf("a backup of the same files on the imported storage stored %d new bytes of %d, the first full %d", p.NewBytes, p.LogicalBytes, full.NewBytes)
	}

	// Refusals: a location the catalog has, one without a repository, and
	// keys wrapped by another master key.
	other := t.TempDir()
	if _, err := fresh.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "other", Kind: api.StorageFilesystem, Path: other}}); err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Client.ImportStorage(ctx, api.StorageImportRequest{StorageSpec: api.StorageSpec{Name: "again", Kind: api.StorageFilesystem, Path: other}})
	wantAPIError(t, "importing a location the catalog has", err, http.StatusConflict, "path", "other")
	_, err = fresh.Client.ImportStorage(ctx, api.StorageImportRequest{StorageSpec: api.StorageSpec{Name: "empty", Kind: api.StorageFilesystem, Path: t.TempDir()}})
	wantAPIError(t, "importing an empty location", err, http.StatusUnprocessableEntity, "path", "no Haven repository")
	foreign := t.TempDir()
	fst, err := fsstore.New(foreign)
	if err != nil {
		t.Fatal(err)
	}
	sealed := []byte("keys sealed by a master key this server does not have")
	if err := fst.Put(ctx, "keys/0123456789abcdef", bytes.NewReader(sealed), int64(len(sealed)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = fresh.Client.ImportStorage(ctx, api.StorageImportRequest{StorageSpec: api.StorageSpec{Name: "foreign", Kind: api.StorageFilesystem, Path: foreign}})
	wantAPIError(t, "importing with the wrong master key", err, http.StatusUnprocessableEntity, "path", "0123456789abcdef")
	if list, err := fresh.Client.Storages().ListAll(ctx); err != nil || len(list) != 2 {
		t.Errorf("storages after the refusals: %+v %v, want recovered and other", list, err)
	}
}

// importStorage imports a storage and waits for its import job, which
// must be on storageID and succeed.
func importStorage(t *testing.T, srv *servertest.Server, req api.StorageImportRequest, storageID string) *api.Job {
	t.Helper()
	j, err := srv.Client.ImportStorage(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if j.Kind != api.JobImport || j.StorageID != storageID {
		t.Fatalf("the import answered %+v, want an import job on storage %s", j, storageID)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("import job: %+v", j)
	}
	return j
}

// copyTree copies the regular files and directories of src into dst,
// keeping modes and times.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, fi.Mode().Perm())
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, b, fi.Mode().Perm()); err != nil {
				return err
			}
			return os.Chtimes(target, fi.ModTime(), fi.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
