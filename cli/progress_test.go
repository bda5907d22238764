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
	want := "10:00:02 job j1 backing up: 1 of 2 disks, 50.0 MiB of 100.0 MiB (50%), 25.0 MiB/s, ETA 2s"
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
	for _, want := range []string{"job 01234567 restoring: 6 of 10 files", "10 MiB", "30%", "60%"} {
		if !strings.Contains(got, want) {
			t.Errorf("the bar does not show %q:\n%q", want, got)
		}
	}
	view.close()
}

// TestProgressLinesWhileTotalsGrow: a file backup's totals grow while its
// scan runs. Its lines show them as "of N+" with the percentage so far and
// no time left; once the scan is final they show the time left at the
// average rate. A job without totals (an agent older than the scan) shows
// its counts alone: no "of", no percentage, no ETA.
func TestProgressLinesWhileTotalsGrow(t *testing.T) {
	checkBackupLines(t, "j2", []api.JobProgress{
		{Scanning: true},
		{FilesDone: 10, BytesDone: 20 << 20, FilesTotal: 40, BytesTotal: 80 << 20, Scanning: true},
		{FilesDone: 20, BytesDone: 40 << 20, FilesTotal: 50, BytesTotal: 100 << 20},
		{FilesDone: 30, BytesDone: 60 << 20},
	}, []string{
		"10:00:00 job j2 backing up, scanning: 0 files, 0 B",
		"10:00:02 job j2 backing up, scanning: 10 of 40+ files, 20.0 MiB of 80.0 MiB+ (25%), 10.0 MiB/s",
		"10:00:04 job j2 backing up: 20 of 50 files, 40.0 MiB of 100.0 MiB (40%), 10.0 MiB/s, ETA 6s",
		"10:00:06 job j2 backing up: 30 files, 60.0 MiB, 10.0 MiB/s",
	})
}

// checkBackupLines shows a running backup's progress records as lines,
// one every two seconds from 10:00, and fails unless they are want.
func checkBackupLines(t *testing.T, id string, records []api.JobProgress, want []string) {
	t.Helper()
	var out bytes.Buffer
	view := &progressLines{w: &out, items: "files", every: time.Second}
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for i, p := range records {
		view.show(&api.Job{ID: id, Kind: api.JobBackup, State: api.JobRunning, Progress: p}, t0.Add(time.Duration(2*i)*time.Second))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("progress lines:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

// TestProgressLinesWithEstimatedTotals: a backup with a parent starts
// from the parent point's totals; its lines show them as "of ~N" with the
// percentage and the time left at that estimate, and plain once the walk
// has made them exact.
func TestProgressLinesWithEstimatedTotals(t *testing.T) {
	checkBackupLines(t, "j3", []api.JobProgress{
		{FilesTotal: 40, BytesTotal: 80 << 20, Estimated: true},
		{FilesDone: 10, BytesDone: 20 << 20, FilesTotal: 40, BytesTotal: 80 << 20, Estimated: true},
		{FilesDone: 20, BytesDone: 40 << 20, FilesTotal: 42, BytesTotal: 84 << 20},
	}, []string{
		"10:00:00 job j3 backing up: 0 of ~40 files, 0 B of ~80.0 MiB (0%)",
		"10:00:02 job j3 backing up: 10 of ~40 files, 20.0 MiB of ~80.0 MiB (25%), 10.0 MiB/s, ETA 6s",
		"10:00:04 job j3 backing up: 20 of 42 files, 40.0 MiB of 84.0 MiB (47%), 10.0 MiB/s, ETA 4s",
	})
}

// TestProgressBarPercentAndETA: the bar shows the percentage and the time
// left once a backup's totals are final, the percentage alone while they
// grow, and neither without totals.
func TestProgressBarPercentAndETA(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	draw := func(p api.JobProgress) string {
		var out bytes.Buffer
		view := &progressBar{w: &out, items: "files"}
		j := &api.Job{ID: "0123456789", Kind: api.JobBackup, State: api.JobRunning, Progress: p}
		view.show(j, t0)
		j.Progress.BytesDone, j.Progress.FilesDone = p.BytesDone*2, p.FilesDone*2
		view.show(j, t0.Add(2*time.Second))
		return out.String()
	}
	final := draw(api.JobProgress{FilesDone: 1, BytesDone: 10 << 20, FilesTotal: 10, BytesTotal: 100 << 20})
	for _, want := range []string{"backing up: 2 of 10 files, ETA 16s", "20%"} {
		if !strings.Contains(final, want) {
			t.Errorf("with final totals the bar does not show %q:\n%q", want, final)
		}
	}
	growing := draw(api.JobProgress{FilesDone: 1, BytesDone: 10 << 20, FilesTotal: 10, BytesTotal: 100 << 20, Scanning: true})
	if !strings.Contains(growing, "backing up, scanning: 2 of 10+ files") || !strings.Contains(growing, "20%") || strings.Contains(growing, "ETA") {
		t.Errorf("with growing totals the bar should show the items, the percentage so far and no ETA:\n%q", growing)
	}
	unknown := draw(api.JobProgress{FilesDone: 1, BytesDone: 10 << 20})
	if !strings.Contains(unknown, "backing up: 2 files") || strings.Contains(unknown, "%") || strings.Contains(unknown, "ETA") {
		t.Errorf("without totals the bar should show the counts, no percentage and no ETA:\n%q", unknown)
	}
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
	want := "10:00:00 job j2 indexing packs: 1 of 4 packs, 16.0 MiB of 64.0 MiB (25%)\n" +
		"10:00:02 job j2 adding points: 4 of 4 packs, 64.0 MiB of 64.0 MiB (100%), 3 of 7 points, 24.0 MiB/s\n"
	if got := out.String(); got != want {
		t.Errorf("progress lines:\n%s\nwant\n%s", got, want)
	}
}
