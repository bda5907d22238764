package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/broadcast"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/api/wire"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/repos"
)

// Hub dispatches jobs of agent file servers and serves the agents' calls
// for them. Everything it needs lives in the job row (the dispatch, the
// backup session id), so an agent may talk to any replica while the job's
// worker runs on another.
type Hub struct {
	db     *db.DB
	repos  *repos.Cache
	commit driver.Committer
	now    func() time.Time
	// offlineAfter is how long an agent may be silent and still count as
	// online.
	offlineAfter time.Duration

	// readable caches, per job attempt, the chunks its agent may load (the tree of
	// the point it restores or of its backup's parent); any replica can
	// rebuild it, so losing it costs only time.
	readableMu sync.Mutex
	readable   map[string]map[format.ID]bool

	// extensions serve the agent jobs of other workloads, by
	// db.Dispatch.Workload; set before the hub serves.
	extensions map[string]Extension

	// dispatched wakes the agents' waiting Work calls when this process
	// hands a job to an agent, so that the agent takes it at once rather
	// than at its call's next poll (up to 250 ms later, on every agent
	// job). A job dispatched by another replica is found by the poll.
	dispatched broadcast.Signal
	// workPoll is how often a waiting Work call looks for a job
	// dispatched by another replica.
	workPoll time.Duration
}

// Extension is another workload's part in the agent jobs the hub hands
// out (databases on an agent's host): the hub keeps the protocol, the
// sessions and the commit; the extension fills in its workload's work
// and reads what the agent reports.
type Extension interface {
	// Work completes the work handed to an agent from the job's dispatch
	// (secrets are never stored in the job row: they are added here).
	Work(ctx context.Context, jobID string, dsp db.Dispatch, w *api.AgentWork) error
	// Completed reads a backup's report into the point to commit: its
	// plan (kind, parent) and stats. An error refuses the report.
	Completed(ctx context.Context, jobID string, dsp db.Dispatch, c api.AgentComplete, plan *driver.Plan, st *driver.PointStats) error
	// Restored records what a restore's report says besides its
	// progress, before the job shows as succeeded.
	Restored(ctx context.Context, jobID string, dsp db.Dispatch, c api.AgentComplete) error
}

// Extend registers the extension of a workload.
func (h *Hub) Extend(workload string, e Extension) {
	if h.extensions == nil {
		h.extensions = map[string]Extension{}
	}
	h.extensions[workload] = e
}

func (h *Hub) extension(dsp db.Dispatch) (Extension, error) {
	if dsp.Workload == "" {
		return nil, nil
	}
	e, ok := h.extensions[dsp.Workload]
	if !ok {
		return nil, fmt.Errorf("no hub extension serves workload %q", dsp.Workload)
	}
	return e, nil
}

// NewHub returns the hub. Points of agents' backups are committed through
// commit; a commit that also signals jobs' ends (JobEnded, as the job
// service does) wakes the watch of an agent's job as its end is recorded.
// offlineAfter zero is db.AgentOfflineAfter.
func NewHub(d *db.DB, rc *repos.Cache, commit driver.Committer, now func() time.Time, offlineAfter time.Duration) *Hub {
	if offlineAfter <= 0 {
		offlineAfter = db.AgentOfflineAfter
	}
	return &Hub{db: d, repos: rc, commit: commit, now: now, offlineAfter: offlineAfter, readable: map[string]map[format.ID]bool{},
		workPoll: 250 * time.Millisecond}
}

// maxReadableCached bounds the jobs whose readable sets stay cached.
const maxReadableCached = 16

