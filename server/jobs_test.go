package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// treeState describes a tree: per path, type, mode, size, mtime (ns),
// owner and content hash.
func treeState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v uid=%d gid=%d", fi.Mode(), st.Uid, st.Gid)
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			desc += fmt.Sprintf(" size=%d mtime=%d sha=%x", len(b), fi.ModTime().UnixNano(), sha256.Sum256(b))
		} else if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			desc += " -> " + target
		} else if rel != "." {
			desc += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s:\n  want %s\n  got  %s", p, w, got[p])
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: restored but not in the source", p)
		}
	}
}

func writeSampleTree(t *testing.T, dir string) {
	t.Helper()
	for i := range 30 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%4))
		os.MkdirAll(sub, 0o750)
		data := bytes.Repeat([]byte(fmt.Sprintf("file %d line\n", i)), 200*(i+1))
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%02d.txt", i)), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("d0/f00.txt", filepath.Join(dir, "link"))
	ts := time.Date(2025, 3, 4, 5, 6, 7, 890123456, time.UTC)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d.Type()&fs.ModeSymlink == 0 && p != dir {
			os.Chtimes(p, ts, ts)
		}
		return nil
	})
}

// sampleFileset protects a new directory holding the sample tree
// (writeSampleTree) with protectedFileset, and returns it with the
// directory.
func sampleFileset(t *testing.T, srv *servertest.Server) (*api.Fileset, string) {
	t.Helper()
	src := t.TempDir()
	writeSampleTree(t, src)
	return protectedFileset(t, srv, src), src
}

// protectedFileset declares a storage, a policy, a server-local file
// server and a fileset over src.
func protectedFileset(t *testing.T, srv *servertest.Server, src string) *api.Fileset {
	t.Helper()
	ctx := context.Background()
	stg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "local", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	var pol api.Policy
	if err := srv.Client.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, json.RawMessage(validPolicyJSON("daily")), &pol); err != nil {
		t.Fatal(err)
	}
	fsrv, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "here", Hostname: "localhost", OS: "linux", Location: "server"}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := srv.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "docs", FileServerID: fsrv.ID,
		IncludePaths: []string{src}, ExcludeGlobs: []string{"*.tmp"}, PolicyID: pol.ID, StorageID: stg.ID}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func waitJob(t *testing.T, srv *servertest.Server, id string) *api.Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := srv.Client.WaitJob(ctx, id, 50*time.Millisecond)
	if err != nil {
		t.Fatalf("waiting for job %s: %v (last state %+v)", id, err, j)
	}
	return j
}

func TestFilesetBackupIncrementalAndRestore(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	src := t.TempDir()
	writeSampleTree(t, src)
	os.WriteFile(filepath.Join(src, "scratch.tmp"), []byte("excluded"), 0o600)
	set := protectedFileset(t, srv, src)
	os.Remove(filepath.Join(src, "scratch.tmp"))
	first := treeState(t, src)

	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, srv, j.ID)
	if j.State != api.JobSucceeded || j.PointID == "" || j.Progress.FilesDone != 30 {
		t.Fatalf("first backup: %+v", j)
	}
	p1, err := srv.Client.ListPoints(ctx, set.ID, "", 0)
	if err != nil || len(p1.Items) != 1 || p1.Items[0].Kind != api.BackupFull || p1.Items[0].ID != j.PointID {
		t.Fatalf("points after the first backup: %+v %v", p1, err)
	}

	// Change two files and back up again: an incremental.
	os.WriteFile(filepath.Join(src, "d1", "f01.txt"), []byte("changed"), 0o640)
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("new file"), 0o644)
	j2, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	j2 = waitJob(t, srv, j2.ID)
	if j2.State != api.JobSucceeded {
		t.Fatalf("second backup: %+v", j2)
	}
	p2, _ := srv.Client.ListPoints(ctx, set.ID, "", 0)
	if len(p2.Items) != 2 || p2.Items[0].Kind != api.BackupIncremental || p2.Items[0].ParentID != j.PointID {
		t.Fatalf("points after the second backup: %+v", p2.Items)
	}
	if p2.Items[0].NewBytes >= p2.Items[1].NewBytes/4 {
		t.Errorf("incremental stored %d new bytes, the full %d", p2.Items[0].NewBytes, p2.Items[1].NewBytes)
	}

	// Restore the first point to an alternate path: byte- and metadata-identical.
	// The existing target directory keeps its own mode and time.
	dst := t.TempDir()
	os.Chmod(dst, 0o700)
	dstTime := time.Unix(1_700_000_000, 0)
	os.Chtimes(dst, dstTime, dstTime)
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: dst})
	if err != nil {
		t.Fatal(err)
	}
	r = waitJob(t, srv, r.ID)
	if r.State != api.JobSucceeded {
		t.Fatalf("restore: %+v", r)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o700 || !fi.ModTime().Equal(dstTime) {
		t.Errorf("target directory after the restore: %v %v (%v), want 0700 and %v", fi.Mode(), fi.ModTime(), err, dstTime)
	}
	got := treeState(t, filepath.Join(dst, src))
	delete(got, ".")
	delete(first, ".")
	sameTree(t, first, got)

	// Refusals come before any byte moves.
	for _, c := range []struct {
		req   api.RestoreRequest
		field string
	}{
		{api.RestoreRequest{PointID: "00000000-0000-0000-0000-000000000000", TargetPath: dst}, "point_id"},
		{api.RestoreRequest{PointID: j.PointID, TargetPath: filepath.Join(dst, src, "d0", "f00.txt")}, "target_path"},
		{api.RestoreRequest{PointID: j.PointID, TargetPath: "/proc/haven"}, "target_path"},
	} {
		_, err := srv.Client.Restore(ctx, c.req)
		e, ok := err.(*api.Error)
		if !ok || e.Status != http.StatusUnprocessableEntity || e.Field != c.field {
			t.Errorf("restore %+v: %v, want 422 on %s", c.req, err, c.field)
		}
	}
	if _, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: "relative"}); err == nil || !strings.Contains(err.Error(), "target_path") {
		t.Errorf("relative target: %v", err)
	}
}

