package server_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestPointsOutliveTheirFileset deletes a fileset, then its policy and
// its file server: its points are still listed under its name, restore to
// another compatible file server (and only to one), and are retained under
// the deleted policy until they expire. The storage that holds them
// refuses to go until force_destroy, which expires the rest, deletes their
// data and says so.
func TestPointsOutliveTheirFileset(t *testing.T) {
	clock := &settableClock{now: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)}
	srv := servertest.StartWith(t, func(c *server.Config) {
		c.Now = clock.Now
		c.RetentionEvery = 300 * time.Millisecond
	})
	ctx := context.Background()
	set, src := sampleFileset(t, srv)
	pol, err := srv.Client.Policies().Get(ctx, set.PolicyID)
	if err != nil {
		t.Fatal(err)
	}
	pol.Retention = api.Retention{DailyDays: 2}
	if _, err := srv.Client.Policies().Update(ctx, pol.ID, pol.Version, api.PolicyRequest{PolicySpec: pol.PolicySpec}); err != nil {
		t.Fatal(err)
	}
	var points []string
	var states []map[string]string
	for d := range 2 {
		clock.Set(time.Date(2026, 5, 4+d, 12, 0, 0, 0, time.UTC))
		os.WriteFile(filepath.Join(src, "daily.bin"), randomBytes(100<<10, uint64(d)), 0o644)
		j, err := srv.Client.BackupNow(ctx, set.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
			t.Fatalf("backup %d: %+v", d, j)
		}
		points = append(points, j.PointID)
		states = append(states, treeState(t, src))
	}

	// Everything the points came from goes; nothing holds the storage but them.
	if err := srv.Client.Filesets().Delete(ctx, set.ID); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client.Policies().Delete(ctx, set.PolicyID); err != nil {
		t.Fatalf("the policy of a deleted fileset: %v", err)
	}
	if err := srv.Client.FileServers().Delete(ctx, set.FileServerID); err != nil {
		t.Fatalf("the file server of a deleted fileset: %v", err)
	}
	listed, err := srv.Client.ListPoints(ctx, set.ID, "", 0)
	if err != nil || len(listed.Items) != 2 {
		t.Fatalf("points of the deleted fileset: %+v %v", listed, err)
	}
	for _, p := range listed.Items {
		if p.AssetName != "docs" || !p.AssetDeleted {
			t.Fatalf("a deleted fileset's point should still name it: %+v", p)
		}
	}

	// Restore: the original file server is gone, so a target must be named,
	// and it must run the same OS.
	_, err = srv.Client.Restore(ctx, api.RestoreRequest{PointID: points[0], TargetPath: t.TempDir()})
	wantAPIError(t, "restore to the deleted file server", err, http.StatusUnprocessableEntity, "target_file_server_id", "was deleted", "linux")
	win, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "win", Hostname: "win", OS: "windows", Location: "agent"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.Client.Restore(ctx, api.RestoreRequest{PointID: points[0], TargetFileServerID: win.ID, TargetPath: "/restore"})
	wantAPIError(t, "restore to a windows file server", err, http.StatusUnprocessableEntity, "target_file_server_id", "linux")
	there, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "there", Hostname: "localhost", OS: "linux", Location: "server"}})
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: points[0], TargetFileServerID: there.ID, TargetPath: dst})
	if err != nil {
		t.Fatal(err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("restore of a deleted fileset's point: %+v", r)
	}
	got := treeState(t, filepath.Join(dst, src))
	want := states[0]
	delete(got, ".")
	delete(want, ".")
	sameTree(t, want, got)

	// The points hold their storage.
	stg, err := srv.Client.Storages().Get(ctx, set.StorageID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.Client.DeleteStorage(ctx, stg.ID)
	wantAPIError(t, "deleting a storage that holds points", err, http.StatusConflict, "force_destroy", "holds 2 recovery points")
	if t.Failed() {
		t.FailNow()
	}

	// Retention runs on, under the policy the points were made under (now
	// deleted): three days on, "keep 2 days" keeps only the second point.
	clock.Set(time.Date(2026, 5, 7, 12, 0, 0, 0, time.UTC))
	var live []api.Point
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		page, err := srv.Client.ListPoints(ctx, set.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if live = page.Items; len(live) == 1 {
			break
		}
	}
	if len(live) != 1 || live[0].ID != points[1] {
		t.Fatalf("retention of the deleted fileset's points left %+v, want only %s", live, points[1])
	}

	// force_destroy: the last point is expired and every object deleted.
	stg.ForceDestroy = true
	if _, err := srv.Client.Storages().Update(ctx, stg.ID, stg.Version, api.StorageRequest{StorageSpec: stg.StorageSpec}); err != nil {
		t.Fatal(err)
	}
	gone, err := srv.Client.DeleteStorage(ctx, stg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gone == nil || gone.ExpiredPoints != 1 || gone.DeletedObjects == 0 || !strings.Contains(gone.Message, "expired 1 recovery points") {
		t.Fatalf("forced destroy answered %+v", gone)
	}
	if !strings.Contains(srv.Logs(), "storage destroyed with its recovery points") {
		t.Error("the forced destroy is not in the log")
	}
	var left []string
	filepath.WalkDir(stg.Path, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Fatalf("the destroyed storage still holds %v", left)
	}
	if page, _ := srv.Client.ListPoints(ctx, set.ID, "", 0); len(page.Items) != 0 {
		t.Fatalf("points listed after the forced destroy: %+v", page.Items)
	}
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM repo_chunks WHERE repo_id = $1) + (SELECT count(*) FROM repo_packs WHERE repo_id = $1)
		+ (SELECT count(*) FROM repo_roots WHERE repo_id = $1)`, stg.ID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("%d index rows of the destroyed storage are left", rows)
	}
}

// TestDestroyWithRuleInAnyOrder deletes, in the order terraform destroy
// picks, a configuration with a hand protection and a selection rule whose
// VMs were backed up: deleting the rule retires the protections it made at
// once, so that only user-declared references hold the policy and the
// vCenter; the points of both VMs stay listed and restorable (into another
// registration of the vCenter) and hold their storage until force_destroy.
func TestDestroyWithRuleInAnyOrder(t *testing.T) {
	f := newVMFixture(t, nil, func(c *server.Config) { c.SelectionEvery = 300 * time.Millisecond })
	ctx := context.Background()
	f.sim.WriteDisk(t, "app-01", 0, 1<<20, []byte(strings.Repeat("rule-made", 4096)))
	want := f.sim.DiskBytes(t, "app-01", 0)
	byHand := f.protect("db-01", nil)
	rule, err := f.srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: api.VMProtectionRuleSpec{
		Name: "gold", VCenterID: f.vc.ID, Tags: []string{"backup:gold"}, PolicyID: f.policy.ID, StorageID: f.storage.ID}})
	if err != nil {
		t.Fatal(err)
	}
	f.sim.TagVM(t, "app-01", "backup:gold")
	made := f.waitProtected("app-01", func(pv *api.ProtectedVM) bool { return pv.RuleID == rule.ID && pv.Status == api.VMActive })
	var madePoint string
	for _, pv := range []*api.ProtectedVM{byHand, made} {
		j := f.backup(pv)
		if j.State != api.JobSucceeded {
			t.Fatalf("backup of %s: %+v", pv.Name, j)
		}
		if pv == made {
			madePoint = j.PointID
		}
	}

	// The rule goes first (it depends on the policy, storage and vCenter),
	// and takes the protections it made with it.
	if err := f.srv.Client.VMProtectionRules().Delete(ctx, rule.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.Client.ProtectedVMs().Get(ctx, made.ID); !api.IsNotFound(err) {
		t.Fatalf("the deleted rule's protection is still there: %v", err)
	}
	// The hand protection is a user's declaration: it holds what it uses.
	err = f.srv.Client.Policies().Delete(ctx, f.policy.ID)
	wantAPIError(t, "deleting a policy a hand protection uses", err, http.StatusConflict, "", `protected VM "db-01"`)
	if err := f.srv.Client.ProtectedVMs().Delete(ctx, byHand.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.Client.VCenters().Delete(ctx, f.vc.ID); err != nil {
		t.Fatalf("deleting the vCenter once its user-declared protections are gone: %v", err)
	}
	if err := f.srv.Client.Policies().Delete(ctx, f.policy.ID); err != nil {
		t.Fatalf("deleting the policy: %v", err)
	}
	_, err = f.srv.Client.DeleteStorage(ctx, f.storage.ID)
	wantAPIError(t, "deleting the storage with the VMs' points", err, http.StatusConflict, "force_destroy", "holds 2 recovery points of 2 assets")

	for _, pv := range []*api.ProtectedVM{byHand, made} {
		pts, err := f.srv.Client.ListPoints(ctx, pv.ID, "", 0)
		if err != nil || len(pts.Items) != 1 || pts.Items[0].AssetName != pv.Name || !pts.Items[0].AssetDeleted {
			t.Fatalf("points of deleted protection %s: %+v %v", pv.Name, pts, err)
		}
	}
	// The point's vCenter registration is gone: the restore names another.
	_, err = f.srv.Client.Restore(ctx, api.RestoreRequest{PointID: madePoint, VM: &api.VMRestore{Name: "app-01-back", Folder: "/DC0/vm"}})
	wantAPIError(t, "restore into the deleted vCenter", err, http.StatusUnprocessableEntity, "vm.vcenter_id", "was deleted")
	again, err := f.srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim-again", URL: f.sim.URL,
		Username: f.sim.Username, Password: f.sim.Password, Thumbprint: f.sim.Thumbprint}})
	if err != nil {
		t.Fatal(err)
	}
	j := f.restore(api.RestoreRequest{PointID: madePoint, VM: &api.VMRestore{VCenterID: again.ID, Name: "app-01-back", Folder: "/DC0/vm"}})
	if j.State != api.JobSucceeded {
		t.Fatalf("restore of a retired protection's point: %+v", j)
	}
	if got := f.sim.DiskBytes(t, "app-01-back", 0); !bytes.Equal(got, want) {
		t.Fatal("the restored VM's disk differs from the backed-up one")
	}

	st, err := f.srv.Client.Storages().Get(ctx, f.storage.ID)
	if err != nil {
		t.Fatal(err)
	}
	st.ForceDestroy = true
	if _, err := f.srv.Client.Storages().Update(ctx, st.ID, st.Version, api.StorageRequest{StorageSpec: st.StorageSpec}); err != nil {
		t.Fatal(err)
	}
	if gone, err := f.srv.Client.DeleteStorage(ctx, st.ID); err != nil || gone == nil || gone.ExpiredPoints != 2 {
		t.Fatalf("forced destroy: %+v %v", gone, err)
	}
}