// readableChunks is what a job's agent may load: the chunks of the point
// the job restores, or of the parent its backup builds on; nothing of any
// other point, even in the same storage.
func (h *Hub) readableChunks(ctx context.Context, jobID string, dsp db.Dispatch, r *repo.Repository) (map[format.ID]bool, error) {
	roots := append([]string{dsp.Root}, dsp.Roots...)
	if dsp.Kind == api.JobBackup {
		roots = []string{dsp.ParentRoot}
	}
	// A retried attempt may build on another parent.
	key := jobID + "/" + strings.Join(roots, ",")
	h.readableMu.Lock()
	set, ok := h.readable[key]
	h.readableMu.Unlock()
	if ok {
		return set, nil
	}
	set = map[format.ID]bool{}
	for _, root := range roots {
		if root == "" {
			continue
		}
		id, err := format.ParseID(root)
		if err != nil {
			return nil, err
		}
		chunks, err := r.PointChunks(ctx, id)
		if err != nil {
			return nil, err
		}
		maps.Copy(set, chunks)
	}
	h.readableMu.Lock()
	if len(h.readable) >= maxReadableCached {
		clear(h.readable)
	}
	h.readable[key] = set
	h.readableMu.Unlock()
	return set, nil
}

// Online tells whether the agent of a file server is online.
func (h *Hub) Online(ctx context.Context, fileServerID string) bool {
	return h.online(ctx, fileServerID)
}

func (h *Hub) online(ctx context.Context, fileServerID string) bool {
	status, _ := h.db.AgentStatus(ctx, fileServerID, h.offlineAfter)
	return status == "online"
}

// backup hands a backup to the file server's agent: it opens the session
// (so GC protects the agent's uploads and its parent), records the
// dispatch, and watches until the agent completes or fails, or goes away.
// While the agent is offline the job waits in the queue.
func (h *Hub) backup(ctx context.Context, b driver.Backup) error {
	fs := FilesetOf(b.Asset())
	plan, err := b.Plan(ctx)
	if err != nil {
		return err
	}
	return h.BackupOn(ctx, b, fs.Server.ID, fs.Server.Name, plan,
		db.Dispatch{Include: fs.Fileset.IncludePaths, Exclude: fs.Fileset.ExcludeGlobs})
}

// BackupOn hands a backup to the agent of a file server: dsp says what
// to capture (the hub fills in the kind, the session, the parent and the
// start), plan what it builds on. It returns once the agent's point is
// committed, or the attempt failed; while the agent is offline the job
// waits in the queue.
func (h *Hub) BackupOn(ctx context.Context, b driver.Backup, fileServerID, fileServerName string, plan driver.Plan, dsp db.Dispatch) error {
	j, a := b.Job(), b.Asset()
	if !h.online(ctx, fileServerID) {
		return driver.Wait{Reason: fmt.Sprintf("waiting for the agent of file server %q to come online", fileServerName), After: 3 * time.Second}
	}
	r, err := h.repos.Open(ctx, a.StorageID, nil)
	if err != nil {
		return err
	}
	sessionID, err := r.BeginSession(ctx, plan.ParentPoint)
	if errors.Is(err, repo.ErrParentGone) {
		plan = driver.Plan{Kind: api.BackupFull}
		sessionID, err = r.BeginSession(ctx, "")
	}
	if err != nil {
		return err
	}
	dsp.Kind, dsp.StorageID, dsp.SessionID, dsp.ParentPoint = api.JobBackup, a.StorageID, sessionID, plan.ParentPoint
	dsp.StartedAt = h.now().UTC().Format(time.RFC3339Nano)
	if dsp.PointKind == "" {
		dsp.PointKind = plan.Kind
	}
	if h.repos.UploadLimiter(j, &a.Policy) != nil {
		dsp.CapPolicyID = a.Policy.ID
	}
	if !plan.ParentRoot.IsZero() {
		dsp.ParentRoot = plan.ParentRoot.String()
	}
	if err := h.dispatch(ctx, j.ID, fileServerID, dsp); err != nil {
		_ = r.EndSession(context.WithoutCancel(ctx), sessionID)
		return err
	}
	return h.watch(ctx, j.ID, fileServerID, func() error { return r.Heartbeat(ctx, sessionID) },
		func() { _ = r.EndSession(context.WithoutCancel(ctx), sessionID) })
}