// TestBackupsOfOneAssetNeverOverlap asks for three backups of one asset
// and a restore at once: the backup requests share one job (one "backup
// now" while a backup is queued or running makes none), and the restore
// runs beside it.
func TestBackupsOfOneAssetNeverOverlap(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	set, _ := sampleFileset(t, srv)
	first, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	first = waitJob(t, srv, first.ID)

	var ids []string
	for range 3 {
		j, err := srv.Client.BackupNow(ctx, set.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, j.ID)
	}
	r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: first.PointID, TargetPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if j := waitJob(t, srv, id); j.State != api.JobSucceeded {
			t.Fatalf("backup %s: %+v", id, j)
		}
	}
	if rj := waitJob(t, srv, r.ID); rj.State != api.JobSucceeded {
		t.Fatalf("restore beside backups: %+v", rj)
	}
	// Requests that came while the job was queued or running got it; one
	// that came after it finished made the next.
	pts, err := srv.Client.ListPoints(ctx, set.ID, "", 0)
	if err != nil || len(pts.Items) != len(slices.Compact(ids))+1 {
		t.Fatalf("points for jobs %v: %v %+v", ids, err, pts)
	}
	for i := range pts.Items {
		for k := range pts.Items {
			a, b := pts.Items[i], pts.Items[k]
			if i != k && a.StartedAt.Before(b.CompletedAt) && b.StartedAt.Before(a.CompletedAt) {
				t.Errorf("backups %s and %s ran at the same time", a.JobID, b.JobID)
			}
		}
	}
}

// TestCancelQueuedJob: a queued job is canceled at once, and its end is
// observed in the metrics.
func TestCancelQueuedJob(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.Role = server.RoleAPI }) // no workers: jobs stay queued
	ctx := context.Background()
	set, _ := sampleFileset(t, srv)
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j.State != api.JobQueued {
		t.Fatalf("new job: %+v", j)
	}
	c, err := srv.Client.CancelJob(ctx, j.ID)
	if err != nil || c.State != api.JobCanceled || c.FinishedAt == nil {
		t.Fatalf("cancel: %v %+v", err, c)
	}
	list, err := srv.Client.ListJobs(ctx, api.JobFilter{AssetID: set.ID, State: api.JobCanceled}, "", 0)
	if err != nil || len(list.Items) != 1 || list.Items[0].ID != j.ID {
		t.Fatalf("listing canceled jobs: %v %+v", err, list)
	}

	// No worker holds a queued job to observe its end: Cancel observes it,
	// once (a second cancel changes nothing), with a duration of zero, so
	// that the duration histogram's count is every job that ended.
	if again, err := srv.Client.CancelJob(ctx, j.ID); err != nil || again.State != api.JobCanceled {
		t.Fatalf("canceling again: %v %+v", err, again)
	}
	canceled := map[string]string{"kind": api.JobBackup, "state": api.JobCanceled}
	s := scrapeMetrics(t, srv)
	if n := s.observations("haven_job_duration_seconds", canceled); n != 1 {
		t.Fatalf("durations observed for a backup canceled while queued: %d, want 1", n)
	}
	if sum := s.find("haven_job_duration_seconds", canceled).Histogram.GetSampleSum(); sum != 0 {
		t.Errorf("a job that never started took %vs, want 0", sum)
	}
}
