package server_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// roleClients are clients of one server for each role the tests probe.
type roleClients struct {
	admin, operator, teamA *api.Client
}

func newRoleClients(t *testing.T, srv *servertest.Server) roleClients {
	t.Helper()
	ctx := context.Background()
	op, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "ops", Role: api.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	ga, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "team-a-admin", Role: api.RoleGroupAdmin, Groups: []string{"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	return roleClients{admin: srv.Client, operator: srv.NewClient(t, op.Secret), teamA: srv.NewClient(t, ga.Secret)}
}

// wantRefused fails unless err is an API error with this status and, when
// field is not empty, naming this field.
func wantRefused(t *testing.T, what string, err error, status int, field string) *api.Error {
	t.Helper()
	var e *api.Error
	if !errors.As(err, &e) || e.Status != status || (field != "" && e.Field != field) {
		t.Errorf("%s: got %v, want %d on field %q", what, err, status, field)
		return nil
	}
	return e
}

// hostSetup is a storage and a policy, shared by the filesets of a test.
type hostSetup struct{ storageID, policyID string }

func newHostSetup(t *testing.T, srv *servertest.Server) hostSetup {
	t.Helper()
	ctx := context.Background()
	stg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "store", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	return hostSetup{storageID: stg.ID, policyID: pol.ID}
}

func (h hostSetup) fileset(name, fileServerID, group string, paths ...string) api.FilesetRequest {
	return api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: name, FileServerID: fileServerID, IncludePaths: paths,
		PolicyID: h.policyID, StorageID: h.storageID, Group: group}}
}

func createFileServer(t *testing.T, c *api.Client, spec api.FileServerSpec) *api.FileServer {
	t.Helper()
	f, err := c.FileServers().Create(context.Background(), api.FileServerRequest{FileServerSpec: spec})
	if err != nil {
		t.Fatalf("file server %s: %v", spec.Name, err)
	}
	return f
}

