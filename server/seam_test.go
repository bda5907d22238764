package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/vms"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// The seam test protects a workload the server has never heard of: a
// "widget", a blob of bytes kept in the file its spec names, in a table
// the test makes. Its driver and decoder are registered through the
// server's Config only, so whatever the engine does for it (backup now,
// the schedule, retention, restore) goes through the driver contract and
// nothing else.

const (
	widgetKind = "widget"
	// widgetTable is made by the test: see createWidgetTable.
	widgetTable db.Table = "widgets"
	// widgetChunkSize cuts a widget's bytes into data chunks.
	widgetChunkSize = 64 << 10
)

// widgetSpec is a widget's spec column.
type widgetSpec struct {
	Name      string `json:"name"`
	StorageID string `json:"storage_id"`
	PolicyID  string `json:"policy_id"`
	// Source is the file holding the widget's bytes.
	Source string `json:"source"`
	Group  string `json:"group,omitempty"`
}

// widgetEntry is the one entry of a widget point's manifest. Its path and
// chunks follow the shape every manifest entry shares, so the repository's
// whole-point check, verify and GC see what it references.
type widgetEntry struct {
	Path   string        `json:"path"`
	Size   int64         `json:"size"`
	Chunks []widgetChunk `json:"chunks"`
}

type widgetChunk struct {
	ID  format.ID `json:"id"`
	Len int       `json:"len"`
}

// widgetDecoder reads widgets from the test's table.
type widgetDecoder struct{}

func (widgetDecoder) Table() db.Table     { return widgetTable }
func (widgetDecoder) RetiredKind() string { return widgetKind }

func (widgetDecoder) Decode(_ context.Context, rec driver.Record) (*driver.Asset, error) {
	id, name, raw := rec.Object.ID, rec.Object.Name, rec.Object.Spec
	if r := rec.Retired; r != nil {
		id, name, raw = r.ID, r.Name, r.Spec
	}
	var spec widgetSpec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return nil, fmt.Errorf("widget %s: %w", id, err)
	}
	return &driver.Asset{ID: id, Name: name, Kind: widgetKind, StorageID: spec.StorageID,
		Policy: api.Policy{Meta: api.Meta{ID: spec.PolicyID}}, Spec: &spec}, nil
}

// widgetDriver backs widgets up as one manifest entry over fixed-size
// data chunks, and restores them to the file a restore's target_path names.
type widgetDriver struct {
	// cleanups counts the janitor's calls.
	cleanups atomic.Int64
}

func (*widgetDriver) Kind() string { return widgetKind }

func (*widgetDriver) CheckBackup(context.Context, driver.Backup) error { return nil }

func (*widgetDriver) Backup(ctx context.Context, b driver.Backup) error {
	started := b.Now()
	spec := b.Asset().Spec.(*widgetSpec)
	data, err := os.ReadFile(spec.Source)
	if err != nil {
		return err
	}
	w, plan, err := b.Writer(ctx)
	if err != nil {
		return err
	}
	root, err := captureWidget(ctx, w, data)
	if err != nil {
		w.Abort(ctx)
		return err
	}
	return b.Commit(ctx, w, plan, root, driver.PointStats{LogicalBytes: int64(len(data)), Files: 1, Started: started})
}

// captureWidget stores data through a sink as data chunks and a manifest
// of kind "widget", and returns the manifest's root.
func captureWidget(ctx context.Context, sink repo.Sink, data []byte) (format.ID, error) {
	entry := widgetEntry{Path: "widget", Size: int64(len(data))}
	var ids []format.ID
	var chunks [][]byte
	for rest := data; len(rest) > 0; {
		c := rest[:min(len(rest), widgetChunkSize)]
		rest = rest[len(c):]
		id := sink.Hash(c)
		ids, chunks = append(ids, id), append(chunks, c)
		entry.Chunks = append(entry.Chunks, widgetChunk{ID: id, Len: len(c)})
	}
	if err := sink.Save(ctx, format.Data, ids, chunks); err != nil {
		return format.ID{}, err
	}
	m := repo.NewManifest(sink, widgetKind)
	if err := m.Add(ctx, entry); err != nil {
		return format.ID{}, err
	}
	return m.Close(ctx, nil)
}

