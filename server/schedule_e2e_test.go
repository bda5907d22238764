package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/schedule"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// TestTwoReplicasRunEachScheduledSlotOnce runs two servers on one database
// with a clock at one hour per real second, across the spring DST change
// in Los Angeles, and checks that every due slot got exactly one job, that
// no job ran twice, and that each successful job made one point.
func TestTwoReplicasRunEachScheduledSlotOnce(t *testing.T) {
	url := testparts.PostgresURL(t)
	keyFile := filepath.Join(t.TempDir(), "master.key")
	la, _ := time.LoadLocation("America/Los_Angeles")
	clock := servertest.NewClock(time.Date(2026, 3, 7, 23, 30, 0, 0, la), 1800)
	servers := make([]*servertest.Server, 2)
	for i := range servers {
		cfg := server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), DatabaseURL: url, MasterKeyFile: keyFile,
			LogLevel: "warn", ScheduleEvery: 100 * time.Millisecond, Now: clock.Now}
		if i == 0 {
			servers[i] = servertest.Run(t, cfg)
		} else {
			servers[i] = runNoFatal(t, cfg)
		}
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("scheduled"), 0o644)
	ctx := context.Background()
	c := servers[0].Client
	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "s", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	spec := api.PolicySpec{Name: "hourly", Timezone: "America/Los_Angeles",
		Full: api.FullSchedule{DaysOfWeek: api.Weekdays, At: "00:00"}, Incremental: &api.IncrementalSchedule{EveryHours: 1},
		Retention: api.Retention{DailyDays: 7}}
	var pol api.Policy
	if err := c.Do(ctx, http.MethodPost, "/v1/backup-policies", nil, api.PolicyRequest{PolicySpec: spec}, &pol); err != nil {
		t.Fatal(err)
	}
	fsrv, err := c.FileServers().Create(ctx, api.FileServerRequest{FileServerSpec: api.FileServerSpec{Name: "h", Hostname: "localhost", OS: "linux", Location: "server"}})
	if err != nil {
		t.Fatal(err)
	}
	set, err := c.Filesets().Create(ctx, api.FilesetRequest{FilesetSpec: api.FilesetSpec{Name: "f", FileServerID: fsrv.ID,
		IncludePaths: []string{src}, PolicyID: pol.ID, StorageID: stg.ID}})
	if err != nil {
		t.Fatal(err)
	}
	// The simulated night starts now, whatever start-up cost.
	clock.Restart()
	// Wait for six slots (leader election may take a few seconds first);
	// the simulated night crosses 02:00 PST → 03:00 PDT.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n int
		conn.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE asset_id = $1 AND state NOT IN ('queued', 'running')`, set.ID).Scan(&n)
		if n >= 6 {
			break
		}
	}
	for _, s := range servers {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s.Server.Shutdown(sctx)
		cancel()
	}

	var markStr time.Time
	if err := conn.QueryRow(ctx, `SELECT min(slot) FROM jobs WHERE asset_id = $1`, set.ID).Scan(&markStr); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `SELECT slot, state, attempt, coalesce(point_id::text, ''), backup_type FROM jobs WHERE asset_id = $1 ORDER BY slot`, set.ID)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		slot         time.Time
		state, point string
		attempt      int
		typ          string
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.slot, &r.state, &r.attempt, &r.point, &r.typ); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	rows.Close()
	if len(got) < 6 {
		t.Fatalf("only %d scheduled jobs", len(got))
	}
	// The slots are exactly the policy's, consecutive, none twice.
	want, err := schedule.Due(&spec, got[0].slot.Add(-time.Nanosecond), got[len(got)-1].slot)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("%d jobs for %d slots: %+v", len(got), len(want), got)
	}
	succeeded := 0
	for i, r := range got {
		if !r.slot.Equal(want[i].At) || r.typ != want[i].Type {
			t.Errorf("job %d: slot %s %s, want %s %s", i, r.slot, r.typ, want[i].At, want[i].Type)
		}
		switch r.state {
		case api.JobSucceeded:
			succeeded++
			if r.attempt != 1 || r.point == "" {
				t.Errorf("slot %s ran %d times (point %q)", r.slot, r.attempt, r.point)
			}
		case api.JobSkipped, api.JobQueued, api.JobRunning:
		default:
			t.Errorf("slot %s ended %s", r.slot, r.state)
		}
	}
	var points int
	conn.QueryRow(ctx, `SELECT count(*) FROM points WHERE asset_id = $1`, set.ID).Scan(&points)
	if succeeded == 0 || points != succeeded {
		t.Fatalf("%d succeeded jobs, %d points", succeeded, points)
	}
	b, _ := json.Marshal(got[0].slot)
	t.Logf("%d slots from %s; %d succeeded", len(got), b, succeeded)
}
