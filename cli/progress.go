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
	// A VM's progress counts disks where a fileset's counts files, and a
	// storage import's counts packs.
	items := "files"
	switch {
	case j.Kind == api.JobImport:
		items = "packs"
	case j.Kind == api.JobDRReplicate:
		items = "disks"
	case j.AssetID != "":
		if _, err := e.client.ProtectedVMs().Get(ctx, j.AssetID); err == nil {
			items = "disks"
		}
	}
	done, err := e.waitJob(ctx, j, w, items)
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

// waitJob follows a job to its end (within --timeout), showing its
// progress in items; "" shows only its phase, for jobs that count nothing.
func (e *clientEnv) waitJob(ctx context.Context, j *api.Job, w waitFlags, items string) (*api.Job, error) {
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	return e.follow(ctx, j, e.progressView(items, w.progressEvery))
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
	return e.progressViewOn(w, items, every)
}

// progressViewOn shows progress on w.
func (e *clientEnv) progressViewOn(w io.Writer, items string, every time.Duration) progressView {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &progressBar{w: w, items: items}
	}
	return &progressLines{w: w, items: items, every: every}
}

// rate estimates a job's throughput and time left from its progress
// records as they arrive: the bytes done since the first record seen,
// over the time since then; the time left is the bytes still to do at
// that average. There is no time left to tell while the totals are
// unknown or still growing (a file backup's scan has not finished).
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
	if perSecond <= 0 || j.Progress.Scanning || j.Progress.BytesTotal <= j.Progress.BytesDone {
		return perSecond, -1
	}
	return perSecond, time.Duration(float64(j.Progress.BytesTotal-j.Progress.BytesDone)/perSecond) * time.Second
}

// phase names what a job is doing. The progress record has no phase of
// its own: a running job whose totals are still unknown is starting, and
// a backup whose totals are still growing is scanning beside its work.
func phase(j *api.Job) string {
	if j.State != api.JobRunning {
		return j.State
	}
	switch j.Kind {
	case api.JobRestorePlan:
		return "planning" // a dry run reports no progress
	case api.JobDRTest, api.JobDRFailover:
		return "launching" // a DR run's job counts nothing
	case api.JobDRCleanup:
		return "cleaning up"
	case api.JobDRFailback:
		return "failing back" // counts machines, not bytes
	}
	if p := j.Progress; p.BytesTotal == 0 && p.FilesTotal == 0 && p.BytesDone == 0 && p.PointsTotal == 0 && !p.Scanning {
		return "starting"
	}
	switch j.Kind {
	case api.JobBackup:
		if j.Progress.Scanning {
			return "backing up, scanning"
		}
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
	case api.JobDRReplicate:
		return "replicating"
	}
	return j.State
}

// percent is how much of the bytes is done, if the total is known and not
// (yet) behind the bytes done, as a growing total can be.
func percent(p api.JobProgress) (int64, bool) {
	if p.BytesTotal <= 0 || p.BytesDone > p.BytesTotal {
		return 0, false
	}
	return p.BytesDone * 100 / p.BytesTotal, true
}

// counts prints done of total for files (or disks) and bytes, as far as
// the totals are known; a total still growing ends in "+", an estimated
// one (the previous point's) starts with "~".
func counts(p api.JobProgress, items string) string {
	more, about := "", ""
	if p.Scanning {
		more = "+"
	}
	if p.Estimated {
		about = "~"
	}
	files := fmt.Sprintf("%d", p.FilesDone)
	if p.FilesTotal > 0 {
		files += fmt.Sprintf(" of %s%d%s", about, p.FilesTotal, more)
	}
	bytes := humanBytes(p.BytesDone)
	if p.BytesTotal > 0 {
		bytes += " of " + about + humanBytes(p.BytesTotal) + more
		if pct, ok := percent(p); ok {
			bytes += fmt.Sprintf(" (%d%%)", pct)
		}
	}
	out := files + " " + items + ", " + bytes
	if p.PointsTotal > 0 {
		out += fmt.Sprintf(", %d of %d points", p.PointsDone, p.PointsTotal)
	}
	return out
}

// rateAndETA prints the rate and time left, as far as they are known.
func rateAndETA(perSecond float64, eta time.Duration) string {
	out := ""
	if perSecond > 0 {
		out += ", " + humanBytes(int64(perSecond)) + "/s"
	}
	if eta >= 0 {
		out += ", ETA " + eta.Round(time.Second).String()
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
	detail := ""
	if p.items != "" {
		detail = ": " + counts(j.Progress, p.items) + rateAndETA(perSecond, eta)
	}
	fmt.Fprintf(p.w, "%s job %s %s%s\n", now.Format("15:04:05"), j.ID, phase(j), detail)
	p.lastState, p.lastAt, p.lastSeen = j.State, now, j.Progress
}

func (p *progressLines) close() {}

// progressBar redraws one terminal line: phase, items and the time left
// (see rate) as its description, bytes and their rate as the bar. While
// the total is unknown, or a growing one is behind the bytes done, the bar
// is a spinner.
type progressBar struct {
	w     io.Writer
	items string
	bar   *progressbar.ProgressBar
	max   int64
	rate  rate
}

func (p *progressBar) show(j *api.Job, now time.Time) {
	_, eta := p.rate.observe(j, now)
	total := j.Progress.BytesTotal
	if _, ok := percent(j.Progress); !ok {
		total = -1
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionUseIECUnits(true),
			progressbar.OptionSetElapsedTime(true),
			// The library's own prediction would count on a total that
			// may still grow; ours waits for final totals.
			progressbar.OptionSetPredictTime(false),
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
	// The bar shows the rate itself.
	detail := ""
	if p.items != "" {
		detail = ": " + strings.SplitN(counts(j.Progress, p.items), ",", 2)[0] + rateAndETA(0, eta)
	}
	p.bar.Describe(fmt.Sprintf("job %s %s%s", shortID(j.ID), phase(j), detail))
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
