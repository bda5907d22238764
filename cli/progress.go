package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Polling a job while waiting starts fast, so short jobs end promptly, and
// slows down, so long ones cost the server little.
const (
	firstPoll = 200 * time.Millisecond
	maxPoll   = 2 * time.Second
)

// waitFlags are the flags of every command that queues a job.
type waitFlags struct {
	wait          bool
	timeout       time.Duration
	progressEvery time.Duration
}

func (w *waitFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&w.wait, "wait", false, "wait for the job to finish, showing its progress; exit 1 unless it succeeded")
	cmd.Flags().DurationVar(&w.timeout, "timeout", 0, "with --wait, give up waiting after this long")
	w.addProgress(cmd)
}

func (w *waitFlags) addProgress(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&w.progressEvery, "progress-every", 10*time.Second,
		"when the output is not a terminal, print a progress line at most this often (and on every change of state)")
}

// finishJob prints a queued job, or with --wait follows it to the end,
// showing its progress, and fails unless it succeeded.
func (e *clientEnv) finishJob(ctx context.Context, j *api.Job, w waitFlags) error {
	if !w.wait {
		if e.output != "table" {
			return e.show(j, nil)
		}
		fmt.Fprintf(e.out, "job %s %s\n", j.ID, j.State)
		return nil
	}
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	// A VM's progress counts disks where a fileset's counts files, and a
	// storage import's counts packs.
	items := "files"
	switch {
	case j.Kind == api.JobImport:
		items = "packs"
	case j.AssetID != "":
		if _, err := e.client.ProtectedVMs().Get(ctx, j.AssetID); err == nil {
			items = "disks"
		}
	}
	done, err := e.follow(ctx, j, e.progressView(items, w.progressEvery))
	if err != nil {
		return err
	}
	if e.output != "table" {
		if err := e.show(done, nil); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.out, "job %s %s", done.ID, done.State)
		if done.PointID != "" {
			fmt.Fprintf(e.out, " point %s", done.PointID)
		}
		fmt.Fprintf(e.out, " (%d %s, %s)\n", done.Progress.FilesDone, items, humanBytes(done.Progress.BytesDone))
		for _, w := range done.Warnings {
			fmt.Fprintln(e.out, "  warning:", w)
		}
		printRestoredVM(e.out, done)
		printImported(e.out, done)
	}
	if done.State != api.JobSucceeded {
		return fmt.Errorf("job %s %s: %s", done.ID, done.State, done.Error)
	}
	return nil
}

// follow waits for a job to end, showing each state: each read waits on
// the server for the job's end (GET /v1/jobs/{id}?wait=), for a time that
// grows from firstPoll to maxPoll.
func (e *clientEnv) follow(ctx context.Context, j *api.Job, view progressView) (*api.Job, error) {
	defer view.close()
	delay := firstPoll
	for {
		view.show(j, time.Now())
		if j.Finished() {
			return j, nil
		}
		// The server answers as soon as the job ends, or after delay:
		// the end is seen at once, progress at the backed-off pace.
		next, err := e.client.GetJobWaiting(ctx, j.ID, delay)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("waiting for job %s: %w", j.ID, ctx.Err())
		}
		if err != nil {
			return nil, err
		}
		delay = min(delay*3/2, maxPoll)
		j = next
	}
}

// progressView shows a running job: a bar on a terminal, lines elsewhere.
type progressView interface {
	show(j *api.Job, now time.Time)
	close()
}

// progressView picks how to show progress: it goes to stdout in table
// output and to stderr otherwise, so that JSON and YAML stay parseable.
func (e *clientEnv) progressView(items string, every time.Duration) progressView {
	w := e.out
	if e.output != "table" {
		w = e.errOut
	}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &progressBar{w: w, items: items}
	}
	return &progressLines{w: w, items: items, every: every}
}

// rate estimates a job's throughput and time left from its progress
// records as they arrive.
type rate struct {
	start      time.Time
	startBytes int64
	started    bool
}

