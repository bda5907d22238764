package agent_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestAgentBackupHonoursPolicyCap: a scheduled backup through an agent
// uploads at no more than the policy's bandwidth_mbps. The rate is
// measured over several seconds of incompressible data: the bytes the
// storage received against the job's own start and end.
func TestAgentBackupHonoursPolicyCap(t *testing.T) {
	const mbps = 8 // 1 MB/s
	got := scheduledAgentBackups(t, mbps, 1, 6<<20)
	assertUnderCap(t, mbps, got)
}

// TestConcurrentJobsShareTheirPolicyCap: two scheduled backups of one
// policy, to two storages, run at once and together stay under the
// policy's cap: the cap is the policy's, not each job's.
func TestConcurrentJobsShareTheirPolicyCap(t *testing.T) {
	const mbps = 8
	got := scheduledAgentBackups(t, mbps, 2, 3<<20)
	first, last := got.jobs[0], got.jobs[1]
	if first.StartedAt.After(*last.StartedAt) {
		first, last = last, first
	}
	if !last.StartedAt.Before(*first.FinishedAt) {
		t.Fatalf("the two jobs did not overlap (%v–%v and %v–%v): nothing shared was tested",
			first.StartedAt, first.FinishedAt, last.StartedAt, last.FinishedAt)
	}
	assertUnderCap(t, mbps, got)
}

type cappedRun struct {
	jobs  []*api.Job
	bytes int64 // what the storages received
}

// assertUnderCap checks the token bucket's own bound: over any stretch t,
// no more than rate × t plus one burst (a quarter second) gets through.
// The stretch is the jobs' first start to their last end, which holds
// every upload; 2% covers the two clocks involved.
func assertUnderCap(t *testing.T, mbps int, r cappedRun) {
	t.Helper()
	start, end := *r.jobs[0].StartedAt, *r.jobs[0].FinishedAt
	for _, j := range r.jobs[1:] {
		if j.StartedAt.Before(start) {
			start = *j.StartedAt
		}
		if j.FinishedAt.After(end) {
			end = *j.FinishedAt
		}
	}
	elapsed := end.Sub(start).Seconds()
	rate := float64(mbps) * 1e6 / 8
	burst := max(rate/4, 64<<10)
	achieved := float64(r.bytes) / elapsed
	t.Logf("%d bytes in %.2f s: %.0f bytes/s under a cap of %.0f bytes/s", r.bytes, elapsed, achieved, rate)
	if allowed := (burst + rate*elapsed) * 1.02; float64(r.bytes) > allowed {
		t.Fatalf("uploads went over the cap: %d bytes in %.2f s (%.0f bytes/s), at most %.0f allowed at %.0f bytes/s",
			r.bytes, elapsed, achieved, allowed, rate)
	}
}

// scheduledAgentBackups runs one scheduled backup of each of n filesets of
// one agent and one policy capped at mbps, each fileset with size bytes of
// random data and a storage of its own, and returns the finished jobs.
func scheduledAgentBackups(t *testing.T, mbps, n, size int) cappedRun {
	t.Helper()
	ctx := context.Background()
	// Two minutes before the policy's 01:00 slot.
	clock := servertest.NewClock(time.Date(2026, 1, 5, 0, 58, 0, 0, time.UTC), 1)
	srv := servertest.StartWith(t, func(c *server.Config) {
		c.AgentOfflineAfter = 3 * time.Second
		c.Now = clock.Now
		c.ScheduleEvery = 200 * time.Millisecond
	})
	pol, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "capped", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: api.Weekdays, At: "01:00"}, Retention: api.Retention{DailyDays: 7}, BandwidthMbps: mbps}})
	if err != nil {
		t.Fatal(err)
	}
	fsrv, err := srv.Client.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{
		Name: "remote", Hostname: "remote.example", OS: "linux", Location: "agent"}})
	if err != nil {
		t.Fatal(err)
	}
	var sets []string
	var stores []string
	for i := range n {
		src, storeDir := t.TempDir(), t.TempDir()
		writeFiles(t, src, 3, size/3, uint64(i+1))
		stg, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: fmt.Sprintf("s%d", i), Kind: "filesystem", Path: storeDir}})
		if err != nil {
			t.Fatal(err)
		}
		set, err := srv.Client.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: fmt.Sprintf("f%d", i), FileServerID: fsrv.ID,
			IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: stg.ID}})
		if err != nil {
			t.Fatal(err)
		}
		sets, stores = append(sets, set.ID), append(stores, storeDir)
	}
	runAgent(t, srv.URL, fsrv.ActivationToken, filepath.Join(t.TempDir(), "state"))

	// The slot is brought due only once the schedule has seen every
	// fileset (a new asset's schedule starts when it is first seen) and
	// the agent is online, so the jobs' times are the uploads' times.
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	waitFor(t, "the schedule to see every fileset", func() bool {
		var seen int
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM schedule_marks WHERE asset_id = ANY($1::uuid[])`, sets).Scan(&seen)
		return seen == n
	})
	waitFor(t, "the agent to come online", func() bool {
		f, err := srv.Client.FileServers().Get(ctx, fsrv.ID)
		return err == nil && f.AgentStatus == "online"
	})
	clock.Advance(2*time.Minute + 30*time.Second)

	var run cappedRun
	for _, id := range sets {
		var job *api.Job
		waitFor(t, "the scheduled backup", func() bool {
			list, err := srv.Client.ListJobs(ctx, api.JobFilter{AssetID: id, Kind: api.JobBackup}, "", 10)
			if err == nil && len(list.Items) > 0 {
				job = &list.Items[0]
			}
			return job != nil
		})
		job = waitJob(t, srv, job.ID)
		if job.State != api.JobSucceeded || job.Trigger != api.TriggerScheduled {
			t.Fatalf("backup: %+v", job)
		}
		run.jobs = append(run.jobs, job)
	}
	for _, dir := range stores {
		run.bytes += packBytes(dir)
	}
	if want := int64(n * size); run.bytes < want {
		t.Fatalf("the storages hold %d bytes of packs for %d bytes of random data", run.bytes, want)
	}
	return run
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
	}
}