// restore hands a restore (kind restore), or its dry run (restore_plan),
// to the target file server's agent.
func (h *Hub) restore(ctx context.Context, run driver.Restore, kind string) error {
	p, pt, j := run.Params(), run.Point(), run.Job()
	root, err := run.Root(ctx)
	if err != nil {
		return err
	}
	dsp := db.Dispatch{Kind: kind, StorageID: pt.StorageID, PointID: pt.ID, Root: root.String(), Target: targetDir(p.RestoreRequest),
		Paths: p.Paths, Conflict: p.Conflict, Resume: kind == api.JobRestore && j.Attempt > 1, RestoreInclude: p.Include, RestoreExclude: p.Exclude}
	totals := restoreTotals(p.RestoreRequest, pt)
	dsp.FilesTotal, dsp.BytesTotal = totals.files, totals.bytes
	return h.RestoreOn(ctx, run, p.TargetFileServerID, dsp)
}

// RestoreOn hands a restore (or its dry run) to the agent of a file
// server, as dsp says, and returns once the agent ended it.
func (h *Hub) RestoreOn(ctx context.Context, run driver.Restore, fileServerID string, dsp db.Dispatch) error {
	j := run.Job()
	if !h.online(ctx, fileServerID) {
		return driver.Wait{Reason: "waiting for the target file server's agent to come online", After: 3 * time.Second}
	}
	heartbeat := func() error { return nil }
	if dsp.SessionID != "" {
		// The restore uploads too (a database's tail-log backup).
		r, err := h.repos.Open(ctx, dsp.StorageID, nil)
		if err != nil {
			return err
		}
		heartbeat = func() error { return r.Heartbeat(ctx, dsp.SessionID) }
	}
	if err := h.dispatch(ctx, j.ID, fileServerID, dsp); err != nil {
		return err
	}
	return h.watch(ctx, j.ID, fileServerID, heartbeat, func() {})
}

// Tail commits the log point a restore's agent took of a database's WAL
// before replacing its data directory (see api.AgentTail); the restore
// goes on.
func (h *Hub) Tail(ctx context.Context, jobID, fileServerID string, t api.AgentTail) (*api.AgentTailed, error) {
	dsp, err := h.job(ctx, jobID, fileServerID)
	if err != nil {
		return nil, err
	}
	ext, err := h.extension(dsp)
	if err != nil {
		return nil, err
	}
	if dsp.Kind != api.JobRestore || dsp.SessionID == "" || ext == nil {
		return nil, api.Unprocessable("", "the job takes no tail-log backup")
	}
	root, err := format.ParseID(t.Root)
	if err != nil {
		return nil, api.FieldError("root", "%v", err)
	}
	r, err := h.repos.Open(ctx, dsp.StorageID, nil)
	if err != nil {
		return nil, err
	}
	plan := driver.Plan{Kind: api.BackupLog}
	stats := driver.PointStats{Started: h.now(), LogicalBytes: t.Progress.BytesDone, Files: t.Progress.FilesDone}
	if err := ext.Completed(ctx, jobID, dsp, api.AgentComplete{Root: t.Root, Database: t.Database}, &plan, &stats); err != nil {
		return nil, err
	}
	id, err := h.commit.CommitSession(ctx, driver.SessionCommit{JobID: jobID, StorageID: dsp.StorageID, Repository: r,
		SessionID: dsp.SessionID, Plan: plan, Root: root, Stats: stats, KeepJob: true,
		StoredBytes: func(ctx context.Context, q db.Querier) (int64, int64, error) { return h.db.StoredBytes(ctx, q, jobID) },
	})
	if errors.Is(err, repo.ErrPointIncomplete) {
		return nil, api.Unprocessable("root", "refused to commit the tail-log backup: %v", err)
	}
	if err != nil {
		return nil, err
	}
	return &api.AgentTailed{PointID: id}, nil
}

// dispatch hands a job to a file server's agent and wakes this process's
// waiting Work calls to take it.
func (h *Hub) dispatch(ctx context.Context, jobID, fileServerID string, dsp db.Dispatch) error {
	if err := h.db.DispatchJob(ctx, jobID, fileServerID, dsp); err != nil {
		return err
	}
	h.dispatched.Fire()
	return nil
}

