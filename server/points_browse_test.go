package server_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// backupPoint runs a backup of an asset to its end and returns its point.
func backupPoint(t *testing.T, srv *servertest.Server, assetID string) string {
	t.Helper()
	j, err := srv.Client.BackupNow(context.Background(), assetID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded || j.PointID == "" {
		t.Fatalf("backup: %+v", j)
	}
	return j.PointID
}

// allEntries pages through a point's entries under a path, limit at a time.
func allEntries(t *testing.T, c *api.Client, point string, q api.EntriesQuery, limit int) []string {
	t.Helper()
	var out []string
	token := ""
	for {
		page, err := c.PointEntries(context.Background(), point, q, token, limit)
		if err != nil {
			t.Fatalf("entries of %s under %s: %v", point, q.Path, err)
		}
		if len(page.Items) > limit {
			t.Fatalf("a page of %d entries, limit %d", len(page.Items), limit)
		}
		for _, e := range page.Items {
			out = append(out, e.Path)
		}
		if token = page.NextPageToken; token == "" {
			return out
		}
	}
}

// relPaths strips a source directory off shown paths.
func relPaths(src string, paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, strings.TrimPrefix(p, src+"/"))
	}
	return out
}

// TestBrowsePointsAndPlanRestores backs a tree up twice through a real
// server and browses the points: listing (by page), a file's bytes, a
// find across points, a diff; then a restore's dry run (which writes
// nothing and queues nothing), a restore narrowed by include and exclude
// globs, and who may browse.
func TestBrowsePointsAndPlanRestores(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	c := srv.Client
	src := t.TempDir()
	writeSampleTree(t, src)
	big := make([]byte, 6<<20) // several content-defined chunks
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "big.bin"), big, 0o600); err != nil {
		t.Fatal(err)
	}
	set := protectedFileset(t, srv, src)
	spec := set.FilesetSpec
	spec.Group = "team-a"
	if _, err := c.Filesets().Update(ctx, set.ID, set.Version, api.FilesetRequest{FilesetSpec: spec}); err != nil {
		t.Fatal(err)
	}
	p1 := backupPoint(t, srv, set.ID)
	if err := os.WriteFile(filepath.Join(src, "d1", "f01.txt"), []byte("changed"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, "d2", "f02.txt"))
	os.WriteFile(filepath.Join(src, "new.txt"), []byte("new file"), 0o644)
	p2 := backupPoint(t, srv, set.ID)

	// ls: the children of the source, as the source has them; the whole
	// tree by pages of 7.
	children := allEntries(t, c, p2, api.EntriesQuery{Path: src}, 100)
	var want []string
	dirents, _ := os.ReadDir(src)
	for _, d := range dirents {
		want = append(want, d.Name())
	}
	if got := relPaths(src, children); !slices.Equal(got, want) {
		t.Errorf("ls %s: %q, want %q", src, got, want)
	}
	var walked []string
	filepath.Walk(src, func(p string, _ os.FileInfo, _ error) error {
		if p != src {
			walked = append(walked, strings.TrimPrefix(p, src+"/"))
		}
		return nil
	})
	got := relPaths(src, allEntries(t, c, p2, api.EntriesQuery{Path: src, Recursive: true}, 7))
	sort.Strings(got)
	sort.Strings(walked)
	if !slices.Equal(got, walked) {
		t.Errorf("ls -R by pages of 7: %q, want %q", got, walked)
	}
	one, err := c.PointEntries(ctx, p2, api.EntriesQuery{Path: src + "/big.bin"}, "", 0)
	if err != nil || len(one.Items) != 1 || one.Items[0].Type != "file" || one.Items[0].Size != int64(len(big)) || one.Items[0].Mode != "0600" || one.Items[0].Mtime == nil {
		t.Errorf("ls of big.bin: %+v %v", one, err)
	}
	if _, err := c.PointEntries(ctx, p2, api.EntriesQuery{Path: src + "/nothing"}, "", 0); !isStatus(err, http.StatusNotFound, "path") {
		t.Errorf("ls of a missing path: %v, want 404 on path", err)
	}

	// dump: byte-identical, streamed.
	for name, want := range map[string][]byte{"big.bin": big, "new.txt": []byte("new file")} {
		rc, err := c.PointContent(ctx, p2, src+"/"+name)
		if err != nil {
			t.Fatalf("content of %s: %v", name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(b, want) {
			t.Errorf("content of %s: %d bytes (%v), want the %d of the file", name, len(b), err, len(want))
		}
	}
	if _, err := c.PointContent(ctx, p2, src+"/d0"); !isStatus(err, http.StatusUnprocessableEntity, "path") {
		t.Errorf("content of a directory: %v, want 422 on path", err)
	}

	// find: which points hold a path, newest first.
	for pattern, wantPoints := range map[string][]string{"**/d1/f01.txt": {p2, p1}, "new.txt": {p2}, "nothing-*": nil} {
		found, err := c.FindInPoints(ctx, api.FindQuery{Pattern: pattern, AssetID: "docs"}, "", 0)
		if err != nil {
			t.Fatalf("find %s: %v", pattern, err)
		}
		var points []string
		for _, m := range found.Items {
			points = append(points, m.PointID)
			if len(m.Entries) != 1 || !strings.HasPrefix(m.Entries[0].Path, src+"/") {
				t.Errorf("find %s in %s: %+v", pattern, m.PointID, m.Entries)
			}
		}
		if !slices.Equal(points, wantPoints) {
			t.Errorf("find %s: points %v, want %v", pattern, points, wantPoints)
		}
	}

	// diff: the files added, removed and changed.
	changes, err := c.DiffPoints(ctx, p1, p2, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var desc []string
	for _, ch := range changes.Items {
		if (ch.To == nil || ch.To.Type != "dir") && (ch.From == nil || ch.From.Type != "dir") {
			desc = append(desc, ch.Change+" "+strings.TrimPrefix(ch.Path, src+"/"))
		}
	}
	if want := []string{"changed d1/f01.txt", "removed d2/f02.txt", "added new.txt"}; !slices.Equal(desc, want) {
		t.Errorf("diff: %q, want %q", desc, want)
	}

	// A dry run lists writes, overwrites or skips against the real
	// target, and writes and queues nothing.
	dst := t.TempDir()
	mine := filepath.Join(dst, src, "d0")
	os.MkdirAll(mine, 0o755)
	os.WriteFile(filepath.Join(mine, "f00.txt"), []byte("mine"), 0o600)
	before := treeState(t, dst)
	var d0Bytes, f00Bytes int64
	d0, _ := os.ReadDir(filepath.Join(src, "d0"))
	for _, d := range d0 {
		fi, _ := d.Info()
		d0Bytes += fi.Size()
		if d.Name() == "f00.txt" {
			f00Bytes = fi.Size()
		}
	}
	for conflict, wantF00 := range map[string]string{"skip": api.PlanSkip, "overwrite": api.PlanOverwrite} {
		plan, job, err := c.PlanRestore(ctx, api.RestoreRequest{PointID: p2, TargetPath: dst, Paths: []string{src + "/d0"}, Conflict: conflict})
		if err != nil || job != nil {
			t.Fatalf("dry run (%s) onto the Haven host: %v, job %+v; want the plan at once", conflict, err, job)
		}
		actions := map[string]string{}
		for _, it := range plan.Items {
			actions[strings.TrimPrefix(it.Path, src+"/")] = it.Action
			if it.Dest != filepath.Join(dst, it.Path) {
				t.Errorf("dry run: %s goes to %s", it.Path, it.Dest)
			}
		}
		wantBytes := d0Bytes
		if conflict == "skip" {
			wantBytes -= f00Bytes
		}
		if actions["d0/f00.txt"] != wantF00 || actions["d0/f04.txt"] != api.PlanWrite || len(actions) != len(d0) || plan.Bytes != wantBytes || plan.PointID != p2 {
			t.Errorf("dry run (%s): %v, %d bytes, want f00.txt %s, the other %d files written, %d bytes", conflict, actions, plan.Bytes, wantF00, len(d0)-1, wantBytes)
		}
	}
	sameTree(t, before, treeState(t, dst))
	for _, kind := range []string{api.JobRestore, api.JobRestorePlan} {
		if jobs, err := c.ListJobs(ctx, api.JobFilter{Kind: kind}, "", 0); err != nil || len(jobs.Items) != 0 {
			t.Errorf("%s jobs after dry runs onto the Haven host: %+v %v", kind, jobs, err)
		}
	}

	// A restore narrowed by globs writes only what they select.
	narrow := t.TempDir()
	r, err := c.Restore(ctx, api.RestoreRequest{PointID: p2, TargetPath: narrow, Include: []string{"**/d1/*.txt", "big.bin"}, Exclude: []string{"f05.txt"}})
	if err != nil {
		t.Fatal(err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("restore with globs: %+v", r)
	}
	var restored []string
	filepath.Walk(filepath.Join(narrow, src), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			restored = append(restored, strings.TrimPrefix(p, filepath.Join(narrow, src)+"/"))
		}
		return nil
	})
	want = []string{"big.bin", "d1/f01.txt", "d1/f09.txt", "d1/f13.txt", "d1/f17.txt", "d1/f21.txt", "d1/f25.txt", "d1/f29.txt"}
	if !slices.Equal(restored, want) {
		t.Errorf("restored %q, want %q", restored, want)
	}
	if _, err := c.Restore(ctx, api.RestoreRequest{PointID: p2, TargetPath: narrow, Include: []string{"[bad"}}); !isStatus(err, http.StatusBadRequest, "include[0]") {
		t.Errorf("an invalid include glob: %v, want 400 on include[0]", err)
	}

	// Who may browse: every reading role, a group admin only its groups'.
	token := func(name, role string, groups ...string) *api.Client {
		tok, err := c.CreateToken(ctx, api.TokenRequest{Name: name, Role: role, Groups: groups})
		if err != nil {
			t.Fatal(err)
		}
		return srv.NewClient(t, tok.Secret)
	}
	reader, inGroup, outside := token("reader", api.RoleReadOnly), token("team-a", api.RoleGroupAdmin, "team-a"), token("team-b", api.RoleGroupAdmin, "team-b")
	for who, cl := range map[string]*api.Client{"read_only": reader, "group_admin of team-a": inGroup} {
		if _, err := cl.PointEntries(ctx, p2, api.EntriesQuery{Path: src}, "", 0); err != nil {
			t.Errorf("%s listing a point: %v", who, err)
		}
	}
	if _, err := outside.PointEntries(ctx, p2, api.EntriesQuery{Path: src}, "", 0); !isStatus(err, http.StatusForbidden, "") {
		t.Errorf("a group admin of another group listing a point: %v, want 403", err)
	}
	if _, err := outside.PointContent(ctx, p2, src+"/big.bin"); !isStatus(err, http.StatusForbidden, "") {
		t.Errorf("a group admin of another group reading a file: %v, want 403", err)
	}
	if _, err := outside.DiffPoints(ctx, p1, p2, "", 0); !isStatus(err, http.StatusForbidden, "") {
		t.Errorf("a group admin of another group comparing points: %v, want 403", err)
	}
	if found, err := outside.FindInPoints(ctx, api.FindQuery{Pattern: "*.txt"}, "", 0); err != nil || len(found.Items) != 0 {
		t.Errorf("a group admin of another group finding files: %+v %v, want nothing found", found, err)
	}
	if found, err := inGroup.FindInPoints(ctx, api.FindQuery{Pattern: "new.txt"}, "", 0); err != nil || len(found.Items) != 1 {
		t.Errorf("a group admin of the group finding a file: %+v %v", found, err)
	}
}

// isStatus reports whether err is an API error of this status (and field,
// when one is given).
func isStatus(err error, status int, field string) bool {
	e, ok := err.(*api.Error)
	return ok && e.Status == status && (field == "" || e.Field == field)
}

// TestBrowseVMPoint: a VM point's entries are its disks, and what needs
// files (a path below it, content, diff, find) is refused naming the field.
func TestBrowseVMPoint(t *testing.T) {
	f := newVMFixture(t, nil)
	ctx := context.Background()
	c := f.srv.Client
	rng := rand.New(rand.NewPCG(3, 3))
	f.sim.WriteDiskAt(t, "db-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 1<<20, 1<<20))
	pv := f.protect("db-01", nil)
	j := f.backup(pv)
	if j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	disks, err := c.PointEntries(ctx, j.PointID, api.EntriesQuery{}, "", 0)
	if err != nil || len(disks.Items) != len(f.vm("db-01").Disks) {
		t.Fatalf("entries of a VM point: %+v %v, want its %d disks", disks, err, len(f.vm("db-01").Disks))
	}
	for i, d := range disks.Items {
		want := f.vm("db-01").Disks[i]
		if d.Type != "disk" || d.DiskKey != want.Key || d.CapacityBytes != want.CapacityBytes || d.Label == "" {
			t.Errorf("disk %d: %+v, want key %d of %d bytes", i, d, want.Key, want.CapacityBytes)
		}
	}
	if _, err := c.PointEntries(ctx, j.PointID, api.EntriesQuery{Path: "/etc"}, "", 0); !isStatus(err, http.StatusUnprocessableEntity, "path") {
		t.Errorf("a path in a VM point: %v, want 422 on path", err)
	}
	if _, err := c.PointContent(ctx, j.PointID, "/etc/hosts"); !isStatus(err, http.StatusUnprocessableEntity, "id") {
		t.Errorf("content of a VM point: %v, want 422 on id", err)
	}
	if _, err := c.DiffPoints(ctx, j.PointID, j.PointID, "", 0); !isStatus(err, http.StatusUnprocessableEntity, "from") {
		t.Errorf("diff of VM points: %v, want 422 on from", err)
	}
	if _, err := c.FindInPoints(ctx, api.FindQuery{Pattern: "*", AssetID: pv.ID}, "", 0); !isStatus(err, http.StatusUnprocessableEntity, "asset_id") {
		t.Errorf("find in a protected VM's points: %v, want 422 on asset_id", err)
	}
}
