package server_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// allPacksButTheFirst picks the reads of every pack but the first one
// read after it is made: an import job is then caught with part of its
// packs indexed.
func allPacksButTheFirst() func(r *http.Request, _ []byte) bool {
	first := ""
	return func(r *http.Request, _ []byte) bool {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/"+repo.PacksPrefix) {
			return false
		}
		if first == "" {
			first = r.URL.Path
		}
		return r.URL.Path != first
	}
}

// TestImportJobFinishesAfterTheServerIsKilled: the import of a storage
// is a job that outlives its server. A server process on a fresh
// database imports an S3 storage whose pack reads are held after the
// first pack; meanwhile a retry with the same Idempotency-Key and a
// second import request get the same job, a GC of the storage and a
// backup onto it wait, and the storage cannot be deleted.
// The server is killed with SIGKILL mid-import and started again: the job
// ends succeeded (indexing the packs the first attempt did not), the GC
// and the backup run after it, and every point restores byte-identical.
func TestImportJobFinishesAfterTheServerIsKilled(t *testing.T) {
	ctx := context.Background()
	masterKey := filepath.Join(t.TempDir(), "master.key")
	moto := testparts.Moto(t)
	bucket := testparts.MotoBucket(t, moto)
	gate, gated := newRequestGate(t, moto)
	spec := api.StorageSpec{Name: "cloud", Kind: api.StorageS3, Bucket: bucket, Prefix: "haven", Endpoint: moto, ForcePathStyle: true,
		Region: testparts.MotoRegion, AccessKeyID: testparts.MotoAccessKeyID, SecretAccessKey: testparts.MotoSecretAccessKey}

	// The lost server: two points over several packs.
	lost := servertest.StartWith(t, func(c *server.Config) { c.MasterKeyFile = masterKey })
	stg, err := lost.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	set := filesetOn(t, lost.Client, stg.ID, src)
	rnd := rand.New(rand.NewPCG(1, 2))
	var states []map[string]string
	for _, files := range [][]string{{"a.bin", "b.bin"}, {"c.bin"}} {
		for _, f := range files {
			b := make([]byte, 10<<20)
			for j := range b {
				b[j] = byte(rnd.Uint32())
			}
			if err := os.WriteFile(filepath.Join(src, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		states = append(states, backUpAndRecord(t, lost, set.ID, src))
	}
	points, err := lost.Client.ListPoints(ctx, set.ID, "", 0)
	if err != nil || len(points.Items) != 2 {
		t.Fatalf("points: %+v %v", points, err)
	}
	packs := countObjects(t, moto, bucket, "haven/"+repo.PacksPrefix)
	if packs < 2 {
		t.Fatalf("the store has %d packs; the test needs 2 or more to hold an import between them", packs)
	}
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := lost.Server.Shutdown(stopCtx); err != nil {
		t.Fatal(err)
	}

	// A fresh server process, reading the store through the gate.
	dbURL := testparts.PostgresURL(t)
	dataDir := t.TempDir()
	port := freePort(t)
	endpoint := "http://127.0.0.1:" + port
	logFile, err := os.Create(filepath.Join(t.TempDir(), "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	var child *exec.Cmd
	start := func() string {
		child = exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), childFastRescueEnv+"="+strings.Join([]string{"--listen", "127.0.0.1:" + port, "--data-dir", dataDir,
			"--database-url", dbURL, "--master-key-file", masterKey, "--local-roots", "/"}, "\x1f"))
		child.Stdout, child.Stderr = logFile, logFile
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		return waitForServer(t, endpoint, dataDir, logFile.Name())
	}
	token := start()
	t.Cleanup(func() {
		if child.ProcessState == nil {
			child.Process.Signal(syscall.SIGTERM)
			child.Wait()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("server log:\n%s", b[max(0, len(b)-30000):])
		}
	})
	c, err := api.NewClient(api.ClientOptions{Endpoint: endpoint, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	importSpec := spec
	importSpec.Name, importSpec.Endpoint = "recovered", gated
	postImport := func(key string) api.Job {
		t.Helper()
		body, _ := json.Marshal(api.StorageImportRequest{StorageSpec: importSpec})
		status, j := postJobWithKey(t, endpoint+"/v1/storages/import", token, key, body)
		if status != http.StatusAccepted || j.ID == "" {
			t.Fatalf("import request (key %s): HTTP %d %+v", key, status, j)
		}
		return j
	}

	gate.holdWhere(allPacksButTheFirst())
	imp := postImport("import-once")
	if imp.Kind != api.JobImport || imp.StorageID != stg.ID {
		t.Fatalf("the import answered %+v, want an import job on storage %s", imp, stg.ID)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for gate.heldRequests() == 0 || indexedPacks(t, dbURL, stg.ID) == 0 {
		if time.Now().After(deadline) {
			j, _ := c.GetJob(ctx, imp.ID)
			t.Fatalf("the import never indexed a pack and reached a held one: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if j, err := c.GetJob(ctx, imp.ID); err != nil || j.State != api.JobRunning {
		t.Fatalf("the import while its pack reads are held: %+v %v", j, err)
	}
	if got := indexedPacks(t, dbURL, stg.ID); got >= packs {
		t.Fatalf("%d of %d packs indexed before the kill: nothing left to finish", got, packs)
	}
	if retry := postImport("import-once"); retry.ID != imp.ID {
		t.Errorf("a retry with the same Idempotency-Key made job %s, not %s", retry.ID, imp.ID)
	}
	if second := postImport("another-request"); second.ID != imp.ID {
		t.Errorf("a second import while one runs made job %s beside %s", second.ID, imp.ID)
	}
	if list, err := c.ListJobs(ctx, api.JobFilter{Kind: api.JobImport}, "", 0); err != nil || len(list.Items) != 1 {
		t.Errorf("import jobs: %+v %v, want the one", list, err)
	}
	if p, err := c.ListPoints(ctx, "", "", 0); err != nil || len(p.Items) != 0 {
		t.Errorf("points listed before the import ended: %+v %v", p, err)
	}
	var gc api.Job
	if err := c.Do(ctx, http.MethodPost, "/v1/storages/"+stg.ID+"/gc", nil, nil, &gc); err != nil {
		t.Fatal(err)
	}
	waitsForImport(t, c, gc.ID, "a GC of the storage")

	_, err = c.DeleteStorage(ctx, stg.ID)
	wantAPIError(t, "deleting the storage during its import", err, http.StatusConflict, "", "being imported")

	// A backup onto the storage waits for the import too: on a half-built
	// index it would store chunks the store already holds.
	newSrc := t.TempDir()
	if err := os.WriteFile(filepath.Join(newSrc, "new.txt"), []byte("written after the disaster"), 0o644); err != nil {
		t.Fatal(err)
	}
	newSet := filesetOn(t, c, stg.ID, newSrc)
	backup, err := c.BackupNow(ctx, newSet.ID)
	if err != nil {
		t.Fatal(err)
	}
	waitsForImport(t, c, backup.ID, "a backup onto the storage")

	child.Process.Signal(syscall.SIGKILL)
	child.Wait()
	t.Logf("killed the server with %d of %d packs indexed", indexedPacks(t, dbURL, stg.ID), packs)
	gate.open()
	start()
	wctx, wcancel := context.WithTimeout(ctx, 4*time.Minute)
	defer wcancel()
	done, err := c.WaitJob(wctx, imp.ID, 200*time.Millisecond)
	if err != nil || done.State != api.JobSucceeded {
		t.Fatalf("the import after the server was killed: %+v %v", done, err)
	}
	// The backup that waited for the import runs as soon as it ends and
	// adds packs of its own; once it is done, every pack in the store (the
	// imported ones and its own) must be indexed.
	bdone, err := c.WaitJob(wctx, backup.ID, 200*time.Millisecond)
	if err != nil || bdone.State != api.JobSucceeded {
		t.Fatalf("the backup that waited for the import: %+v %v", bdone, err)
	}
	stored := countObjects(t, moto, bucket, "haven/"+repo.PacksPrefix)
	if done.Attempt < 2 || done.Result[api.ImportResultPoints] != "2" || done.Result[api.ImportResultSkipped] != "0" ||
		done.Progress.PointsDone != 2 || stored <= packs || indexedPacks(t, dbURL, stg.ID) != stored {
		t.Errorf("the finished import: %+v, with %d of the store's %d packs indexed (%d before the backup); want 2 points added and every pack, after 2 attempts or more",
			done, indexedPacks(t, dbURL, stg.ID), stored, packs)
	}
	if again := postImport("import-once"); again.ID != imp.ID || again.State != api.JobSucceeded {
		t.Errorf("a retry with the same Idempotency-Key after the import: %+v, want job %s", again, imp.ID)
	}
	if g, err := c.WaitJob(wctx, gc.ID, 200*time.Millisecond); err != nil || g.State != api.JobSucceeded {
		t.Fatalf("the GC after the import: %+v %v", g, err)
	}
	if b, err := c.WaitJob(wctx, backup.ID, 200*time.Millisecond); err != nil || b.State != api.JobSucceeded {
		t.Fatalf("the backup after the import: %+v %v", b, err)
	}

	after, err := c.ListPoints(ctx, set.ID, "", 0)
	if err != nil || len(after.Items) != 2 {
		t.Fatalf("points after the import: %+v %v", after, err)
	}
	here, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "rebuilt", Hostname: "localhost", OS: "linux", Location: api.LocationServer}})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []api.Point{after.Items[1], after.Items[0]} {
		dst := t.TempDir()
		r, err := c.Restore(ctx, api.RestoreRequest{PointID: p.ID, TargetPath: dst, TargetFileServerID: here.ID})
		if err != nil {
			t.Fatal(err)
		}
		if r, err = c.WaitJob(wctx, r.ID, 200*time.Millisecond); err != nil || r.State != api.JobSucceeded {
			t.Fatalf("restore of point %s: %+v %v", p.ID, r, err)
		}
		got, want := treeState(t, filepath.Join(dst, src)), states[i]
		delete(got, ".")
		delete(want, ".")
		sameTree(t, want, got)
	}
}

// waitsForImport waits until a job says it waits for its storage's
// import, and fails the test if it ends instead.
func waitsForImport(t *testing.T, c *api.Client, jobID, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := c.GetJob(context.Background(), jobID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != api.JobQueued && j.State != api.JobRunning {
			t.Fatalf("%s ran during its import: %+v", what, j)
		}
		if strings.Contains(j.Error, "being imported") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never said it waits for the import: %+v", what, j)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// filesetOn protects src as a fileset on a storage, through a new policy
// and the server's own file server.
func filesetOn(t *testing.T, c *api.Client, storageID, src string) *api.Fileset {
	t.Helper()
	ctx := context.Background()
	var pol api.Policy
	if err := c.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, json.RawMessage(validPolicyJSON("daily")), &pol); err != nil {
		t.Fatal(err)
	}
	fsrv, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "host", Hostname: "localhost", OS: "linux", Location: api.LocationServer}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "data", FileServerID: fsrv.ID,
		IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: storageID}})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// countObjects counts a bucket's objects under prefix, behind the store's back.
func countObjects(t *testing.T, endpoint, bucket, prefix string) int {
	t.Helper()
	out, err := testparts.MotoS3Client(endpoint).ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Contents)
}

// indexedPacks counts the packs the chunk index of a storage's repository
// holds, in the server's database.
func indexedPacks(t *testing.T, dbURL, repoID string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM repo_packs WHERE repo_id = $1`, repoID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