// watch follows a dispatched job until the agent ends it.
func (h *Hub) watch(ctx context.Context, jobID, fileServerID string, heartbeat func() error, abandon func()) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastBeat := time.Now()
	giveUp := func(err error) error {
		abandon()
		_ = h.db.ClearDispatch(context.WithoutCancel(ctx), jobID)
		return err
	}
	// The agent's completion is committed by this process: the watch wakes
	// as it is, so that the job's worker lets go of the asset's locks as
	// the job is seen to end, not up to a tick later (a backup asked for
	// right after found its asset still busy). The signal is taken before
	// each read of the job, so that an end between the two is not missed.
	jobEnded := func() <-chan struct{} { return nil }
	if e, ok := h.commit.(interface{ JobEnded() <-chan struct{} }); ok {
		jobEnded = e.JobEnded
	}
	ended := jobEnded()
	for {
		select {
		case <-ctx.Done():
			return giveUp(ctx.Err())
		case <-tick.C:
		case <-ended:
		}
		ended = jobEnded()
		state, agentErr, claimed, err := h.db.AgentJobState(ctx, jobID)
		if err != nil {
			return giveUp(err)
		}
		switch {
		case state != api.JobRunning:
			return nil // completed by the agent's call, or canceled
		case agentErr != "":
			return giveUp(errors.New(agentErr))
		case !h.online(ctx, fileServerID):
			if claimed {
				return giveUp(errors.New("the agent stopped answering during the job"))
			}
			return giveUp(driver.Wait{Reason: "the agent went offline before taking the job", After: 3 * time.Second})
		}
		if time.Since(lastBeat) > repo.SessionTimeout/5 {
			if err := heartbeat(); err != nil {
				return giveUp(err)
			}
			lastBeat = time.Now()
		}
	}
}

// Work gives an agent process its next job, waiting up to wait for one.
// running lists the jobs the process is working on: a job it claimed but
// no longer runs (it gave up reporting the end) is handed to it again
// rather than left running on the server for good.
func (h *Hub) Work(ctx context.Context, fileServerID, instance string, running []string, wait time.Duration) (*api.AgentWork, error) {
	deadline := time.Now().Add(wait)
	for {
		dispatched := h.dispatched.Next() // before the claim: a dispatch after it wakes the wait
		id, dsp, ok, err := h.db.ClaimWork(ctx, fileServerID, instance, running)
		if err != nil {
			return nil, err
		}
		if ok {
			return h.workFor(ctx, id, dsp)
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-time.After(h.workPoll):
		case <-dispatched:
		}
		if _, err := h.db.AgentCallInByFS(ctx, fileServerID); err != nil {
			return nil, err
		}
	}
}

func (h *Hub) workFor(ctx context.Context, jobID string, dsp db.Dispatch) (*api.AgentWork, error) {
	// Every kind needs the id key: a backup names and deduplicates chunks
	// with it, a restore (and its dry run) checks the chunks it reads
	// against the point's ids.
	r, err := h.repos.Open(ctx, dsp.StorageID, nil)
	if err != nil {
		return nil, err
	}
	key := r.IDKey()
	w := &api.AgentWork{JobID: jobID, Kind: dsp.Kind, IDKey: key[:]}
	switch dsp.Kind {
	case api.JobBackup:
		w.IncludePaths, w.ExcludeGlobs, w.ParentRoot = dsp.Include, dsp.Exclude, dsp.ParentRoot
	case api.JobRestore, api.JobRestorePlan:
		w.Root, w.TargetPath, w.Paths, w.Conflict, w.Resume = dsp.Root, dsp.Target, dsp.Paths, dsp.Conflict, dsp.Resume
		w.RestoreInclude, w.RestoreExclude = dsp.RestoreInclude, dsp.RestoreExclude
	}
	ext, err := h.extension(dsp)
	if err != nil || ext == nil {
		return w, err
	}
	return w, ext.Work(ctx, jobID, dsp, w)
}

