package files_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	enginefiles "github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/api/wire"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/driver/drivertest"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
)

// commitRecorder is the engine's point-commit path as the hub sees it:
// it records each session commit and commits it straight through the
// repository, ending the job in the same transaction as the real path
// does (the catalog's point row is the engine's, not the hub's, concern).
type commitRecorder struct {
	db      *db.DB
	mu      sync.Mutex
	commits []recordedCommit
}

type recordedCommit struct {
	driver.SessionCommit
	PointID string
}

func (r *commitRecorder) CommitSession(ctx context.Context, c driver.SessionCommit) (string, error) {
	pointID := uuid.NewString()
	err := c.Repository.CommitSession(ctx, c.SessionID, pointID, c.Root, func(tx pgx.Tx) ([]byte, error) {
		return nil, r.db.FinishJob(ctx, tx, c.JobID, api.JobSucceeded, "", pointID)
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commits = append(r.commits, recordedCommit{c, pointID})
	return pointID, err
}

func (r *commitRecorder) recorded() []recordedCommit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedCommit(nil), r.commits...)
}

// agentHost is an agent file server whose agent has activated and calls
// in, so the hub hands it work.
func (c *catalog) agentHost(t *testing.T, name string, restoreRoots ...string) string {
	t.Helper()
	ctx := context.Background()
	id := c.fileServer(t, name, api.OSLinux, api.LocationAgent, restoreRoots...)
	activation := []byte("activation of " + id)
	if _, err := c.DB.IssueActivation(ctx, id, false, func() (hash, sealed []byte) { return activation, []byte("sealed") }); err != nil {
		t.Fatal(err)
	}
	if got, err := c.DB.ActivateAgent(ctx, activation, []byte("credential of "+id), name); err != nil || got != id {
		t.Fatalf("activating the agent of %s: %q, %v", id, got, err)
	}
	return id
}