// TestLocalRootsConfineTheHavenHost: server-local backups and restores
// reach only --local-roots, and never the data dir or the keys even when
// the roots hold them; only admins define file servers of the Haven host.
func TestLocalRootsConfineTheHavenHost(t *testing.T) {
	base := t.TempDir()
	roots := filepath.Join(base, "shares")
	dataDir := filepath.Join(roots, "haven-data") // inside the roots, on purpose
	keyFile := filepath.Join(roots, "keys", "master.key")
	os.MkdirAll(filepath.Join(roots, "keys"), 0o700)
	srv := servertest.StartWith(t, func(c *server.Config) {
		c.DataDir, c.MasterKeyFile, c.LocalRoots = dataDir, keyFile, []string{roots}
	})
	ctx := context.Background()
	rc := newRoleClients(t, srv)
	h := newHostSetup(t, srv)

	_, err := rc.operator.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "sneaky", Hostname: "localhost", OS: "linux", Location: api.LocationServer}})
	wantRefused(t, "an operator creating a file server of the Haven host", err, http.StatusForbidden, "location")
	here := createFileServer(t, rc.admin, api.FileServerSpec{Name: "here", Hostname: "localhost", OS: "linux", Location: api.LocationServer})
	_, err = rc.operator.FileServers().Update(ctx, here.ID, here.Version, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "here", Hostname: "other", OS: "linux", Location: api.LocationServer}})
	wantRefused(t, "an operator changing a file server of the Haven host", err, http.StatusForbidden, "location")

	docs := filepath.Join(roots, "docs")
	os.MkdirAll(docs, 0o750)
	os.WriteFile(filepath.Join(docs, "report.txt"), []byte("quarterly numbers"), 0o640)
	os.Symlink(filepath.Join(dataDir, server.AdminTokenFile), filepath.Join(docs, "innocent"))
	os.Symlink(dataDir, filepath.Join(roots, "data-link"))
	for _, bad := range []string{
		"/etc",
		filepath.Join(base, "outside"),
		dataDir,
		filepath.Join(dataDir, server.AdminTokenFile),
		keyFile,
		filepath.Join(docs, "innocent"), // a symlink to the token file
		filepath.Join(roots, "data-link", "postgres"), // through a symlink into the data dir
		roots + "/docs/../../outside",
	} {
		_, err := rc.operator.Filesets().Create(ctx, h.fileset("steal", here.ID, "", docs, bad))
		if e := wantRefused(t, "include path "+bad, err, http.StatusUnprocessableEntity, "include_paths[1]"); e != nil && !strings.Contains(e.Message, "--local-roots") && !strings.Contains(e.Message, "never reads or writes") {
			t.Errorf("include path %s: the refusal does not say why: %s", bad, e.Message)
		}
	}

	// A fileset over the whole root backs up everything but Haven's own.
	set, err := rc.operator.Filesets().Create(ctx, h.fileset("shares", here.ID, "", roots))
	if err != nil {
		t.Fatal(err)
	}
	j, err := rc.operator.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("backup of the roots: %+v", j)
	}
	restored := filepath.Join(roots, "restored")
	for _, bad := range []string{filepath.Join(base, "elsewhere"), filepath.Join(dataDir, "restore"), filepath.Join(roots, "data-link")} {
		_, err := rc.operator.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: bad})
		wantRefused(t, "restore into "+bad, err, http.StatusUnprocessableEntity, "target_path")
	}
	// To the original locations, only what lies within the roots.
	_, err = rc.operator.Restore(ctx, api.RestoreRequest{PointID: j.PointID, Paths: []string{filepath.Join(roots, "docs"), "/etc"}})
	wantRefused(t, "restore of /etc in place", err, http.StatusUnprocessableEntity, "paths[1]")
	r, err := rc.operator.Restore(ctx, api.RestoreRequest{PointID: j.PointID, TargetPath: restored})
	if err != nil {
		t.Fatal(err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("restore into the roots: %+v", r)
	}
	got := treeState(t, filepath.Join(restored, roots))
	if !strings.Contains(got["docs/report.txt"], "size=17") {
		t.Errorf("the restored tree lacks the backed-up report: %v", got)
	}
	for p := range got {
		if strings.HasPrefix(p, "haven-data") || strings.HasPrefix(p, "keys/") {
			t.Errorf("the Haven server's own %s was backed up and restored", p)
		}
	}

	// The job checks again when it runs: a directory that became a
	// symlink into the data dir after the fileset was accepted.
	later := filepath.Join(roots, "later")
	os.Mkdir(later, 0o750)
	set2, err := rc.operator.Filesets().Create(ctx, h.fileset("later", here.ID, "", later))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(later)
	os.Symlink(dataDir, later)
	j2, err := rc.operator.BackupNow(ctx, set2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j2 = waitJob(t, srv, j2.ID); j2.State != api.JobFailed || !strings.Contains(j2.Error, "never reads or writes") || j2.Attempt != 1 {
		t.Fatalf("a backup whose path turned into the data dir: %+v", j2)
	}
}

// TestNoLocalRootsNoServerHost: without --local-roots the Haven host is
// not a protected host at all, even for an admin.
func TestNoLocalRootsNoServerHost(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.LocalRoots = nil })
	ctx := context.Background()
	h := newHostSetup(t, srv)
	here := createFileServer(t, srv.Client, api.FileServerSpec{Name: "here", Hostname: "localhost", OS: "linux", Location: api.LocationServer})
	_, err := srv.Client.Filesets().Create(ctx, h.fileset("docs", here.ID, "", t.TempDir()))
	if e := wantRefused(t, "a fileset of the Haven host without roots", err, http.StatusUnprocessableEntity, "include_paths[0]"); e != nil && !strings.Contains(e.Message, "--local-roots") {
		t.Errorf("the refusal does not name --local-roots: %s", e.Message)
	}
}