func parseIDs(hexIDs []string) ([]format.ID, error) {
	ids := make([]format.ID, len(hexIDs))
	for i, s := range hexIDs {
		id, err := format.ParseID(s)
		if err != nil {
			return nil, api.FieldError(fmt.Sprintf("ids[%d]", i), "%v", err)
		}
		ids[i] = id
	}
	return ids, nil
}

func (h *Hub) job(ctx context.Context, jobID, fileServerID string) (db.Dispatch, error) {
	dsp, err := h.db.AgentJob(ctx, jobID, fileServerID)
	if errors.Is(err, db.ErrNotFound) {
		return dsp, &api.Error{Code: api.CodeConflict, Status: 409, Message: "the job is not running on this agent (finished, canceled or taken back)"}
	}
	return dsp, err
}

// Has tells an agent which chunks the repository lacks (and touches those
// it has, protecting them for the job's session).
func (h *Hub) Has(ctx context.Context, jobID, fileServerID string, req api.HasRequest) (*api.HasResponse, error) {
	dsp, err := h.job(ctx, jobID, fileServerID)
	if err != nil {
		return nil, err
	}
	ids, err := parseIDs(req.IDs)
	if err != nil {
		return nil, err
	}
	r, err := h.repos.Open(ctx, dsp.StorageID, nil)
	if err != nil {
		return nil, err
	}
	found, err := r.Has(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := &api.HasResponse{Missing: []string{}}
	for i, id := range ids {
		if !found[id] {
			out.Missing = append(out.Missing, req.IDs[i])
		}
	}
	return out, nil
}

// MaxUpload bounds one chunk upload request.
const MaxUpload = wire.MaxUploadBody

// Upload stores the chunks of one request: each is checked against its id,
// sealed and packed, and the packs are stored and indexed before the call
// returns, so an acknowledged upload survives any crash and an interrupted
// backup resumes by deduplicating against it.
func (h *Hub) Upload(ctx context.Context, jobID, fileServerID string, body io.Reader) (int, error) {
	dsp, err := h.job(ctx, jobID, fileServerID)
	if err != nil {
		return 0, err
	}
	limiter, err := h.repos.PolicyLimiter(ctx, dsp.CapPolicyID)
	if err != nil {
		return 0, err
	}
	r, err := h.repos.Open(ctx, dsp.StorageID, limiter)
	if err != nil {
		return 0, err
	}
	w := r.JoinSession(ctx, dsp.SessionID)
	n, err := saveFrames(ctx, r, w, wire.NewChunkFrameReader(body))
	if err != nil {
		w.Abort(ctx)
		return n, err
	}
	if err := w.Flush(ctx); err != nil {
		return n, err
	}
	st := w.Stats()
	return n, h.db.AddStored(ctx, jobID, st.NewBytes, st.StoredBytes)
}

// Frames of one upload are checked and saved by one worker per core, each
// saving a group of up to saveGroupBytes (or saveGroupChunks) at a time:
// checking an id is a BLAKE3 of the chunk and saving compresses and seals
// it, so one goroutine per request left a core idle with the agent's two
// uploads in flight, and a Save per chunk cost an index round trip per
// chunk. Memory stays bounded: a group per worker plus a few frames read
// ahead.
const (
	saveGroupBytes  = 4 << 20
	saveGroupChunks = 64
)

// saveFrames reads every frame of an upload, checks that each chunk
// hashes to its id, and saves it into w. It returns how many chunks were
// saved, or the first error: a malformed frame or a chunk that does not
// match its id is a field error on the body.
func saveFrames(ctx context.Context, r *repo.Repository, w *repo.Writer, frames *wire.ChunkFrameReader) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan wire.ChunkFrame, 4)
	g.Go(func() error {
		defer close(next)
		for {
			c, err := frames.Next()
			if err == io.EOF {
				return nil
			} else if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					return err // the handler answers 413
				}
				return api.FieldError("body", "%v", err)
			}
			select {
			case next <- c:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})
	var saved atomic.Int64
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			var (
				types  []format.Type
				ids    []format.ID
				chunks [][]byte
				bytes  int
			)
			save := func() error {
				// Save takes one type per call; an upload is nearly
				// always all data chunks, with a manifest chunk or two.
				for start := 0; start < len(ids); {
					end := start + 1
					for end < len(ids) && types[end] == types[start] {
						end++
					}
					if err := w.Save(gctx, types[start], ids[start:end], chunks[start:end]); err != nil {
						return err
					}
					start = end
				}
				saved.Add(int64(len(ids)))
				types, ids, chunks, bytes = types[:0], ids[:0], chunks[:0], 0
				return nil
			}
			for c := range next {
				if r.Hash(c.Data) != c.ID {
					return api.FieldError("body", "chunk %s does not hash to its id", c.ID.Short())
				}
				types, ids, chunks = append(types, c.Type), append(ids, c.ID), append(chunks, c.Data)
				if bytes += len(c.Data); bytes >= saveGroupBytes || len(ids) >= saveGroupChunks {
					if err := save(); err != nil {
						return err
					}
				}
			}
			return save()
		})
	}
	err := g.Wait()
	return int(saved.Load()), err
}

