package driver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/driver/drivertest"
)

// stubDriver is a driver of a kind that does nothing; cleanup returns err.
type stubDriver struct {
	kind string
	err  error
}

func (d stubDriver) Kind() string                                   { return d.kind }
func (stubDriver) CheckBackup(context.Context, driver.Backup) error { return nil }
func (stubDriver) Backup(context.Context, driver.Backup) error      { return nil }
func (stubDriver) Restore(context.Context, driver.Restore) error    { return nil }
func (d stubDriver) Cleanup(context.Context) error                  { return d.err }
func (stubDriver) PrepareRestore(context.Context, api.RestoreRequest, api.Point, *driver.Asset) (*driver.RestoreParams, error) {
	return nil, nil
}

// stubSpec is the spec the stub decoder reads.
type stubSpec struct {
	Name      string `json:"name"`
	StorageID string `json:"storage_id"`
	PolicyID  string `json:"policy_id"`
}

// stubDecoder reads a catalog table as assets of one kind.
type stubDecoder struct {
	table       db.Table
	retiredKind string
	kind        string
}

func (d stubDecoder) Table() db.Table     { return d.table }
func (d stubDecoder) RetiredKind() string { return d.retiredKind }

func (d stubDecoder) Decode(_ context.Context, rec driver.Record) (*driver.Asset, error) {
	id, raw := rec.Object.ID, rec.Object.Spec
	if rec.Retired != nil {
		id, raw = rec.Retired.ID, rec.Retired.Spec
	}
	var s stubSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return &driver.Asset{ID: id, Name: s.Name, Kind: d.kind, StorageID: s.StorageID, Policy: api.Policy{Meta: api.Meta{ID: s.PolicyID}}, Spec: &s}, nil
}

func TestRegisterRefusesADuplicateKind(t *testing.T) {
	r := driver.NewRegistry(nil)
	r.Register(stubDriver{kind: "a"}, stubDriver{kind: "b"})
	defer func() {
		msg := fmt.Sprint(recover())
		if !strings.Contains(msg, `"a" registered twice`) {
			t.Errorf("registering kind a twice: panic %q, want one naming the kind", msg)
		}
	}()
	r.Register(stubDriver{kind: "a"})
}

func TestForUnknownKind(t *testing.T) {
	r := driver.NewRegistry(nil)
	r.Register(stubDriver{kind: "known"})
	if d, err := r.For("known"); err != nil || d.Kind() != "known" {
		t.Fatalf("For(known) = %v, %v", d, err)
	}
	d, err := r.For("made-up")
	if !errors.Is(err, driver.ErrNoDriver) || !strings.Contains(err.Error(), `"made-up"`) || d != nil {
		t.Errorf("For(made-up) = %v, %v; want ErrNoDriver naming the kind", d, err)
	}
}

func TestEachJoinsEveryDriversError(t *testing.T) {
	r := driver.NewRegistry(nil)
	errA, errC := errors.New("a failed"), errors.New("c failed")
	r.Register(stubDriver{kind: "c", err: errC}, stubDriver{kind: "b"}, stubDriver{kind: "a", err: errA})
	var called []string
	err := r.Each(func(d driver.Driver) error {
		called = append(called, d.Kind())
		return d.Cleanup(context.Background())
	})
	if strings.Join(called, ",") != "a,b,c" {
		t.Errorf("Each called %v, want every driver in kind order", called)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errC) {
		t.Errorf("Each = %v, want both drivers' errors", err)
	}
	if err := r.Each(func(driver.Driver) error { return nil }); err != nil {
		t.Errorf("Each with no failure = %v", err)
	}
}

// TestLoadLiveAndRetired loads assets through their decoders from a real
// catalog: a live one with its policy as stored now, a retired one with
// the policy recorded when it was deleted, and a retired one of a kind no
// decoder reads.
func TestLoadLiveAndRetired(t *testing.T) {
	env := drivertest.New(t)
	ctx := context.Background()
	r := driver.NewRegistry(env.DB)
	r.RegisterDecoder(stubDecoder{table: db.Filesets, retiredKind: "fileset", kind: "stub"})
	r.Register(stubDriver{kind: "stub"})
	if got := r.Tables(); len(got) != 1 || got[0] != db.Filesets {
		t.Errorf("Tables() = %v", got)
	}

	live := env.Create(t, db.Filesets, "live", stubSpec{Name: "live", StorageID: env.StorageID, PolicyID: env.PolicyID})
	a, err := r.Load(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != live || a.Kind != "stub" || a.Retired || a.StorageID != env.StorageID || a.Policy.ID != env.PolicyID ||
		a.Policy.Name != "daily" || a.Policy.Retention.DailyDays != 7 || a.Spec.(*stubSpec).Name != "live" {
		t.Errorf("live asset: %+v", a)
	}

	gone := env.Create(t, db.Filesets, "gone", stubSpec{Name: "gone", StorageID: env.StorageID, PolicyID: env.PolicyID})
	if err := env.DB.Delete(ctx, db.Filesets, gone, nil); err != nil {
		t.Fatal(err)
	}
	a, err = r.Load(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != gone || a.Kind != "stub" || !a.Retired || a.Scheduled() || a.StorageID != env.StorageID ||
		a.Policy.Name != "daily" || a.Policy.Retention.DailyDays != 7 {
		t.Errorf("retired asset: %+v", a)
	}

	if _, err := r.Load(ctx, "00000000-0000-0000-0000-000000000000"); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("loading an asset of no kind: %v, want db.ErrNotFound", err)
	}

	// A registry whose decoders do not read retired filesets: the
	// retired asset's kind is named.
	other := driver.NewRegistry(env.DB)
	other.RegisterDecoder(stubDecoder{table: db.ProtectedVMs, retiredKind: "protected_vm", kind: "stub"})
	other.Register(stubDriver{kind: "stub"})
	if _, err := other.Load(ctx, gone); err == nil || !strings.Contains(err.Error(), `"fileset"`) {
		t.Errorf("loading a retired asset of an unread kind: %v, want an error naming the kind", err)
	}
}
