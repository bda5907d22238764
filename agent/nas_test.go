package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/agent"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// nasFixture is a storage, a policy, a NAS proxy (an agent file server)
// and NAS devices over a Samba server: one serving the data share (group
// team-a), one the other share (group team-b).
type nasFixture struct {
	samba         *testparts.Samba
	proxy         *api.FileServer
	data, other   *api.NASShare
	storeDir      string
	storageID     string
	policyID      string
	dataDevice    *api.NASDevice
	otherDeviceID string
}

func declareNAS(t *testing.T, c *api.Client) *nasFixture {
	t.Helper()
	ctx := context.Background()
	fx := &nasFixture{samba: testparts.StartSamba(t), storeDir: t.TempDir()}
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "nas-store", Kind: "filesystem", Path: fx.storeDir}})
	must(t, err)
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "nas-policy", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	must(t, err)
	fx.storageID, fx.policyID = stg.ID, pol.ID
	fx.proxy, err = c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "nas-proxy",
		Hostname: "proxy.example", OS: "linux", Location: api.LocationAgent}})
	must(t, err)
	device := func(name, group string) *api.NASDevice {
		d, err := c.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: api.NASDeviceSpec{Name: name, Host: fx.samba.Address,
			Protocols: []string{api.ProtocolSMB}, SMBUser: fx.samba.User, SMBDomain: fx.samba.Workgroup, SMBPassword: fx.samba.Password,
			ProxyFileServerIDs: []string{fx.proxy.ID}, Group: group}})
		must(t, err)
		return d
	}
	fx.dataDevice = device("filer-a", "team-a")
	fx.otherDeviceID = device("filer-b", "team-b").ID
	fx.data = fx.share(t, c, "projects", fx.dataDevice.ID, testparts.SambaShareData)
	fx.other = fx.share(t, c, "archive", fx.otherDeviceID, testparts.SambaShareOther)
	return fx
}

func (fx *nasFixture) share(t *testing.T, c *api.Client, name, deviceID, share string) *api.NASShare {
	t.Helper()
	s, err := c.NASShares().Create(context.Background(), api.NASShareRequest{NASShareSpec: api.NASShareSpec{Name: name, NASDeviceID: deviceID,
		Protocol: api.ProtocolSMB, Share: share, Exclude: []string{"*.tmp"}, PolicyID: fx.policyID, StorageID: fx.storageID}})
	must(t, err)
	return s
}