// Load streams chunks' plaintext to a restoring agent as frames of
// position, length and data.
func (h *Hub) Load(ctx context.Context, jobID, fileServerID string, req api.LoadRequest, out io.Writer) error {
	dsp, err := h.job(ctx, jobID, fileServerID)
	if err != nil {
		return err
	}
	ids, err := parseIDs(req.IDs)
	if err != nil {
		return err
	}
	r, err := h.repos.Open(ctx, dsp.StorageID, nil)
	if err != nil {
		return err
	}
	readable, err := h.readableChunks(ctx, jobID, dsp, r)
	if err != nil {
		return err
	}
	for i, id := range ids {
		if !readable[id] {
			return &api.Error{Code: api.CodeForbidden, Status: 403, Field: fmt.Sprintf("ids[%d]", i),
				Message: fmt.Sprintf("chunk %s is not part of the point this job reads", req.IDs[i])}
		}
	}
	var mu sync.Mutex
	err = r.Load(ctx, ids, func(i int, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		return wire.WriteLoadFrame(out, i, data)
	})
	if errors.Is(err, repo.ErrChunkMissing) {
		// An id the storage never held is the request's fault, not the server's.
		return api.Unprocessable("ids", "%v: the storage holds no such chunk", err)
	}
	return err
}

// Progress records an agent's progress.
func (h *Hub) Progress(ctx context.Context, jobID, fileServerID string, p api.AgentProgress) error {
	dsp, err := h.job(ctx, jobID, fileServerID)
	if err != nil {
		return err
	}
	if err := h.db.SetProgress(ctx, jobID, withRestoreTotals(dsp, p.Progress, false)); err != nil {
		return err
	}
	return h.db.AddWarnings(ctx, jobID, p.Warnings)
}

