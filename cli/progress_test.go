package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// TestProgressLinesRateAndETA: for a job whose progress records carry
// totals (agent and VM jobs), a progress line shows done of total, the
// rate between records and the time left at that rate; no line repeats an
// unchanged record.
func TestProgressLinesRateAndETA(t *testing.T) {
	var out bytes.Buffer
	view := &progressLines{w: &out, items: "disks", every: time.Second}
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	job := func(done int64, files int64) *api.Job {
		return &api.Job{ID: "j1", Kind: api.JobBackup, State: api.JobRunning,
			Progress: api.JobProgress{BytesDone: done, BytesTotal: 100 << 20, FilesDone: files, FilesTotal: 2}}
	}
	view.show(job(0, 0), t0)
	view.show(job(50<<20, 1), t0.Add(2*time.Second))
	view.show(job(50<<20, 1), t0.Add(4*time.Second)) // nothing new: no line
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := "10:00:02 job j1 backing up: 1/2 disks, 50.0 MiB of 100.0 MiB (50%), 25.0 MiB/s, ETA 2s"
	if len(lines) != 2 || lines[1] != want {
		t.Fatalf("progress lines:\n%s\nwant two, the second %q", out.String(), want)
	}
}

// TestProgressBarDraws: on a terminal the bar shows the phase, the items
// done of their total and the bytes.
func TestProgressBarDraws(t *testing.T) {
	var out bytes.Buffer
	view := &progressBar{w: &out, items: "files"}
	j := &api.Job{ID: "0123456789", Kind: api.JobRestore, State: api.JobRunning,
		Progress: api.JobProgress{BytesDone: 3 << 20, BytesTotal: 10 << 20, FilesDone: 3, FilesTotal: 10}}
	view.show(j, time.Now())
	j.Progress.BytesDone, j.Progress.FilesDone = 6<<20, 6
	view.show(j, time.Now())
	got := out.String()
	for _, want := range []string{"job 01234567 restoring: 6/10 files", "10 MiB", "30%", "60%"} {
		if !strings.Contains(got, want) {
			t.Errorf("the bar does not show %q:\n%q", want, got)
		}
	}
	view.close()
}

// TestProgressLinesOfAnImport: a storage import's lines count packs, then
// the point records read.
func TestProgressLinesOfAnImport(t *testing.T) {
	var out bytes.Buffer
	view := &progressLines{w: &out, items: "packs", every: time.Second}
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	j := &api.Job{ID: "j2", Kind: api.JobImport, State: api.JobRunning,
		Progress: api.JobProgress{BytesDone: 16 << 20, BytesTotal: 64 << 20, FilesDone: 1, FilesTotal: 4}}
	view.show(j, t0)
	j.Progress = api.JobProgress{BytesDone: 64 << 20, BytesTotal: 64 << 20, FilesDone: 4, FilesTotal: 4, PointsDone: 3, PointsTotal: 7}
	view.show(j, t0.Add(2*time.Second))
	want := "10:00:00 job j2 indexing packs: 1/4 packs, 16.0 MiB of 64.0 MiB (25%)\n" +
		"10:00:02 job j2 adding points: 4/4 packs, 64.0 MiB of 64.0 MiB (100%), 3/7 points, 24.0 MiB/s\n"
	if got := out.String(); got != want {
		t.Errorf("progress lines:\n%s\nwant\n%s", got, want)
	}
}