func (*widgetDriver) PrepareRestore(_ context.Context, req api.RestoreRequest, _ api.Point, _ *driver.Asset) (*driver.RestoreParams, error) {
	if req.TargetPath == "" {
		return nil, api.FieldError("target_path", "is required: the file the widget is restored to")
	}
	return &driver.RestoreParams{RestoreRequest: req, TargetLocation: api.LocationServer}, nil
}

// RestoreTargets makes the directory a widget is restored into a target
// of its own: it belongs to the group it is named after ("team-b"), so
// the server's group rule for restore targets has something to hold a
// group admin to that only this driver knows about.
func (*widgetDriver) RestoreTargets(_ context.Context, req api.RestoreRequest, _ *driver.Asset) ([]driver.Target, error) {
	dir := filepath.Dir(req.TargetPath)
	return []driver.Target{{Field: "target_path", Label: "widget shelf", Name: dir, Group: filepath.Base(dir)}}, nil
}

func (*widgetDriver) Restore(ctx context.Context, r driver.Restore) error {
	root, err := r.Root(ctx)
	if err != nil {
		return err
	}
	src, err := r.Repository(ctx)
	if err != nil {
		return err
	}
	m, err := repo.OpenManifest(ctx, src, root)
	if err != nil {
		return err
	}
	if m.Root.Kind != widgetKind {
		return fmt.Errorf("point %s holds a %q manifest, not a widget", r.Point().ID, m.Root.Kind)
	}
	var e widgetEntry
	if err := m.Next(&e); err != nil {
		return fmt.Errorf("widget manifest: %w", err)
	}
	data := make([]byte, e.Size)
	ids := make([]format.ID, len(e.Chunks))
	offsets := make([]int, len(e.Chunks))
	off := 0
	for i, c := range e.Chunks {
		ids[i], offsets[i] = c.ID, off
		off += c.Len
	}
	if off != len(data) {
		return fmt.Errorf("widget manifest: chunks hold %d bytes, the widget %d", off, len(data))
	}
	if err := src.Load(ctx, ids, func(i int, chunk []byte) error {
		if len(chunk) != e.Chunks[i].Len {
			return fmt.Errorf("chunk %d: %d bytes, want %d", i, len(chunk), e.Chunks[i].Len)
		}
		copy(data[offsets[i]:], chunk)
		return nil
	}); err != nil {
		return err
	}
	if err := m.Next(&e); err != io.EOF {
		return fmt.Errorf("widget manifest: more than one entry (%v)", err)
	}
	return os.WriteFile(r.Params().TargetPath, data, 0o600)
}

func (d *widgetDriver) Cleanup(context.Context) error {
	d.cleanups.Add(1)
	return nil
}