func TestNASProxyBackupRestoreAndRefusals(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	fx := declareNAS(t, srv.Client)
	dataDir, otherDir := fx.samba.Dir(testparts.SambaShareData), fx.samba.Dir(testparts.SambaShareOther)
	writeFiles(t, dataDir, 12, 256<<10, 7)
	must(t, os.WriteFile(filepath.Join(dataDir, "scratch.tmp"), []byte("left out"), 0o644))
	fx.samba.Adopt(testparts.SambaShareData)
	runAgent(t, srv.URL, fx.proxy.ActivationToken, t.TempDir())

	j, err := srv.Client.BackupNow(ctx, fx.data.ID)
	must(t, err)
	first := waitJob(t, srv, j.ID)
	if first.State != api.JobSucceeded || first.Progress.FilesDone != 12 {
		t.Fatalf("backup through the NAS proxy: %+v", first)
	}
	want := contents(t, dataDir)
	delete(want, "scratch.tmp")

	// One changed file: the incremental moves about that much.
	must(t, os.WriteFile(filepath.Join(dataDir, "d0", "f000"), []byte("changed"), 0o644))
	fx.samba.Adopt(testparts.SambaShareData)
	j2, err := srv.Client.BackupNow(ctx, fx.data.ID)
	must(t, err)
	if second := waitJob(t, srv, j2.ID); second.State != api.JobSucceeded {
		t.Fatalf("incremental: %+v", second)
	}
	points, err := srv.Client.ListPoints(ctx, fx.data.ID, "", 0)
	must(t, err)
	if len(points.Items) != 2 || points.Items[0].Kind != api.BackupIncremental || points.Items[0].NewBytes > 64<<10 {
		t.Fatalf("points: %+v", points.Items)
	}

	// The first point into the other share, through the API.
	rj, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: first.PointID, NAS: &api.NASRestore{ShareID: fx.other.ID}})
	must(t, err)
	if done := waitJob(t, srv, rj.ID); done.State != api.JobSucceeded || done.Progress.FilesDone != 12 {
		t.Fatalf("restore into the other share: %+v", done)
	}
	got := contents(t, otherDir)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: restored %q, want %q", p, got[p], w)
		}
	}
	if _, ok := got["scratch.tmp"]; ok {
		t.Error("an excluded file was backed up")
	}

	// An SMB point cannot go to an NFS export.
	nfsDev, err := srv.Client.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: api.NASDeviceSpec{Name: "nfs-filer", Host: "127.0.0.1",
		Protocols: []string{api.ProtocolNFS}, NFSPort: 2049, ProxyFileServerIDs: []string{fx.proxy.ID}}})
	must(t, err)
	nfsShare, err := srv.Client.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: api.NASShareSpec{Name: "exports", NASDeviceID: nfsDev.ID,
		Protocol: api.ProtocolNFS, Share: "/export", PolicyID: fx.policyID, StorageID: fx.storageID}})
	must(t, err)
	_, err = srv.Client.Restore(ctx, api.RestoreRequest{PointID: first.PointID, NAS: &api.NASRestore{ShareID: nfsShare.ID}})
	var apiErr *api.Error
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || apiErr.Field != "nas.share_id" || !strings.Contains(apiErr.Message, "SMB") {
		t.Fatalf("an SMB point restored to an NFS share: %v", err)
	}

	// A group admin of team-a restores into its own share, not into
	// team-b's.
	ga, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "team-a-admin", Role: api.RoleGroupAdmin, Groups: []string{"team-a"}})
	must(t, err)
	gc := srv.NewClient(t, ga.Secret)
	_, err = gc.Restore(ctx, api.RestoreRequest{PointID: first.PointID, NAS: &api.NASRestore{ShareID: fx.other.ID}})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusForbidden || apiErr.Field != "nas.share_id" {
		t.Fatalf("a group admin restored into another group's share: %v", err)
	}
	own, err := gc.Restore(ctx, api.RestoreRequest{PointID: first.PointID, NAS: &api.NASRestore{ShareID: fx.data.ID, Path: "restored"}})
	must(t, err)
	if done := waitJob(t, srv, own.ID); done.State != api.JobSucceeded {
		t.Fatalf("a group admin's restore into its own share: %+v", done)
	}
	if got := contents(t, filepath.Join(dataDir, "restored")); got["d1/f001"] != want["d1/f001"] {
		t.Fatal("the restore under a path did not land there")
	}

	// The share deleted, its points stay restorable, into a share the
	// restore names.
	must(t, srv.Client.NASShares().Delete(ctx, fx.data.ID))
	_, err = srv.Client.Restore(ctx, api.RestoreRequest{PointID: first.PointID})
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnprocessableEntity || apiErr.Field != "nas.share_id" {
		t.Fatalf("a deleted share's point restored without a target share: %v", err)
	}
	rj, err = srv.Client.Restore(ctx, api.RestoreRequest{PointID: first.PointID, NAS: &api.NASRestore{ShareID: fx.other.ID, Path: "from-deleted"}})
	must(t, err)
	if done := waitJob(t, srv, rj.ID); done.State != api.JobSucceeded {
		t.Fatalf("restoring a deleted share's point: %+v", done)
	}
	if got := contents(t, filepath.Join(otherDir, "from-deleted")); got["d2/f002"] != want["d2/f002"] {
		t.Fatal("a deleted share's point did not restore its content")
	}
}

