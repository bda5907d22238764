package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// localFilesets declares one storage, policy and server-local file server,
// and n filesets over n small trees.
func localFilesets(t *testing.T, c *api.Client, n int) []*api.Fileset {
	t.Helper()
	ctx := context.Background()
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "many", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	var pol api.Policy
	if err := c.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, json.RawMessage(validPolicyJSON("many")), &pol); err != nil {
		t.Fatal(err)
	}
	fsrv, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "many", Hostname: "localhost", OS: "linux", Location: "server"}})
	if err != nil {
		t.Fatal(err)
	}
	var sets []*api.Fileset
	for i := range n {
		src := t.TempDir()
		writeSampleTree(t, src)
		set, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: fmt.Sprintf("set-%d", i), FileServerID: fsrv.ID,
			IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: stg.ID}})
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, set)
	}
	return sets
}

// TestBackupNowMakesOneJob sends simultaneous "backup now" requests for
// each of several filesets: each fileset gets one job, and every request
// for it is answered with that job.
func TestBackupNowMakesOneJob(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.Role = server.RoleAPI }) // jobs stay queued
	sets := localFilesets(t, srv.Client, 5)
	const requests = 6
	ids := make([][]string, len(sets))
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for i, set := range sets {
		for range requests {
			wg.Go(func() {
				<-start
				j, err := srv.Client.BackupNow(context.Background(), set.ID)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[i] = append(ids[i], j.ID)
				mu.Unlock()
			})
		}
	}
	close(start)
	wg.Wait()
	for i, set := range sets {
		list, err := srv.Client.ListJobs(context.Background(), api.JobFilter{AssetID: set.ID}, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 {
			t.Errorf("fileset %s: %d jobs for %d simultaneous requests", set.Name, len(list.Items), requests)
			continue
		}
		for _, id := range ids[i] {
			if id != list.Items[0].ID {
				t.Errorf("fileset %s: a request was answered with job %s, not the fileset's job %s", set.Name, id, list.Items[0].ID)
			}
		}
	}
}

// TestBusyAssetSaysWhy: a backup asked for while another backup holds its
// asset's lock stays queued saying so, not with an empty message, and runs
// once the lock is free.
func TestBusyAssetSaysWhy(t *testing.T) {
	srv := servertest.Start(t)
	ctx := context.Background()
	set := localFilesets(t, srv.Client, 1)[0]
	pool, err := pgxpool.New(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	locks := db.NewLocks(pool)
	defer locks.Close()
	release, err := driver.LockAsset(ctx, locks, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	release = sync.OnceFunc(release)
	defer release() // before locks.Close, which waits for the lock's connection
	j, err := srv.Client.BackupNow(ctx, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		got, err := srv.Client.GetJob(ctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != api.JobQueued && got.State != api.JobRunning {
			t.Fatalf("the backup ended while another held its asset's lock: %+v", got)
		}
		if got.State == api.JobQueued && got.Error == driver.ErrBusy.Error() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup never said it waits for its asset's other backup: %+v", got)
		}
	}
	release()
	if done := waitJob(t, srv, j.ID); done.State != api.JobSucceeded {
		t.Fatalf("the backup did not succeed once the lock was free: %+v", done)
	}
}

// TestJobRequestsWithIdempotencyKey: a request that repeats a key gets the
// first request's job (per token), the key on another request is refused,
// and a request retried by the client after its answer was lost makes one
// job.
func TestJobRequestsWithIdempotencyKey(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.Role = server.RoleAPI })
	ctx := context.Background()
	stg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "k", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	post := func(token, path, key string) (int, api.Job) {
		return postJobWithKey(t, srv.URL+path, token, key, []byte(`{}`))
	}
	verify, gc := "/v1/storages/"+stg.ID+"/verify", "/v1/storages/"+stg.ID+"/gc"
	st1, first := post(srv.AdminToken, verify, "nightly-verify-1")
	st2, again := post(srv.AdminToken, verify, "nightly-verify-1")
	if st1 != http.StatusAccepted || st2 != http.StatusAccepted || first.ID == "" || again.ID != first.ID {
		t.Fatalf("the same key twice: %d %+v, then %d %+v", st1, first, st2, again)
	}
	if st, other := post(srv.AdminToken, verify, "nightly-verify-2"); st != http.StatusAccepted || other.ID == first.ID {
		t.Fatalf("a new key: %d %+v", st, other)
	}
	if st, _ := post(srv.AdminToken, gc, "nightly-verify-1"); st != http.StatusUnprocessableEntity {
		t.Fatalf("the key on another request: %d, want 422", st)
	}
	if st, _ := post(srv.AdminToken, verify, "bad key"); st != http.StatusBadRequest {
		t.Fatalf("a key with a space: %d, want 400", st)
	}
	// Keys are per token: another caller's same key is its own request.
	tok, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "ops", Role: api.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if st, theirs := post(tok.Secret, verify, "nightly-verify-1"); st != http.StatusAccepted || theirs.ID == first.ID {
		t.Fatalf("another token with the same key: %d %+v", st, theirs)
	}

	// A proxy loses the answer to the first try of the POST: the client
	// retries, with its key, and one job is made.
	endpoint, lost := answerLosingProxy(t, srv.URL, func(r *http.Request) bool { return r.Method == http.MethodPost })
	c, err := api.NewClient(api.ClientOptions{Endpoint: endpoint, Token: srv.AdminToken, MaxRetries: 3})
	if err != nil {
		t.Fatal(err)
	}
	var j api.Job
	if err := c.Do(ctx, http.MethodPost, gc, nil, struct{}{}, &j); err != nil {
		t.Fatal(err)
	}
	list, err := srv.Client.ListJobs(ctx, api.JobFilter{Kind: api.JobGC}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var firstTry api.Job
	if answers := lost(); len(answers) != 1 || json.Unmarshal(answers[0], &firstTry) != nil || firstTry.ID != j.ID ||
		len(list.Items) != 1 || list.Items[0].ID != j.ID {
		t.Fatalf("after a try with a lost answer (%d lost): %d GC jobs (%+v), answered %s, first try made %s",
			len(answers), len(list.Items), list.Items, j.ID, firstTry.ID)
	}
}

// answerLosingProxy fronts the server at target with a proxy that hands
// the first request lose picks to the server and then drops the
// connection, as a network failure after the server did the work would.
// It returns the proxy's endpoint and a function that gives the answers
// the server sent and the client never got.
func answerLosingProxy(t *testing.T, target string, lose func(*http.Request) bool) (endpoint string, lost func() [][]byte) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	var answers [][]byte
	front := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		drop := len(answers) == 0 && lose(r)
		mu.Unlock()
		if !drop {
			proxy.ServeHTTP(w, r)
			return
		}
		rec := &recorder{header: http.Header{}}
		proxy.ServeHTTP(rec, r) // the server does the work...
		mu.Lock()
		answers = append(answers, rec.body.Bytes())
		mu.Unlock()
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close() // ...and the answer is lost
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(l)
	t.Cleanup(func() { front.Close() })
	return "http://" + l.Addr().String(), func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(answers)
	}
}