// runningJob records a job and starts it, as the queue does before the
// driver runs.
func (c *catalog) runningJob(t *testing.T, n db.NewJob) api.Job {
	t.Helper()
	ctx := context.Background()
	n.Trigger = api.TriggerOnDemand
	var queued api.Job
	err := c.DB.InTx(ctx, func(tx pgx.Tx) error {
		j, ok, err := c.DB.InsertJob(ctx, tx, n)
		if err == nil && !ok {
			err = fmt.Errorf("no new job: %+v stands for it", j)
		}
		queued = j
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	j, started, err := c.DB.StartJob(ctx, queued.ID)
	if err != nil || !started {
		t.Fatalf("starting job %s: %v", queued.ID, err)
	}
	return j
}

// agent plays a file server's agent process: it takes work from the hub
// and calls it as the agent's HTTP handlers would. It is a repo.Sink
// (deduplicating with Has, storing with Upload) and a repo.Source
// (Load), as the agent's own connection to the server is.
type agent struct {
	t    *testing.T
	hub  *files.Hub
	fsID string
	work *api.AgentWork
	hash *format.Hasher
}

// takeWork waits for the hub to hand the agent a job.
func takeWork(t *testing.T, hub *files.Hub, fsID string) *agent {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w, err := hub.Work(ctx, fsID, "agent-process-1", nil, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if w != nil {
			var key [32]byte
			copy(key[:], w.IDKey)
			return &agent{t: t, hub: hub, fsID: fsID, work: w, hash: format.NewHasher(key)}
		}
	}
	t.Fatal("the hub handed the agent no work")
	return nil
}

func (a *agent) Hash(data []byte) format.ID { return a.hash.Sum(data) }

func (a *agent) Save(ctx context.Context, t format.Type, ids []format.ID, chunks [][]byte) error {
	missing, err := a.missing(ctx, ids)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	for i, id := range ids {
		if missing[id] {
			body.Write(wire.AppendChunkFrame(nil, t, id, chunks[i]))
		}
	}
	_, err = a.hub.Upload(ctx, a.work.JobID, a.fsID, &body)
	return err
}

func (a *agent) missing(ctx context.Context, ids []format.ID) (map[format.ID]bool, error) {
	req := api.HasRequest{IDs: make([]string, len(ids))}
	for i, id := range ids {
		req.IDs[i] = id.String()
	}
	has, err := a.hub.Has(ctx, a.work.JobID, a.fsID, req)
	if err != nil {
		return nil, err
	}
	out := map[format.ID]bool{}
	for _, s := range has.Missing {
		id, err := format.ParseID(s)
		if err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, nil
}

// Load reads chunks through the hub, as the agent reads its load frames.
func (a *agent) Load(ctx context.Context, ids []format.ID, fn func(i int, data []byte) error) error {
	req := api.LoadRequest{IDs: make([]string, len(ids))}
	for i, id := range ids {
		req.IDs[i] = id.String()
	}
	var out bytes.Buffer
	if err := a.hub.Load(ctx, a.work.JobID, a.fsID, req, &out); err != nil {
		return err
	}
	return wire.ReadLoadFrames(&out, len(ids), func(i int, data []byte) error {
		if a.Hash(data) != ids[i] {
			return fmt.Errorf("the hub sent chunk %s at position %d, which does not hash to its id", ids[i].Short(), i)
		}
		return fn(i, data)
	})
}

// driverResult is what a driver's run returned, once it ends.
func driverResult(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the driver's run did not end after its agent's job did")
		return nil
	}
}

// TestHubWorkWakesOnDispatch: an agent's waiting Work call is handed a
// job as soon as this process dispatches it, not at its next poll (an
// hour here, so only the wake can hand it over in time).
func TestHubWorkWakesOnDispatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := t.TempDir()
	writeTree(t, src)
	c := newCatalog(t)
	web := c.agentHost(t, "web1")
	a := c.asset(t, c.fileset(t, "www", web, src))
	files.SetWorkPoll(c.Hub, time.Hour)
	handed := make(chan *api.AgentWork, 1)
	go func() {
		w, err := c.Hub.Work(ctx, web, "agent-process-1", nil, 2*time.Hour)
		if err != nil {
			t.Error(err)
		}
		handed <- w
	}()
	time.Sleep(200 * time.Millisecond) // the call has looked once, found nothing, and waits

	b := c.NewBackup(a)
	b.JobValue = c.runningJob(t, db.NewJob{Kind: api.JobBackup, AssetID: a.ID, StorageID: a.StorageID})
	done := make(chan error, 1)
	go func() { done <- c.Agent.Backup(ctx, b) }()
	select {
	case w := <-handed:
		if w == nil || w.JobID != b.JobValue.ID {
			t.Fatalf("the waiting Work call returned %+v; want job %s", w, b.JobValue.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiting Work call was not woken when the job was dispatched")
	}
	cancel()
	<-done
}

// A backup of an agent's fileset: the driver dispatches it, the agent
// takes it, deduplicates and uploads through the hub (which checks every
// chunk against its id) and completes it; the hub commits the point once,
// full, then incremental on the first.
func TestHubBackupThroughTheAgent(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src)
	c := newCatalog(t)
	web := c.agentHost(t, "web1")
	a := c.asset(t, c.fileset(t, "www", web, src))

	// The driver's side runs until the agent's point is committed.
	backup := func(parent api.Point) (*drivertest.Backup, chan error) {
		b := c.NewBackup(a)
		b.JobValue = c.runningJob(t, db.NewJob{Kind: api.JobBackup, AssetID: a.ID, StorageID: a.StorageID})
		b.Parent = parent
		done := make(chan error, 1)
		go func() { done <- c.Agent.Backup(ctx, b) }()
		return b, done
	}
	b, done := backup(api.Point{})
	ag := takeWork(t, c.Hub, web)
	if ag.work.JobID != b.JobValue.ID || ag.work.Kind != api.JobBackup || len(ag.work.IncludePaths) != 1 || ag.work.IncludePaths[0] != src || ag.work.ParentRoot != "" {
		t.Fatalf("the agent was handed %+v; want a full backup of %s for job %s", ag.work, src, b.JobValue.ID)
	}
	job := ag.work.JobID

	// Has names what the repository lacks; Upload stores a valid chunk.
	data := make([]byte, 5000)
	rand.Read(data)
	id := ag.Hash(data)
	if has, err := c.Hub.Has(ctx, job, web, api.HasRequest{IDs: []string{id.String()}}); err != nil || len(has.Missing) != 1 || has.Missing[0] != id.String() {
		t.Fatalf("Has of a new chunk: %+v, %v; want it missing", has, err)
	}
	if n, err := c.Hub.Upload(ctx, job, web, bytes.NewReader(wire.AppendChunkFrame(nil, format.Data, id, data))); err != nil || n != 1 {
		t.Fatalf("uploading one chunk: %d stored, %v", n, err)
	}
	if has, err := c.Hub.Has(ctx, job, web, api.HasRequest{IDs: []string{id.String()}}); err != nil || len(has.Missing) != 0 {
		t.Fatalf("Has of an uploaded chunk: %+v, %v; want it present", has, err)
	}
	if newBytes, stored, err := c.DB.StoredBytes(ctx, c.DB.Pool, job); err != nil || newBytes < int64(len(data)) || stored == 0 {
		t.Errorf("the job counts %d new and %d stored bytes (%v); want the chunk's %d at least", newBytes, stored, err, len(data))
	}
	// The job is this agent's alone.
	_, err := c.Hub.Has(ctx, job, c.agentHost(t, "web2"), api.HasRequest{IDs: []string{id.String()}})
	apiError(t, err, http.StatusConflict, "")

	// Chunks that do not hash to their ids, and cut frames, are refused.
	other := append([]byte("tampered "), data...)
	frame := wire.AppendChunkFrame(nil, format.Data, id, other)
	for _, tc := range []struct {
		name, body, says string
	}{
		{"a chunk that does not hash to its id", string(frame), "does not hash to its id"},
		{"a cut header", string(frame[:10]), wire.ErrTruncatedHeader.Error()},
		{"cut data", string(frame[:len(frame)-1]), wire.ErrTruncatedData.Error()},
	} {
		_, err := c.Hub.Upload(ctx, job, web, strings.NewReader(tc.body))
		if e := apiError(t, err, http.StatusBadRequest, "body"); !strings.Contains(e.Message, tc.says) {
			t.Errorf("uploading %s: %q does not say %q", tc.name, e.Message, tc.says)
		}
		if has, err := c.Hub.Has(ctx, job, web, api.HasRequest{IDs: []string{ag.Hash(other).String()}}); err != nil || len(has.Missing) != 1 {
			t.Errorf("after uploading %s, Has of the tampered data: %+v, %v; want it missing", tc.name, has, err)
		}
	}

	// The agent captures the fileset through the hub.
	root, stats, err := enginefiles.Capture(ctx, ag, ag, enginefiles.CaptureOptions{Paths: ag.work.IncludePaths})
	if err != nil {
		t.Fatalf("capture through the hub: %v", err)
	}

	// With no parent, a full backup's agent has nothing to read.
	err = c.Hub.Load(ctx, job, web, api.LoadRequest{IDs: []string{root.String()}}, io.Discard)
	apiError(t, err, http.StatusForbidden, "ids[0]")

	err = c.Hub.Complete(ctx, job, web, api.AgentComplete{Root: "not-a-root"})
	apiError(t, err, http.StatusBadRequest, "root")
	var missingRoot format.ID
	rand.Read(missingRoot[:])
	err = c.Hub.Complete(ctx, job, web, api.AgentComplete{Root: missingRoot.String()})
	apiError(t, err, http.StatusUnprocessableEntity, "root")
	if n := len(c.Commits.recorded()); n != 1 {
		t.Fatalf("after an unparseable and a missing root, %d commits; want only the refused one", n)
	}
	// The refused commit failed the attempt: the driver gives up on it.
	if err := driverResult(t, done); err == nil {
		t.Fatal("the backup succeeded though its point was refused")
	}
	if err := c.DB.FinishJob(ctx, c.DB.Pool, job, api.JobFailed, "refused", ""); err != nil {
		t.Fatal(err)
	}

	// The next attempt commits.
	b, done = backup(api.Point{})
	ag = takeWork(t, c.Hub, web)
	root, stats, err = enginefiles.Capture(ctx, ag, ag, enginefiles.CaptureOptions{Paths: ag.work.IncludePaths})
	if err != nil {
		t.Fatalf("capture through the hub: %v", err)
	}
	progress := api.JobProgress{FilesDone: stats.Files, BytesDone: stats.Bytes}
	if err := c.Hub.Complete(ctx, ag.work.JobID, web, api.AgentComplete{Root: root.String(), Progress: progress}); err != nil {
		t.Fatalf("completing the backup: %v", err)
	}
	if err := driverResult(t, done); err != nil {
		t.Fatalf("the driver's backup: %v", err)
	}
	commits := c.Commits.recorded()
	full := commits[len(commits)-1]
	if len(commits) != 2 || full.JobID != b.JobValue.ID || full.StorageID != c.StorageID || full.Plan.Kind != api.BackupFull ||
		full.Plan.ParentPoint != "" || full.Root != root || full.Stats.Files != stats.Files || full.Stats.LogicalBytes != stats.Bytes {
		t.Fatalf("commits %+v; want a second one, full, of root %s for job %s with %d files", commits, root, b.JobValue.ID, stats.Files)
	}

	// An incremental: the agent reads its parent through the hub (and only
	// that), and the hub commits on the parent.
	fullRoot := root
	_, done = backup(api.Point{ID: full.PointID})
	ag = takeWork(t, c.Hub, web)
	if ag.work.ParentRoot != fullRoot.String() {
		t.Fatalf("the incremental's agent builds on %q, want %s", ag.work.ParentRoot, fullRoot)
	}
	root, stats, err = enginefiles.Capture(ctx, ag, ag, enginefiles.CaptureOptions{Paths: ag.work.IncludePaths, Parent: fullRoot})
	if err != nil {
		t.Fatalf("incremental capture through the hub: %v", err)
	}
	if stats.Reused == 0 {
		t.Error("the incremental reused nothing of its parent")
	}
	if err := c.Hub.Complete(ctx, ag.work.JobID, web, api.AgentComplete{Root: root.String()}); err != nil {
		t.Fatalf("completing the incremental: %v", err)
	}
	if err := driverResult(t, done); err != nil {
		t.Fatalf("the driver's incremental backup: %v", err)
	}
	commits = c.Commits.recorded()
	incr := commits[len(commits)-1]
	if len(commits) != 3 || incr.Plan.Kind != api.BackupIncremental || incr.Plan.ParentPoint != full.PointID {
		t.Fatalf("the incremental was committed as %+v, want incremental on %s", incr.Plan, full.PointID)
	}
}

// A restore onto an agent's host: the agent reads the point's chunks
// through the hub, and no chunk of any other point of the storage.
func TestHubRestoreThroughTheAgent(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	c := newCatalog(t, base)
	host := c.fileServer(t, "haven-host", api.OSLinux, api.LocationServer)
	web := c.agentHost(t, "web1", "/restores")
	var backups []*drivertest.Backup
	for _, name := range []string{"mine", "other"} {
		src := filepath.Join(base, name)
		writeTree(t, src)
		if err := os.WriteFile(filepath.Join(src, "only-"+name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
		b := c.NewBackup(c.asset(t, c.fileset(t, name, host, src)))
		if err := c.Local.Backup(ctx, b); err != nil {
			t.Fatal(err)
		}
		backups = append(backups, b)
	}
	mine, other := backups[0], backups[1]

	run := c.NewRestore(mine, driver.RestoreParams{RestoreRequest: api.RestoreRequest{TargetFileServerID: web, TargetPath: "/restores/x"},
		TargetLocation: api.LocationAgent})
	run.JobValue = c.runningJob(t, db.NewJob{Kind: api.JobRestore, AssetID: mine.AssetVal.ID, StorageID: c.StorageID, PointID: mine.Committed.ID})
	done := make(chan error, 1)
	go func() { done <- c.Local.Restore(ctx, run) }()
	ag := takeWork(t, c.Hub, web)
	if ag.work.Kind != api.JobRestore || ag.work.Root != mine.Root.String() || ag.work.TargetPath != "/restores/x" {
		t.Fatalf("the agent was handed %+v; want a restore of root %s to /restores/x", ag.work, mine.Root)
	}

	r := c.Repository(t)
	mineChunks, err := r.PointChunks(ctx, mine.Root)
	if err != nil {
		t.Fatal(err)
	}
	otherChunks, err := r.PointChunks(ctx, other.Root)
	if err != nil {
		t.Fatal(err)
	}
	var ids []format.ID
	for id := range mineChunks {
		ids = append(ids, id)
	}
	loaded := 0
	if err := ag.Load(ctx, ids, func(int, []byte) error { loaded++; return nil }); err != nil || loaded != len(ids) {
		t.Fatalf("loading the point's %d chunks: %d loaded, %v", len(ids), loaded, err)
	}
	var foreign format.ID
	for id := range otherChunks {
		if !mineChunks[id] {
			foreign = id
		}
	}
	if foreign.IsZero() {
		t.Fatal("the other point has no chunk of its own")
	}
	err = ag.Load(ctx, []format.ID{ids[0], foreign}, func(int, []byte) error { return nil })
	apiError(t, err, http.StatusForbidden, "ids[1]")

	if err := c.Hub.Complete(ctx, ag.work.JobID, web, api.AgentComplete{}); err != nil {
		t.Fatalf("completing the restore: %v", err)
	}
	if err := driverResult(t, done); err != nil {
		t.Fatalf("the driver's restore: %v", err)
	}
	if j, err := c.DB.GetJob(ctx, run.JobValue.ID); err != nil || j.State != api.JobSucceeded {
		t.Errorf("the restore job is %+v, %v; want succeeded", j.State, err)
	}
	if n := len(c.Commits.recorded()); n != 0 {
		t.Errorf("a restore committed %d points", n)
	}
}
