package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

func decodeBody(r io.Reader, v any) error {
	err := json.NewDecoder(r).Decode(v)
	if errors.Is(err, io.EOF) {
		return nil // 204: no work
	}
	return err
}

// run executes one job and reports its end to the server.
func (a *agent) run(ctx context.Context, w *api.AgentWork) {
	log := a.cfg.Log.With("job_id", w.JobID, "kind", w.Kind)
	log.Info("job taken")
	rep := &reporter{a: a, jobID: w.JobID}
	var err error
	var done api.AgentComplete
	switch {
	case w.Kind == api.JobBackup && w.Database != nil:
		done, err = a.databaseBackup(ctx, w, rep)
	case w.Kind == api.JobRestore && w.Database != nil:
		done, err = a.databaseRestore(ctx, w, rep)
	case w.Kind == api.JobBackup && w.NAS != nil:
		done, err = a.nasBackup(ctx, w, rep)
	case w.Kind == api.JobRestore && w.NAS != nil:
		done, err = a.nasRestore(ctx, w, rep)
	case w.Kind == api.JobBackup:
		done, err = a.backup(ctx, w, rep)
	case w.Kind == api.JobRestore:
		done, err = a.restore(ctx, w, rep)
	case w.Kind == api.JobRestorePlan:
		done, err = a.plan(ctx, w)
	default:
		err = fmt.Errorf("unknown job kind %q", w.Kind)
	}
	path := "/v1/agent/jobs/" + w.JobID
	if ctx.Err() != nil {
		log.Info("job interrupted; the server will hand it out again")
		return
	}
	if err != nil {
		log.Warn("job failed", "error", err.Error())
		_ = a.client.Do(context.WithoutCancel(ctx), http.MethodPost, path+"/fail", nil, api.AgentFail{Error: err.Error(), Warnings: rep.take()}, nil)
		return
	}
	done.Warnings = rep.take()
	if err := a.client.Do(ctx, http.MethodPost, path+"/complete", nil, done, nil); err != nil {
		log.Warn("reporting completion", "error", err.Error())
		return
	}
	log.Info("job done")
}

// remoteFor connects a job to the server's repository, naming chunks with
// the storage's id key.
func (a *agent) remoteFor(ctx context.Context, w *api.AgentWork) (*remote, error) {
	if len(w.IDKey) != 32 {
		return nil, errors.New("the server sent no id key")
	}
	var key [32]byte
	copy(key[:], w.IDKey)
	return newRemote(ctx, a, w.JobID, format.NewHasher(key)), nil
}

func (a *agent) backup(ctx context.Context, w *api.AgentWork, rep *reporter) (api.AgentComplete, error) {
	return a.captureTree(ctx, w, rep, func(remote *remote, opts files.CaptureOptions) (format.ID, files.CaptureStats, error) {
		opts.Paths, opts.Exclude, opts.Confine = w.IncludePaths, w.ExcludeGlobs, a.readable
		return files.Capture(ctx, remote, remote, opts)
	})
}

// captureTree runs a backup job's capture of a file tree (the host's, or
// a NAS share's): capture gets the job's remote and the options every
// tree takes (the parent, warnings, progress with totals), and the
// point's root goes back to the server once the uploads are flushed.
func (a *agent) captureTree(ctx context.Context, w *api.AgentWork, rep *reporter,
	capture func(*remote, files.CaptureOptions) (format.ID, files.CaptureStats, error)) (api.AgentComplete, error) {
	remote, err := a.remoteFor(ctx, w)
	if err != nil {
		return api.AgentComplete{}, err
	}
	var parent format.ID
	if w.ParentRoot != "" {
		if parent, err = format.ParseID(w.ParentRoot); err != nil {
			return api.AgentComplete{}, err
		}
	}
	root, st, err := capture(remote, files.CaptureOptions{
		Parent: parent, Warn: rep.warn, Totals: true,
		Progress: func(p files.CaptureProgress) {
			rep.report(ctx, api.JobProgress{FilesDone: p.Files, BytesDone: p.Bytes, FilesTotal: p.FilesTotal, BytesTotal: p.BytesTotal,
				Scanning: p.Scanning, Estimated: p.Estimated}, p.TotalsFinal)
		},
	})
	if err != nil {
		return api.AgentComplete{}, err
	}
	if err := remote.Flush(ctx); err != nil {
		return api.AgentComplete{}, err
	}
	return api.AgentComplete{Root: root.String(), Progress: api.JobProgress{FilesDone: st.Files, BytesDone: st.Bytes, FilesTotal: st.Files, BytesTotal: st.Bytes}}, nil
}

func (a *agent) restore(ctx context.Context, w *api.AgentWork, rep *reporter) (api.AgentComplete, error) {
	root, remote, err := a.pointFor(ctx, w)
	if err != nil {
		return api.AgentComplete{}, err
	}
	st, err := files.Restore(ctx, remote, root, files.RestoreOptions{
		Target: w.TargetPath, Paths: w.Paths, Conflict: w.Conflict, Owner: os.Geteuid() == 0, Resume: w.Resume, Warn: rep.warn,
		Include: w.RestoreInclude, Exclude: w.RestoreExclude,
		Confine:  a.writable,
		Progress: func(n, b int64) { rep.progress(ctx, api.JobProgress{FilesDone: n, BytesDone: b}) },
	})
	if st.Resumed > 0 {
		rep.warn("", fmt.Errorf("resumed: %d files were already restored by an earlier attempt; %d bytes fetched in this attempt", st.Resumed, st.Fetched))
	}
	if err != nil {
		return api.AgentComplete{}, err
	}
	return api.AgentComplete{Progress: api.JobProgress{FilesDone: st.Files, BytesDone: st.Bytes}}, nil
}

// reporter sends progress at most once a second and collects warnings.
type reporter struct {
	a        *agent
	jobID    string
	mu       sync.Mutex
	last     time.Time
	warnings []string
}

func (r *reporter) warn(path string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if path != "" {
		r.warnings = append(r.warnings, fmt.Sprintf("%s: %v", path, err))
	} else {
		r.warnings = append(r.warnings, err.Error())
	}
}

func (r *reporter) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.warnings
	r.warnings = nil
	return w
}

func (r *reporter) progress(ctx context.Context, p api.JobProgress) { r.report(ctx, p, false) }

// report sends p unless one was sent less than a second ago; force sends
// it anyway (a backup's first final totals).
func (r *reporter) report(ctx context.Context, p api.JobProgress, force bool) {
	r.mu.Lock()
	if !force && time.Since(r.last) < time.Second {
		r.mu.Unlock()
		return
	}
	r.last = time.Now()
	r.mu.Unlock()
	w := r.take()
	err := r.a.client.Do(ctx, http.MethodPost, "/v1/agent/jobs/"+r.jobID+"/progress", nil, api.AgentProgress{Progress: p, Warnings: w}, nil)
	if err != nil && len(w) > 0 {
		// A report the server refused (a server older than this agent
		// refuses fields it does not know) or that was lost must not take
		// its warnings with it: they go with the next report, or with the
		// job's end. A report lost after the server took it sends them
		// twice, which is better than never.
		r.mu.Lock()
		r.warnings = append(w, r.warnings...)
		r.mu.Unlock()
	}
}