// createWidgetTable migrates a fresh catalog and adds the widgets table,
// shaped like every asset table so the catalog's object calls work on it.
func createWidgetTable(t *testing.T, url string) *db.DB {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if _, err := d.Pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE filesets INCLUDING ALL)`, widgetTable)); err != nil {
		t.Fatal(err)
	}
	// The test's own handle on the catalog knows the asset tables as the
	// server's registry makes them known to its handles.
	reg := driver.NewRegistry(d)
	reg.RegisterDecoder(files.Decoder{DB: d})
	reg.RegisterDecoder(vms.Decoder{})
	reg.RegisterDecoder(widgetDecoder{})
	d.SetAssetTables(reg.AssetTables())
	return d
}

// TestSeamWidgetWorkload runs a made-up workload through backup now, the
// schedule, retention and restore, with nothing but its driver and
// decoder added to the server.
func TestSeamWidgetWorkload(t *testing.T) {
	ctx := context.Background()
	url := testparts.PostgresURL(t)
	catalog := createWidgetTable(t, url)
	// The clock runs in real time from noon UTC; the test moves it across
	// midnights for the schedule's daily slots and for retention.
	day0 := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	clock := servertest.NewClock(day0.Add(12*time.Hour), 1)
	widgets := &widgetDriver{}
	srv := servertest.Run(t, server.Config{Listen: "127.0.0.1:0", DataDir: t.TempDir(), DatabaseURL: url, LogLevel: "info",
		Now: clock.Now, ScheduleEvery: 100 * time.Millisecond, JanitorEvery: 200 * time.Millisecond, JobAttempts: 1,
		ExtraDrivers: []driver.Driver{widgets}, ExtraAssetTables: []driver.Decoder{widgetDecoder{}}})
	c := srv.Client

	stg, err := c.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "widgets", Kind: api.StorageFilesystem, Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	// A full every day at midnight, each point kept through the next day.
	pol, err := c.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "nightly", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: api.Weekdays, At: "00:00"}, Retention: api.Retention{DailyDays: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	source := filepath.Join(t.TempDir(), "widget.bin")
	contents := map[string][]byte{} // point id → the widget's bytes it holds
	setWidget := func(seed uint64) []byte {
		// Three and a bit chunks, random so that no day's bytes dedup.
		b := randomBytes(3*widgetChunkSize+1234, seed)
		if err := os.WriteFile(source, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return b
	}
	spec, _ := json.Marshal(widgetSpec{Name: "gadget", StorageID: stg.ID, PolicyID: pol.ID, Source: source, Group: "team-a"})
	obj, _, err := catalog.Create(ctx, widgetTable, "gadget", spec, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	widget := obj.ID

	// Backup now.
	data0 := setWidget(0)
	j, err := c.BackupNow(ctx, widget)
	if err != nil {
		t.Fatalf("backup now of a widget: %v", err)
	}
	j = waitJob(t, srv, j.ID)
	if j.State != api.JobSucceeded || j.PointID == "" || j.Progress.FilesDone != 1 || j.Progress.BytesDone != int64(len(data0)) {
		t.Fatalf("backup now: %+v", j)
	}
	p0 := j.PointID
	contents[p0] = data0
	pts, err := c.ListPoints(ctx, widget, "", 0)
	if err != nil || len(pts.Items) != 1 || pts.Items[0].ID != p0 || pts.Items[0].Kind != api.BackupFull ||
		pts.Items[0].LogicalBytes != int64(len(data0)) || pts.Items[0].StorageID != stg.ID ||
		pts.Items[0].AssetName != "gadget" || pts.Items[0].AssetDeleted {
		t.Fatalf("points after backup now: %+v %v", pts, err)
	}

	// The schedule: once the reconciler has seen the widget (it starts the
	// asset's schedule then, without backfill), crossing midnight makes
	// the night's slot due.
	waitFor(t, "the schedule to evaluate the widget", func() bool {
		_, ok, err := catalog.ScheduleMark(ctx, widget)
		return err == nil && ok
	})
	data1 := setWidget(1)
	clock.Advance(12 * time.Hour)
	day1 := day0.AddDate(0, 0, 1)
	p1 := waitScheduledPoint(t, srv, widget, day1)
	contents[p1] = data1

	// Retention: the next night's backup runs on day 2, when "kept
	// through the next day" has lapsed for day 0's point but not day 1's.
	data2 := setWidget(2)
	clock.Advance(24 * time.Hour)
	day2 := day1.AddDate(0, 0, 1)
	p2 := waitScheduledPoint(t, srv, widget, day2)
	contents[p2] = data2
	var live []string
	waitFor(t, "retention to expire day 0's point", func() bool {
		pts, err := c.ListPoints(ctx, widget, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		live = live[:0]
		for _, p := range pts.Items {
			live = append(live, p.ID)
		}
		return !slices.Contains(live, p0)
	})
	if !slices.Equal(live, []string{p2, p1}) {
		t.Fatalf("live points %v, want day 2's and day 1's %v", live, []string{p2, p1})
	}
	kept, err := c.GetPoint(ctx, p1)
	if err != nil {
		t.Fatal(err)
	}
	if kept.RestorableUntil == nil || !kept.RestorableUntil.Equal(day2.AddDate(0, 0, 1)) || !slices.Equal(kept.Reasons, []string{"daily"}) {
		t.Errorf("day 1's point: restorable until %v for %v, want %v for [daily]", kept.RestorableUntil, kept.Reasons, day2.AddDate(0, 0, 1))
	}
	if _, err := c.Restore(ctx, api.RestoreRequest{PointID: p0, TargetPath: filepath.Join(t.TempDir(), "gone")}); !isField(err, "point_id") {
		t.Errorf("restoring the expired point: %v, want a refusal naming point_id", err)
	}

	// Restore: the widget driver checks the request before it is queued,
	// then every kept point comes back byte for byte.
	if _, err := c.Restore(ctx, api.RestoreRequest{PointID: p1}); !isField(err, "target_path") {
		t.Errorf("restore without a target: %v, want the driver's refusal naming target_path", err)
	}
	for _, p := range []string{p1, p2} {
		target := filepath.Join(t.TempDir(), "restored.bin")
		r, err := c.Restore(ctx, api.RestoreRequest{PointID: p, TargetPath: target})
		if err != nil {
			t.Fatalf("restore of %s: %v", p, err)
		}
		if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
			t.Fatalf("restore of %s: %+v", p, r)
		}
		got, err := os.ReadFile(target)
		if err != nil || !bytes.Equal(got, contents[p]) {
			t.Errorf("point %s restored %d bytes (%v), not the %d it holds", p, len(got), err, len(contents[p]))
		}
	}

	// Who may restore onto what is the driver's to say: a group admin of
	// team-a restores the widget onto team-a's shelf, not team-b's.
	teamA := newRoleClients(t, srv).teamA
	_, err = teamA.Restore(ctx, api.RestoreRequest{PointID: p1, TargetPath: filepath.Join(t.TempDir(), "team-b", "w.bin")})
	wantRefused(t, "group_admin restoring a widget onto another group's shelf", err, http.StatusForbidden, "target_path")
	shelf := filepath.Join(t.TempDir(), "team-a")
	if err := os.Mkdir(shelf, 0o700); err != nil {
		t.Fatal(err)
	}
	if r, err := teamA.Restore(ctx, api.RestoreRequest{PointID: p1, TargetPath: filepath.Join(shelf, "w.bin")}); err != nil {
		t.Fatalf("group_admin restoring a widget onto its group's shelf: %v", err)
	} else if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("group_admin's restore of a widget: %+v", r)
	}

	// The janitor reaches every registered driver.
	waitFor(t, "the janitor to run the widget driver's cleanup", func() bool { return widgets.cleanups.Load() > 0 })

	// The policy a widget uses is in use, like any asset's.
	var conflict *api.Error
	if err := c.Policies().Delete(ctx, pol.ID); !errors.As(err, &conflict) || conflict.Status != 409 || !strings.Contains(err.Error(), "gadget") {
		t.Errorf("deleting the widget's policy: %v, want a conflict naming the widget", err)
	}
	// A deleted widget's points outlive it, like any asset's: listed under
	// its name, and restorable.
	if err := catalog.Delete(ctx, widgetTable, widget, nil); err != nil {
		t.Fatal(err)
	}
	pts, err = c.ListPoints(ctx, widget, "", 0)
	if err != nil || len(pts.Items) != 2 || pts.Items[0].AssetName != "gadget" || !pts.Items[0].AssetDeleted {
		t.Fatalf("points of the deleted widget: %+v %v", pts, err)
	}
	target := filepath.Join(t.TempDir(), "after-delete.bin")
	r, err := c.Restore(ctx, api.RestoreRequest{PointID: p2, TargetPath: target})
	if err != nil {
		t.Fatalf("restore of a deleted widget's point: %v", err)
	}
	if r = waitJob(t, srv, r.ID); r.State != api.JobSucceeded {
		t.Fatalf("restore of a deleted widget's point: %+v", r)
	}
	if got, err := os.ReadFile(target); err != nil || !bytes.Equal(got, contents[p2]) {
		t.Errorf("the deleted widget's point restored %d bytes (%v), not the %d it holds", len(got), err, len(contents[p2]))
	}
}

// waitScheduledPoint waits for the scheduled backup of an asset's slot to
// succeed, and returns its point.
func waitScheduledPoint(t *testing.T, srv *servertest.Server, assetID string, slot time.Time) string {
	t.Helper()
	var job api.Job
	waitFor(t, "the scheduled backup of "+slot.Format(time.RFC3339), func() bool {
		jobs, err := srv.Client.ListJobs(context.Background(), api.JobFilter{AssetID: assetID, Kind: api.JobBackup}, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs.Items {
			if j.Trigger == api.TriggerScheduled && j.Slot != nil && j.Slot.Equal(slot) {
				job = j
				return j.State != api.JobQueued && j.State != api.JobRunning
			}
		}
		return false
	})
	if job.State != api.JobSucceeded || job.PointID == "" || job.BackupType != api.BackupFull {
		t.Fatalf("scheduled backup of %s: %+v", slot.Format(time.RFC3339), job)
	}
	return job.PointID
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// isField tells whether err is an API error naming field.
func isField(err error, field string) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Field == field
}