// TestNASBackupWaitsForARestoreIntoItsShare: a backup of a share asked for
// while a restore writes into it is queued, says why, and runs once the
// restore has ended; the proxy runs both kinds of job.
func TestNASBackupWaitsForARestoreIntoItsShare(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	fx := declareNAS(t, srv.Client)
	dataDir := fx.samba.Dir(testparts.SambaShareData)
	writeFiles(t, dataDir, 40, 1<<20, 9)
	fx.samba.Adopt(testparts.SambaShareData)
	runAgent(t, srv.URL, fx.proxy.ActivationToken, t.TempDir())
	j, err := srv.Client.BackupNow(ctx, fx.data.ID)
	must(t, err)
	point := waitJob(t, srv, j.ID)
	if point.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", point)
	}

	// The whole point over the original, more slowly than the backup can
	// be asked for: the samba server is slowed by a full restore of 40 MiB.
	rj, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: point.PointID, NAS: &api.NASRestore{Path: "again"}})
	must(t, err)
	deadline := time.Now().Add(time.Minute)
	for {
		r, err := srv.Client.GetJob(ctx, rj.ID)
		must(t, err)
		if r.State == api.JobRunning {
			break
		}
		if r.Finished() || time.Now().After(deadline) {
			t.Fatalf("the restore never ran: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	bj, err := srv.Client.BackupNow(ctx, fx.data.ID)
	must(t, err)
	sawWait := false
	deadline = time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatal("the restore did not end")
		}
		// The backup's state first: if it has started and the restore,
		// read after it, has not ended, the two ran at once.
		b, err := srv.Client.GetJob(ctx, bj.ID)
		must(t, err)
		r, err := srv.Client.GetJob(ctx, rj.ID)
		must(t, err)
		if !r.Finished() {
			// (Running is the moment the backup looks for the restore's
			// lock, and goes back to the queue.)
			if b.Finished() {
				t.Fatalf("the backup ran while the restore into its share did: %+v", b)
			}
			sawWait = sawWait || strings.Contains(b.Error, "restore")
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if r.State != api.JobSucceeded {
			t.Fatalf("restore: %+v", r)
		}
		break
	}
	if !sawWait {
		t.Error("the queued backup never said it waits for the restore")
	}
	b := waitJob(t, srv, bj.ID)
	if b.State != api.JobSucceeded {
		t.Fatalf("the backup after the restore: %+v", b)
	}
	// Its capture began once the restore had ended.
	r, err := srv.Client.GetJob(ctx, rj.ID)
	must(t, err)
	p, err := srv.Client.GetPoint(ctx, b.PointID)
	must(t, err)
	if p.StartedAt.Before(*r.FinishedAt) {
		t.Fatalf("the backup's capture started at %s, before the restore into its share ended at %s", p.StartedAt, r.FinishedAt)
	}
}

// contents maps each regular file under dir to its SHA-256: what a share
// keeps of content, whatever its protocol keeps of modes and times.
func contents(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%x", sha256.Sum256(b))
		return nil
	})
	must(t, err)
	return out
}

// TestKilledServerOrAgentNASJobsFinish kills the server and the NAS proxy
// (the agent) with SIGKILL in the middle of NAS backups and restores:
// every job ends succeeded, the points verify, and the restored share
// holds exactly what was backed up.
func TestKilledServerOrAgentNASJobsFinish(t *testing.T) {
	var fx *nasFixture
	rig := newCrashRig(t, func(c *api.Client) string {
		fx = declareNAS(t, c)
		return fx.proxy.ActivationToken
	})
	dataDir, otherDir := fx.samba.Dir(testparts.SambaShareData), fx.samba.Dir(testparts.SambaShareOther)
	empty := func(dir string) {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			must(t, os.RemoveAll(filepath.Join(dir, e.Name())))
		}
	}
	w := crashWorkload{assetID: fx.data.ID, storeDir: fx.storeDir,
		fill: func(i int) map[string]string {
			empty(dataDir)
			writeFiles(t, dataDir, crashFiles, crashFileSize, uint64(200+i))
			fx.samba.Adopt(testparts.SambaShareData)
			return contents(t, dataDir)
		},
		restore: func(pointID string) (api.RestoreRequest, string, func() map[string]string) {
			empty(otherDir)
			return api.RestoreRequest{PointID: pointID, NAS: &api.NASRestore{ShareID: fx.other.ID}}, otherDir,
				func() map[string]string { return contents(t, otherDir) }
		},
	}
	rig.killRounds(t, w, []crashRound{
		{rig.srvProc, midBackup, rig.agentProc, midRestore},
		{rig.agentProc, midBackup, rig.srvProc, midRestore},
	})
}