// TestEscalationReplayIsRefused replays, through the API, the escalation
// an operator token and then a group_admin token once achieved (reading
// admin.token and master.key through a fileset of the Haven host, then
// restoring them onto another host), and checks each step is refused.
func TestEscalationReplayIsRefused(t *testing.T) {
	roots := t.TempDir()
	srv := servertest.StartWith(t, func(c *server.Config) { c.LocalRoots = []string{roots} })
	ctx := context.Background()
	rc := newRoleClients(t, srv)
	h := newHostSetup(t, srv)
	thisHost := createFileServer(t, rc.admin, api.FileServerSpec{Name: "this-host", Hostname: "localhost", OS: "linux", Location: api.LocationServer})
	teamALocal := createFileServer(t, rc.admin, api.FileServerSpec{Name: "team-a-share", Hostname: "localhost", OS: "linux", Location: api.LocationServer, Group: "team-a"})
	teamAHost := createFileServer(t, rc.admin, api.FileServerSpec{Name: "team-a-host", Hostname: "a.example", OS: "linux", Location: api.LocationAgent,
		Group: "team-a", RestoreRoots: []string{"/srv/team-a-restores"}})
	teamBHost := createFileServer(t, rc.admin, api.FileServerSpec{Name: "team-b-host", Hostname: "b.example", OS: "linux", Location: api.LocationAgent,
		Group: "team-b", RestoreRoots: []string{"/srv/team-b-restores"}})
	secrets := []string{filepath.Join(srv.DataDir, server.AdminTokenFile), filepath.Join(srv.DataDir, "master.key"), "/etc/shadow"}

	// Step 1: a fileset of the Haven host over its secrets.
	for _, p := range secrets {
		_, err := rc.operator.Filesets().Create(ctx, h.fileset("loot", thisHost.ID, "", p))
		wantRefused(t, "operator: fileset of the Haven host over "+p, err, http.StatusUnprocessableEntity, "include_paths[0]")
		_, err = rc.teamA.Filesets().Create(ctx, h.fileset("loot", thisHost.ID, "team-a", p))
		wantRefused(t, "group_admin: fileset on a host outside its groups over "+p, err, http.StatusForbidden, "file_server_id")
		_, err = rc.teamA.Filesets().Create(ctx, h.fileset("loot", teamALocal.ID, "team-a", p))
		wantRefused(t, "group_admin: fileset of its own share of the Haven host over "+p, err, http.StatusUnprocessableEntity, "include_paths[0]")
	}

	// Step 2: restore a point of the group onto a host outside it (or
	// onto paths the host does not allow restores to).
	src := filepath.Join(roots, "team-a")
	writeSampleTree(t, src)
	set, err := rc.teamA.Filesets().Create(ctx, h.fileset("team-a-docs", teamALocal.ID, "team-a", src))
	if err != nil {
		t.Fatal(err)
	}
	j, err := rc.teamA.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	for _, c := range []struct {
		who    string
		client *api.Client
		req    api.RestoreRequest
		status int
		field  string
	}{
		{"group_admin", rc.teamA, api.RestoreRequest{TargetFileServerID: teamBHost.ID, TargetPath: "/srv/team-b-restores/x"}, http.StatusForbidden, "target_file_server_id"},
		{"group_admin", rc.teamA, api.RestoreRequest{TargetFileServerID: thisHost.ID, TargetPath: filepath.Join(roots, "x")}, http.StatusForbidden, "target_file_server_id"},
		{"group_admin", rc.teamA, api.RestoreRequest{TargetFileServerID: teamAHost.ID, TargetPath: "/root/.ssh"}, http.StatusUnprocessableEntity, "target_path"},
		{"group_admin", rc.teamA, api.RestoreRequest{TargetFileServerID: teamALocal.ID, TargetPath: srv.DataDir}, http.StatusUnprocessableEntity, "target_path"},
		{"operator", rc.operator, api.RestoreRequest{TargetFileServerID: teamBHost.ID, TargetPath: "/root/.ssh"}, http.StatusUnprocessableEntity, "target_path"},
		{"operator", rc.operator, api.RestoreRequest{TargetFileServerID: teamBHost.ID, Paths: []string{"/etc/cron.d"}}, http.StatusUnprocessableEntity, "paths[0]"},
		{"operator", rc.operator, api.RestoreRequest{TargetFileServerID: thisHost.ID, TargetPath: "/etc"}, http.StatusUnprocessableEntity, "target_path"},
		{"operator", rc.operator, api.RestoreRequest{TargetFileServerID: thisHost.ID, TargetPath: srv.DataDir}, http.StatusUnprocessableEntity, "target_path"},
	} {
		c.req.PointID = j.PointID
		_, err := c.client.Restore(ctx, c.req)
		wantRefused(t, c.who+" restoring onto "+c.req.TargetFileServerID+" at "+c.req.TargetPath, err, c.status, c.field)
	}

	// What the roles are for still works: the group admin restores onto
	// its own host's restore root, the operator onto any host's.
	for _, c := range []struct {
		client *api.Client
		req    api.RestoreRequest
	}{
		{rc.teamA, api.RestoreRequest{PointID: j.PointID, TargetFileServerID: teamAHost.ID, TargetPath: "/srv/team-a-restores/x"}},
		{rc.operator, api.RestoreRequest{PointID: j.PointID, TargetFileServerID: teamBHost.ID, TargetPath: "/srv/team-b-restores/x"}},
	} {
		r, err := c.client.Restore(ctx, c.req)
		if err != nil {
			t.Fatalf("restore %+v: %v", c.req, err)
		}
		if _, err := rc.admin.CancelJob(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
	}
}

// TestJobActionsNeedTheStartPermission: acting on a job needs what
// starting it needs; a group admin cannot cancel a storage verify, nor a
// restore of its own point onto another group's host.
func TestJobActionsNeedTheStartPermission(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	rc := newRoleClients(t, srv)
	h := newHostSetup(t, srv)
	teamAHost := createFileServer(t, rc.admin, api.FileServerSpec{Name: "team-a-host", Hostname: "a.example", OS: "linux", Location: api.LocationAgent, Group: "team-a"})
	teamBHost := createFileServer(t, rc.admin, api.FileServerSpec{Name: "team-b-host", Hostname: "b.example", OS: "linux", Location: api.LocationAgent,
		Group: "team-b", RestoreRoots: []string{"/srv/restores"}})
	teamALocal := createFileServer(t, rc.admin, api.FileServerSpec{Name: "team-a-share", Hostname: "localhost", OS: "linux", Location: api.LocationServer, Group: "team-a"})
	src := t.TempDir()
	writeSampleTree(t, src)
	local, err := rc.teamA.Filesets().Create(ctx, h.fileset("team-a-local", teamALocal.ID, "team-a", src))
	if err != nil {
		t.Fatal(err)
	}
	backup, err := rc.teamA.BackupNow(ctx, local.ID)
	if err != nil {
		t.Fatal(err)
	}
	backup = waitJob(t, srv, backup.ID)

	// Jobs that wait in the queue (their agents never come): a backup of
	// a team-a asset, and an admin's restore of a team-a point onto team b.
	remote, err := rc.admin.Filesets().Create(ctx, h.fileset("team-a-remote", teamAHost.ID, "team-a", "/srv/a"))
	if err != nil {
		t.Fatal(err)
	}
	queuedBackup, err := rc.admin.BackupNow(ctx, remote.ID)
	if err != nil {
		t.Fatal(err)
	}
	crossRestore, err := rc.admin.Restore(ctx, api.RestoreRequest{PointID: backup.PointID, TargetFileServerID: teamBHost.ID, TargetPath: "/srv/restores/a"})
	if err != nil {
		t.Fatal(err)
	}
	var verify api.Job
	if err := rc.admin.Do(ctx, http.MethodPost, "/v1/storages/"+h.storageID+"/verify", nil, struct{}{}, &verify); err != nil {
		t.Fatal(err)
	}

	_, err = rc.teamA.CancelJob(ctx, verify.ID)
	wantRefused(t, "group_admin canceling a storage verify", err, http.StatusForbidden, "")
	_, err = rc.teamA.CancelJob(ctx, crossRestore.ID)
	wantRefused(t, "group_admin canceling a restore onto another group's host", err, http.StatusForbidden, "target_file_server_id")
	if _, err := rc.teamA.CancelJob(ctx, queuedBackup.ID); err != nil {
		t.Errorf("group_admin canceling a backup of its group's asset: %v", err)
	}
	for _, id := range []string{verify.ID, crossRestore.ID} {
		_, err := rc.operator.CancelJob(ctx, id)
		var e *api.Error
		if errors.As(err, &e) && e.Status == http.StatusForbidden {
			t.Errorf("operator canceling job %s: %v", id, err)
		}
	}
}

// TestVMRestoreTargetsOfGroupAdmins: a group admin restores its VM points
// only into vCenters of its groups, and a disk only onto a protected VM of
// its groups.
func TestVMRestoreTargetsOfGroupAdmins(t *testing.T) {
	f := newVMFixture(t, nil)
	ctx := context.Background()
	rc := newRoleClients(t, f.srv)
	pv := f.protect("app-01", func(s *api.ProtectedVMSpec) { s.Group = "team-a" })
	f.protect("db-01", func(s *api.ProtectedVMSpec) { s.Group = "team-b" })
	j := f.backup(pv)
	if j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	disk := f.vm("app-01").Disks[0].Key
	asNew := api.RestoreRequest{PointID: j.PointID, VM: &api.VMRestore{Mode: api.VMRestoreNew, Name: "app-01-copy", Folder: "/DC0/vm"}}
	_, err := rc.teamA.Restore(ctx, asNew)
	wantRefused(t, "group_admin restoring into a vCenter without its group", err, http.StatusForbidden, "vm.vcenter_id")
	_, err = rc.teamA.Restore(ctx, api.RestoreRequest{PointID: j.PointID, VM: &api.VMRestore{Mode: api.VMRestoreDisk, DiskKey: disk,
		TargetInstanceUUID: f.vm("db-01").InstanceUUID}})
	wantRefused(t, "group_admin attaching a disk to another group's VM", err, http.StatusForbidden, "vm.target_instance_uuid")

	if _, err := rc.admin.VCenters().Update(ctx, f.vc.ID, f.vc.Version, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim", URL: f.sim.URL,
		Username: f.sim.Username, Thumbprint: f.sim.Thumbprint, Group: "team-a"}}); err != nil {
		t.Fatal(err)
	}
	r, err := rc.teamA.Restore(ctx, asNew)
	if err != nil {
		t.Fatalf("group_admin restoring into its group's vCenter: %v", err)
	}
	if r = waitJob(t, f.srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("restore as a new VM: %+v", r)
	}
	for _, target := range []string{"db-01", "app-01-copy"} { // another group's protected VM, an unprotected VM
		_, err = rc.teamA.Restore(ctx, api.RestoreRequest{PointID: j.PointID, VM: &api.VMRestore{Mode: api.VMRestoreDisk, DiskKey: disk,
			TargetInstanceUUID: f.vm(target).InstanceUUID}})
		wantRefused(t, "group_admin attaching a disk to "+target+" in its group's vCenter", err, http.StatusForbidden, "vm.target_instance_uuid")
	}
}