// Complete ends an agent's job: a backup's point is committed (root,
// catalog row and job success in one transaction).
func (h *Hub) Complete(ctx context.Context, jobID, fileServerID string, c api.AgentComplete) error {
	dsp, err := h.job(ctx, jobID, fileServerID)
	if err != nil {
		return err
	}
	if err := h.db.AddWarnings(ctx, jobID, c.Warnings); err != nil {
		return err
	}
	if err := h.db.SetProgress(ctx, jobID, withRestoreTotals(dsp, c.Progress, true)); err != nil {
		return err
	}
	switch dsp.Kind {
	case api.JobRestore:
		if ext, err := h.extension(dsp); err != nil {
			return err
		} else if ext != nil {
			if err := ext.Restored(ctx, jobID, dsp, c); err != nil {
				return err
			}
		}
		return h.db.FinishJob(ctx, h.db.Pool, jobID, api.JobSucceeded, "", dsp.PointID)
	case api.JobRestorePlan:
		if c.Plan == nil {
			return api.FieldError("plan", "is required to complete a restore_plan job")
		}
		plan := *c.Plan
		plan.PointID = dsp.PointID
		_, err := h.db.FinishPlanJob(ctx, jobID, plan)
		return err
	}
	if c.Skipped != "" && c.Root == "" {
		// Nothing to back up: no point; the session ends with the job.
		if r, err := h.repos.Open(ctx, dsp.StorageID, nil); err == nil {
			_ = r.EndSession(context.WithoutCancel(ctx), dsp.SessionID)
		}
		return h.db.FinishJob(ctx, h.db.Pool, jobID, api.JobSkipped, c.Skipped, "")
	}
	root, err := format.ParseID(c.Root)
	if err != nil {
		return api.FieldError("root", "%v", err)
	}
	r, err := h.repos.Open(ctx, dsp.StorageID, nil)
	if err != nil {
		return err
	}
	started, _ := time.Parse(time.RFC3339Nano, dsp.StartedAt)
	plan := driver.Plan{Kind: api.BackupFull}
	if dsp.ParentPoint != "" {
		plan = driver.Plan{Kind: api.BackupIncremental, ParentPoint: dsp.ParentPoint}
	}
	if dsp.PointKind != "" && dsp.PointKind != api.BackupIncremental {
		plan.Kind = dsp.PointKind
	}
	stats := driver.PointStats{LogicalBytes: c.Progress.BytesDone, Files: c.Progress.FilesDone, Started: started}
	ext, err := h.extension(dsp)
	if err != nil {
		return err
	}
	if ext != nil {
		if err := ext.Completed(ctx, jobID, dsp, c, &plan, &stats); err != nil {
			// The attempt fails (the worker watching the job sees why),
			// and the agent is told.
			if serr := h.db.SetAgentError(context.WithoutCancel(ctx), jobID, "refused the agent's report: "+err.Error()); serr != nil {
				return serr
			}
			return err
		}
	}
	_, err = h.commit.CommitSession(ctx, driver.SessionCommit{JobID: jobID, StorageID: dsp.StorageID, Repository: r,
		SessionID: dsp.SessionID, Plan: plan, Root: root,
		Stats:       stats,
		StoredBytes: func(ctx context.Context, q db.Querier) (int64, int64, error) { return h.db.StoredBytes(ctx, q, jobID) },
	})
	if errors.Is(err, repo.ErrPointIncomplete) {
		// Nothing was committed. The attempt fails (the worker watching
		// the job sees the error), and the agent is told why.
		msg := "refused to commit the point: " + err.Error()
		if serr := h.db.SetAgentError(context.WithoutCancel(ctx), jobID, msg); serr != nil {
			return serr
		}
		return api.Unprocessable("root", "%s", msg)
	}
	return err
}

// withRestoreTotals adds a restore's totals to its agent's report, which
// has none (agents count what they have written; the server knows the
// point). Backups' reports are recorded as sent: their agents scan for
// totals themselves, or, before the scan existed, left them unknown.
func withRestoreTotals(dsp db.Dispatch, p api.JobProgress, end bool) api.JobProgress {
	if dsp.Kind != api.JobRestore || p.FilesTotal != 0 || p.BytesTotal != 0 {
		return p
	}
	return restoreTotal{files: dsp.FilesTotal, bytes: dsp.BytesTotal}.with(p.FilesDone, p.BytesDone, end)
}

// Fail records an agent's failed attempt; the worker decides on a retry.
func (h *Hub) Fail(ctx context.Context, jobID, fileServerID string, f api.AgentFail) error {
	if _, err := h.job(ctx, jobID, fileServerID); err != nil {
		return err
	}
	if err := h.db.AddWarnings(ctx, jobID, f.Warnings); err != nil {
		return err
	}
	msg := f.Error
	if msg == "" {
		msg = "the agent reported a failure without a message"
	}
	return h.db.SetAgentError(ctx, jobID, "agent: "+msg)
}