func (r *rate) observe(j *api.Job, now time.Time) (perSecond float64, eta time.Duration) {
	if j.State != api.JobRunning {
		return 0, -1
	}
	if !r.started {
		r.start, r.startBytes, r.started = now, j.Progress.BytesDone, true
		return 0, -1
	}
	elapsed := now.Sub(r.start).Seconds()
	if elapsed <= 0 {
		return 0, -1
	}
	perSecond = float64(j.Progress.BytesDone-r.startBytes) / elapsed
	if perSecond <= 0 || j.Progress.BytesTotal <= j.Progress.BytesDone {
		return perSecond, -1
	}
	return perSecond, time.Duration(float64(j.Progress.BytesTotal-j.Progress.BytesDone)/perSecond) * time.Second
}

// phase names what a job is doing. The progress record has no phase of
// its own: a running job whose totals are still unknown is scanning.
func phase(j *api.Job) string {
	if j.State != api.JobRunning {
		return j.State
	}
	if j.Progress.BytesTotal == 0 && j.Progress.FilesTotal == 0 && j.Progress.BytesDone == 0 && j.Progress.PointsTotal == 0 {
		return "starting"
	}
	switch j.Kind {
	case api.JobBackup:
		return "backing up"
	case api.JobRestore:
		return "restoring"
	case api.JobVerify:
		return "verifying"
	case api.JobGC:
		return "collecting garbage"
	case api.JobImport:
		if j.Progress.PointsTotal > 0 {
			return "adding points"
		}
		return "indexing packs"
	}
	return j.State
}

// counts prints done/total of files (or disks) and bytes.
func counts(p api.JobProgress, items string) string {
	files := fmt.Sprintf("%d", p.FilesDone)
	if p.FilesTotal > 0 {
		files += fmt.Sprintf("/%d", p.FilesTotal)
	}
	bytes := humanBytes(p.BytesDone)
	if p.BytesTotal > 0 {
		bytes += " of " + humanBytes(p.BytesTotal)
		bytes += fmt.Sprintf(" (%d%%)", p.BytesDone*100/p.BytesTotal)
	}
	out := files + " " + items + ", " + bytes
	if p.PointsTotal > 0 {
		out += fmt.Sprintf(", %d/%d points", p.PointsDone, p.PointsTotal)
	}
	return out
}

// progressLines prints one line per change of state, and at most one per
// interval while the job runs: CI logs keep a readable history.
type progressLines struct {
	w         io.Writer
	items     string
	every     time.Duration
	rate      rate
	lastState string
	lastAt    time.Time
	lastSeen  api.JobProgress
}

func (p *progressLines) show(j *api.Job, now time.Time) {
	perSecond, eta := p.rate.observe(j, now)
	if j.Finished() {
		return // the outcome line follows
	}
	changed := j.State != p.lastState
	if !changed && (now.Sub(p.lastAt) < p.every || j.Progress == p.lastSeen) {
		return
	}
	line := fmt.Sprintf("%s job %s %s: %s", now.Format("15:04:05"), j.ID, phase(j), counts(j.Progress, p.items))
	if perSecond > 0 {
		line += ", " + humanBytes(int64(perSecond)) + "/s"
	}
	if eta >= 0 {
		line += ", ETA " + eta.Round(time.Second).String()
	}
	fmt.Fprintln(p.w, line)
	p.lastState, p.lastAt, p.lastSeen = j.State, now, j.Progress
}

func (p *progressLines) close() {}

// progressBar redraws one terminal line: phase and counts as its
// description, bytes as the bar, with the library's rate and ETA.
type progressBar struct {
	w     io.Writer
	items string
	bar   *progressbar.ProgressBar
	max   int64
}

func (p *progressBar) show(j *api.Job, _ time.Time) {
	total := j.Progress.BytesTotal
	if total <= 0 {
		total = -1 // unknown yet: a spinner
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSpinnerType(14),
		)
		p.max = total
	}
	if total != p.max {
		p.bar.ChangeMax64(total)
		p.max = total
	}
	p.bar.Describe(fmt.Sprintf("job %s %s: %s", shortID(j.ID), phase(j), strings.SplitN(counts(j.Progress, p.items), ",", 2)[0]))
	_ = p.bar.Set64(j.Progress.BytesDone)
}

func (p *progressBar) close() {
	if p.bar != nil {
		_ = p.bar.Clear()
		fmt.Fprint(p.w, "\r")
	}
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
