package server_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// settableClock is a clock the test moves by hand.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// TestRetentionExpiresAndReclaims backs up a tree once a simulated day for
// six days under "keep 2 days": retention expires the old points after
// each backup, GC reclaims what only they used, and every kept point still
// restores byte-identical to the tree as it was that day.
func TestRetentionExpiresAndReclaims(t *testing.T) {
	clock := &settableClock{now: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)}
	srv := servertest.StartWith(t, func(c *server.Config) {
		c.Now = clock.Now
		c.GCGrace = 500 * time.Millisecond
		c.TouchGranularity = time.Millisecond
		c.RetentionEvery = time.Hour
	})
	ctx := context.Background()
	set, src := sampleFileset(t, srv)
	var pol api.Policy
	if err := srv.Client.Do(ctx, http.MethodGet, "/v1/backup-policies/"+set.PolicyID, nil, nil, &pol); err != nil {
		t.Fatal(err)
	}
	pol.Retention = api.Retention{DailyDays: 2}
	pol.Timezone = "UTC"
	if _, err := srv.Client.Policies().Update(ctx, pol.ID, pol.Version, api.PolicyRequest{PolicySpec: pol.PolicySpec}); err != nil {
		t.Fatal(err)
	}

	type day struct {
		point string
		state map[string]string
	}
	var days []day
	for d := range 6 {
		clock.Set(time.Date(2026, 5, 4+d, 12, 0, 0, 0, time.UTC))
		// A file only this day's point holds (random, so it cannot dedup).
		os.WriteFile(filepath.Join(src, "daily.bin"), randomBytes(200<<10, uint64(d)), 0o644)
		j, err := srv.Client.BackupNow(ctx, set.ID)
		if err != nil {
			t.Fatal(err)
		}
		j = waitJob(t, srv, j.ID)
		if j.State != api.JobSucceeded {
			t.Fatalf("day %d backup: %+v", d, j)
		}
		days = append(days, day{point: j.PointID, state: treeState(t, src)})
		if d == 1 {
			// Day 1 goes on legal hold: no rule may expire it.
			if p, err := srv.Client.SetLegalHold(ctx, j.PointID, true); err != nil || !p.LegalHold {
				t.Fatalf("legal hold: %v %+v", err, p)
			}
		}
		// Retention runs after each backup; wait for it to settle.
		time.Sleep(300 * time.Millisecond)
	}
	// On 9 May at 12:00, "keep 2 days" keeps the points of 7, 8 and 9 May,
	// and the legal hold keeps 5 May's.
	var live []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		pts, err := srv.Client.ListPoints(ctx, set.ID, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		live = live[:0]
		for _, p := range pts.Items {
			live = append(live, p.ID)
		}
		if len(live) == 4 {
			break
		}
	}
	want := []string{days[5].point, days[4].point, days[3].point, days[1].point}
	if strings.Join(live, ",") != strings.Join(want, ",") {
		t.Fatalf("live points %v, want the last three %v", live, want)
	}
	p5, _ := srv.Client.GetPoint(ctx, days[5].point)
	if p5.RestorableUntil == nil || !p5.RestorableUntil.Equal(time.Date(2026, 5, 12, 0, 0, 0, 0, time.UTC)) ||
		len(p5.Reasons) != 1 || p5.Reasons[0] != "daily" || p5.Tier != "warm" {
		t.Errorf("newest point's retention: %+v", p5)
	}

	held, _ := srv.Client.GetPoint(ctx, days[1].point)
	if !held.LegalHold || strings.Join(held.Reasons, ",") != "legal_hold" || held.RestorableUntil != nil {
		t.Errorf("held point: %+v", held)
	}

	// GC (queued by retention) reclaims the expired days' unique chunks.
	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var swept bool
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !swept; time.Sleep(300 * time.Millisecond) {
		gcs, _ := srv.Client.ListJobs(ctx, api.JobFilter{Kind: api.JobGC, State: api.JobSucceeded}, "", 0)
		for _, g := range gcs.Items {
			for _, w := range g.Warnings {
				if strings.HasPrefix(w, "swept ") && !strings.HasPrefix(w, "swept 0 ") {
					swept = true
				}
			}
		}
		if !swept {
			// Retention queues GC; once the grace has passed, another run sweeps.
			srv.Client.Do(ctx, http.MethodPost, "/v1/storages/"+set.StorageID+"/gc", nil, struct{}{}, nil)
		}
	}
	if !swept {
		t.Fatal("no GC run reclaimed anything")
	}

	// Every kept point restores exactly as its day's tree was.
	for _, d := range days[3:] {
		dst := t.TempDir()
		r, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: d.point, TargetPath: dst})
		if err != nil {
			t.Fatal(err)
		}
		if rj := waitJob(t, srv, r.ID); rj.State != api.JobSucceeded {
			t.Fatalf("restore %s: %+v", d.point, rj)
		}
		got := treeState(t, filepath.Join(dst, src))
		delete(got, ".")
		want := d.state
		delete(want, ".")
		sameTree(t, want, got)
	}
	// An expired point is gone for good.
	if _, err := srv.Client.Restore(ctx, api.RestoreRequest{PointID: days[0].point, TargetPath: t.TempDir()}); err == nil {
		t.Error("an expired point can still be restored")
	}
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// TestPointPagesWithEqualTimes pages through points that completed at the
// same instant (a fixed clock): each appears exactly once.
func TestPointPagesWithEqualTimes(t *testing.T) {
	clock := &settableClock{now: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
	srv := servertest.StartWith(t, func(c *server.Config) { c.Now = clock.Now })
	ctx := context.Background()
	set, _ := sampleFileset(t, srv)
	want := map[string]bool{}
	for range 3 {
		j, err := srv.Client.BackupNow(ctx, set.ID)
		if err != nil {
			t.Fatal(err)
		}
		want[waitJob(t, srv, j.ID).PointID] = true
	}
	seen := map[string]bool{}
	token := ""
	for pages := 0; ; pages++ {
		page, err := srv.Client.ListPoints(ctx, set.ID, token, 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Items {
			if seen[p.ID] || !want[p.ID] {
				t.Fatalf("point %s listed twice or unknown", p.ID)
			}
			seen[p.ID] = true
		}
		if token = page.NextPageToken; token == "" || pages > 5 {
			break
		}
	}
	if len(seen) != 3 {
		t.Fatalf("paged %d of 3 points", len(seen))
	}
}