// recorder is a ResponseWriter that keeps only the body.
type recorder struct {
	header http.Header
	body   bytes.Buffer
}

func (d *recorder) Header() http.Header         { return d.header }
func (d *recorder) Write(b []byte) (int, error) { return d.body.Write(b) }
func (d *recorder) WriteHeader(int)             {}

// TestTakenPortFailsBeforeAnythingStarts: a server whose address is taken
// fails at once, before it touches the database or starts job workers
// (which used to fill the log with "pool is closed" once it gave up).
func TestTakenPortFailsBeforeAnythingStarts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dbURL := testparts.PostgresURL(t)
	var logs strings.Builder
	_, err = server.Start(context.Background(), server.Config{Listen: l.Addr().String(), DataDir: t.TempDir(), DatabaseURL: dbURL, LogLevel: "debug"},
		server.NewLogger(&logs, "debug"))
	if err == nil || !strings.Contains(err.Error(), "--listen") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("starting on a taken port: %v", err)
	}
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE tablename IN ('jobs', 'river_job')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 || strings.Contains(logs.String(), "river") {
		t.Fatalf("the server set up its database or job queue before finding its port taken (%d tables); log:\n%s", tables, logs.String())
	}
}

// TestFailedJobIsSettledWhenItsLastWriteFails: the write that records a
// job's failure fails (here a trigger refuses it); the job still ends
// failed, from River's record, once the database takes writes again.
func TestFailedJobIsSettledWhenItsLastWriteFails(t *testing.T) {
	srv := servertest.StartWith(t, func(c *server.Config) { c.JobAttempts = 1; c.RescueAfter = time.Second })
	ctx := context.Background()
	sets := localFilesets(t, srv.Client, 1)
	stg, err := srv.Client.Storages().Get(ctx, "many")
	if err != nil {
		t.Fatal(err)
	}
	// The storage's directory becomes a file: the backup fails.
	if err := os.RemoveAll(stg.Path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stg.Path, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `
		CREATE FUNCTION refuse_failed() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.state = 'failed' THEN RAISE EXCEPTION 'the disk is full (test)'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse_failed BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_failed()`); err != nil {
		t.Fatal(err)
	}
	j, err := srv.Client.BackupNow(ctx, sets[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until River has given the job up.
	deadline := time.Now().Add(time.Minute)
	for {
		var state string
		err := conn.QueryRow(ctx, `SELECT r.state FROM river_job r JOIN jobs j ON j.river_job_id = r.id WHERE j.id = $1`, j.ID).Scan(&state)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if state == "cancelled" || state == "discarded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("River never finished the failing job (state %q)", state)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cur, _ := srv.Client.GetJob(ctx, j.ID); cur.State != api.JobRunning {
		t.Fatalf("with its failure unrecorded the job should still show running: %+v", cur)
	}
	if _, err := conn.Exec(ctx, `DROP TRIGGER refuse_failed ON jobs`); err != nil {
		t.Fatal(err)
	}
	got := waitJob(t, srv, j.ID)
	if got.State != api.JobFailed || got.Error == "" {
		t.Fatalf("the job whose failure could not be written: %+v", got)
	}
	// Its end is observed once, when it is settled (the worker, which
	// could not record it, did not).
	failed := map[string]string{"kind": api.JobBackup, "state": api.JobFailed}
	waitMetric(t, srv, "the settled job's duration", func(s scrape) bool { return s.observations("haven_job_duration_seconds", failed) > 0 })
	if n := scrapeMetrics(t, srv).observations("haven_job_duration_seconds", failed); n != 1 {
		t.Fatalf("durations observed for the one failed job: %d, want 1", n)
	}
}

// TestConcurrentBackupsNeverStarveTheServer runs more backups at once than
// there are workers and connections, on two replicas whose database URL
// allows four connections (pgx's default on a small host) with four job
// workers each: every backup finishes and both APIs answer throughout.
func TestConcurrentBackupsNeverStarveTheServer(t *testing.T) {
	u, err := url.Parse(testparts.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	dataDir := t.TempDir() // one admin token and master key for both
	var replicas []*servertest.Server
	for range 2 {
		replicas = append(replicas, servertest.Run(t, server.Config{Listen: "127.0.0.1:0", DataDir: dataDir, DatabaseURL: u.String(),
			LogLevel: "warn", JobWorkers: 4, LocalRoots: []string{"/"}}))
	}
	sets := localFilesets(t, replicas[0].Client, 12)

	// Probe both replicas while the backups run: readiness and an API read.
	stop := make(chan struct{})
	var probes sync.WaitGroup
	var failures []string
	var mu sync.Mutex
	probe := &http.Client{Timeout: 30 * time.Second}
	for _, r := range replicas {
		probes.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				for _, path := range []string{"/readyz", "/v1/jobs?limit=5"} {
					req, _ := http.NewRequest(http.MethodGet, r.URL+path, nil)
					req.Header.Set("Authorization", "Bearer "+r.AdminToken)
					res, err := probe.Do(req)
					status := 0
					if err == nil {
						status = res.StatusCode
						res.Body.Close()
					}
					if status != http.StatusOK {
						mu.Lock()
						failures = append(failures, fmt.Sprintf("GET %s%s: %d %v", r.URL, path, status, err))
						mu.Unlock()
					}
				}
			}
		})
	}
	var ids []string
	var wg sync.WaitGroup
	for i, set := range sets {
		wg.Go(func() {
			j, err := replicas[i%2].Client.BackupNow(context.Background(), set.ID)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids = append(ids, j.ID)
			mu.Unlock()
		})
	}
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, id := range ids {
		j, err := replicas[0].Client.WaitJob(ctx, id, 100*time.Millisecond)
		if err != nil || j.State != api.JobSucceeded {
			t.Errorf("backup %s: %v %+v", id, err, j)
		}
	}
	close(stop)
	probes.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d probes failed while the backups ran, the first: %s", len(failures), failures[0])
	}
}

// postJobWithKey POSTs body to a job-starting URL with an Idempotency-Key,
// as a client's retry would send it again, and returns the status and the
// job the answer holds (zero when it holds none).
func postJobWithKey(t *testing.T, url, token, key string, body []byte) (int, api.Job) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var j api.Job
	json.NewDecoder(res.Body).Decode(&j)
	return res.StatusCode, j
}

// backUpAndRecord records src's tree, backs up the fileset that protects
// it and waits for the backup to succeed; it returns the recorded tree,
// which the backup's point must restore to.
func backUpAndRecord(t *testing.T, srv *servertest.Server, setID, src string) map[string]string {
	t.Helper()
	state := treeState(t, src)
	j, err := srv.Client.BackupNow(context.Background(), setID)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitJob(t, srv, j.ID); j.State != api.JobSucceeded {
		t.Fatalf("backup of %s: %+v", src, j)
	}
	return state
}