// TestNASJobsBeyondWorkersOverSMBAndNFS queues backups and restores of SMB
// and NFS shares at once, more than the server's two workers and the
// proxy's two slots, one restore asked for twice with one Idempotency-Key:
// every job ends succeeded, the retried request made one job, and each
// share holds what it should, NFS modes included.
func TestNASJobsBeyondWorkersOverSMBAndNFS(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.AgentOfflineAfter = 3 * time.Second; c.JobWorkers = 2 })
	ctx := context.Background()
	c := srv.Client
	fx := declareNAS(t, c)
	n := testparts.StartNFS(t)
	_, portText, err := net.SplitHostPort(n.Address)
	must(t, err)
	port, err := strconv.Atoi(portText)
	must(t, err)
	dev, err := c.NASDevices().Create(ctx, api.NASDeviceRequest{NASDeviceSpec: api.NASDeviceSpec{Name: "nfs-filer", Host: "127.0.0.1",
		Protocols: []string{api.ProtocolNFS}, NFSPort: port, NFSMountPort: port, NFSUID: int64(os.Getuid()), NFSGID: int64(os.Getgid()),
		ProxyFileServerIDs: []string{fx.proxy.ID}}})
	must(t, err)
	nfsShare := func(name, export string) *api.NASShare {
		s, err := c.NASShares().Create(ctx, api.NASShareRequest{NASShareSpec: api.NASShareSpec{Name: name, NASDeviceID: dev.ID,
			Protocol: api.ProtocolNFS, Share: export, PolicyID: fx.policyID, StorageID: fx.storageID}})
		must(t, err)
		return s
	}
	nfsData, nfsOther := nfsShare("nfs-data", n.Export), nfsShare("nfs-other", n.OtherExport)

	smbDir := fx.samba.Dir(testparts.SambaShareData)
	writeFiles(t, smbDir, 9, 128<<10, 21)
	fx.samba.Adopt(testparts.SambaShareData)
	writeFiles(t, n.Dir, 9, 128<<10, 22)
	must(t, os.Chmod(filepath.Join(n.Dir, "d1"), 0o777|fs.ModeSticky))
	must(t, os.Chmod(filepath.Join(n.Dir, "d2", "f002"), 0o755|fs.ModeSetuid))
	runAgentWith(t, agent.Config{Server: srv.URL, ActivationToken: fx.proxy.ActivationToken, StateDir: t.TempDir(), Concurrency: 2})

	// Three backups at once (the other SMB share is empty).
	var backups []string
	for _, id := range []string{fx.data.ID, nfsData.ID, fx.other.ID} {
		j, err := c.BackupNow(ctx, id)
		must(t, err)
		backups = append(backups, j.ID)
	}
	points := map[string]string{}
	for i, id := range backups {
		j := waitJob(t, srv, id)
		if j.State != api.JobSucceeded {
			t.Fatalf("backup %d: %+v", i, j)
		}
		points[[]string{"smb", "nfs", "empty"}[i]] = j.PointID
	}

	// Three restores at once, one of them asked for twice with one key.
	restore := func(req api.RestoreRequest, key string) string {
		body, _ := json.Marshal(req)
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/restores", bytes.NewReader(body))
		must(t, err)
		r.Header.Set("Authorization", "Bearer "+srv.AdminToken)
		r.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(r)
		must(t, err)
		defer resp.Body.Close()
		var j api.Job
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("restore: %s", resp.Status)
		}
		must(t, json.NewDecoder(resp.Body).Decode(&j))
		return j.ID
	}
	smbReq := api.RestoreRequest{PointID: points["smb"], NAS: &api.NASRestore{ShareID: fx.other.ID, Path: "r1"}}
	restores := []string{
		restore(smbReq, "smb-once"),
		restore(api.RestoreRequest{PointID: points["nfs"], NAS: &api.NASRestore{ShareID: nfsOther.ID}}, "nfs"),
		restore(api.RestoreRequest{PointID: points["smb"], NAS: &api.NASRestore{Path: "r2"}}, "smb-in-place"),
	}
	if again := restore(smbReq, "smb-once"); again != restores[0] {
		t.Fatalf("a retried restore request made a second job: %s and %s", restores[0], again)
	}
	for i, id := range restores {
		if j := waitJob(t, srv, id); j.State != api.JobSucceeded {
			t.Fatalf("restore %d: %+v", i, j)
		}
	}
	want := contents(t, smbDir)
	for _, dir := range []string{filepath.Join(fx.samba.Dir(testparts.SambaShareOther), "r1"), filepath.Join(smbDir, "r2")} {
		got := contents(t, dir)
		for p, w := range want {
			if !strings.HasPrefix(p, "r2") && got[p] != w {
				t.Errorf("%s: %s restored as %q, want %q", dir, p, got[p], w)
			}
		}
	}
	wantNFS, gotNFS := tree(t, n.Dir), tree(t, n.OtherDir)
	delete(wantNFS, ".")
	delete(gotNFS, ".")
	if len(wantNFS) != len(gotNFS) {
		t.Errorf("NFS: %d entries restored, %d backed up", len(gotNFS), len(wantNFS))
	}
	for p, w := range wantNFS {
		if gotNFS[p] != w {
			t.Errorf("NFS: %s restored as %q, want %q (mode, content and ns mtime)", p, gotNFS[p], w)
		}
	}
}
