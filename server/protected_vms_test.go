package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// vmProtectionBase is what protecting a VM needs: the simulator registered
// as a vCenter, a policy and a filesystem storage.
type vmProtectionBase struct {
	vc              *testparts.VCSimEnv
	vcenter         *api.VCenter
	policy          *api.Policy
	storage         *api.Storage
	app, db         api.VM
	policyName, dir string
}

func newVMProtectionBase(t *testing.T, srv *servertest.Server) vmProtectionBase {
	t.Helper()
	ctx := context.Background()
	b := vmProtectionBase{vc: testparts.VCSim(t)}
	var err error
	b.vcenter, err = srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{
		Name: "lab", URL: b.vc.URL, Username: b.vc.Username, Password: b.vc.Password, Thumbprint: b.vc.Thumbprint,
	}})
	if err != nil {
		t.Fatalf("registering the simulator: %v", err)
	}
	b.policy, err = srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{
		Name: "nightly", Timezone: "UTC", Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"},
		Retention: api.Retention{DailyDays: 7},
	}})
	if err != nil {
		t.Fatal(err)
	}
	b.storage, err = srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: "local", Kind: api.StorageFilesystem, Path: t.TempDir(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range []struct {
		name string
		into *api.VM
	}{{"app-01", &b.app}, {"db-01", &b.db}} {
		got, err := srv.Client.VMs(ctx, b.vcenter.ID, api.VMFilter{Name: vm.name})
		if err != nil || len(got) != 1 {
			t.Fatalf("VM %s in the simulator: %d found, err = %v", vm.name, len(got), err)
		}
		*vm.into = got[0]
	}
	if len(b.app.Disks) != 1 || len(b.db.Disks) != 2 {
		t.Fatalf("simulator VMs: app-01 has %d disks, db-01 %d; want 1 and 2", len(b.app.Disks), len(b.db.Disks))
	}
	return b
}

func (b vmProtectionBase) spec(vm api.VM) api.ProtectedVMSpec {
	return api.ProtectedVMSpec{VCenterID: b.vcenter.ID, InstanceUUID: vm.InstanceUUID, PolicyID: b.policy.ID, StorageID: b.storage.ID}
}

// wantAPIError checks an answer's status and field, and that its message
// says what it should.
func wantAPIError(t *testing.T, what string, err error, status int, field string, says ...string) {
	t.Helper()
	e, ok := err.(*api.Error)
	if !ok {
		t.Errorf("%s: got %v, want HTTP %d on %q", what, err, status, field)
		return
	}
	if e.Status != status || e.Field != field {
		t.Errorf("%s: got HTTP %d on %q (%s), want HTTP %d on %q", what, e.Status, e.Field, e.Message, status, field)
	}
	for _, s := range says {
		if !strings.Contains(e.Message, s) {
			t.Errorf("%s: message %q does not say %q", what, e.Message, s)
		}
	}
}

func TestProtectedVMValidation(t *testing.T) {
	srv := servertest.Start(t)
	b := newVMProtectionBase(t, srv)
	ctx := context.Background()
	const missing = "00000000-0000-4000-8000-000000000000"
	for _, c := range []struct {
		what   string
		mutate func(*api.ProtectedVMSpec)
		status int
		field  string
		says   string
	}{
		{"no vCenter", func(s *api.ProtectedVMSpec) { s.VCenterID = "" }, 400, "vcenter_id", "required"},
		{"no VM", func(s *api.ProtectedVMSpec) { s.InstanceUUID = "" }, 400, "instance_uuid", "required"},
		{"no policy", func(s *api.ProtectedVMSpec) { s.PolicyID = "" }, 400, "policy_id", "required"},
		{"no storage", func(s *api.ProtectedVMSpec) { s.StorageID = "" }, 400, "storage_id", "required"},
		{"name for UUID", func(s *api.ProtectedVMSpec) { s.InstanceUUID = "db-01" }, 400, "instance_uuid", "instance UUID"},
		{"negative key", func(s *api.ProtectedVMSpec) { s.ExcludeDisks = []int32{-1} }, 400, "exclude_disks[0]", "device key"},
		{"key twice", func(s *api.ProtectedVMSpec) { s.ExcludeDisks = []int32{2001, 2001} }, 400, "exclude_disks[1]", "twice"},
		{"password alone", func(s *api.ProtectedVMSpec) { s.GuestPassword = "pw" }, 400, "guest_username", "guest_password"},
		{"bad group", func(s *api.ProtectedVMSpec) { s.Group = "team a" }, 400, "group", ""},
		{"unknown vCenter", func(s *api.ProtectedVMSpec) { s.VCenterID = missing }, 422, "vcenter_id", "does not exist"},
		{"unknown policy", func(s *api.ProtectedVMSpec) { s.PolicyID = "gold" }, 422, "policy_id", "does not exist"},
		{"unknown storage", func(s *api.ProtectedVMSpec) { s.StorageID = missing }, 422, "storage_id", "does not exist"},
		{"VM not in inventory", func(s *api.ProtectedVMSpec) { s.InstanceUUID = missing }, 422, "instance_uuid", "has no VM with instance UUID " + missing},
		{"disk the VM lacks", func(s *api.ProtectedVMSpec) { s.ExcludeDisks = []int32{b.db.Disks[0].Key, 2042} }, 422, "exclude_disks[1]", "has no disk with key 2042"},
		{"every disk", func(s *api.ProtectedVMSpec) {
			s.ExcludeDisks = []int32{b.db.Disks[1].Key, b.db.Disks[0].Key}
		}, 422, "exclude_disks", "every disk"},
	} {
		spec := b.spec(b.db)
		c.mutate(&spec)
		_, err := srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: spec})
		wantAPIError(t, c.what, err, c.status, c.field, c.says)
	}
	if all, err := srv.Client.ProtectedVMs().ListAll(ctx); err != nil || len(all) != 0 {
		t.Fatalf("refused creates stored %d protected VMs (err = %v)", len(all), err)
	}
}

func TestProtectedVMLifecycle(t *testing.T) {
	srv := servertest.Start(t)
	b := newVMProtectionBase(t, srv)
	ctx := context.Background()
	const guestPassword = "guest-Secret-4711"

	// References by name and an upper-case UUID are stored as ids and
	// the inventory's spelling.
	spec := b.spec(b.db)
	spec.VCenterID, spec.PolicyID, spec.StorageID = "lab", "nightly", "local"
	spec.InstanceUUID = strings.ToUpper(b.db.InstanceUUID)
	spec.ExcludeDisks = []int32{b.db.Disks[1].Key}
	spec.GuestUsername, spec.GuestPassword = "root", guestPassword
	spec.AppConsistent = new(bool)
	body := mustJSON(api.ProtectedVMRequest{ProtectedVMSpec: spec})
	send := func() (int, api.ProtectedVM, string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/protected-vms", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
		req.Header.Set("Idempotency-Key", "protect-db-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var p api.ProtectedVM
		json.Unmarshal(raw, &p)
		return resp.StatusCode, p, string(raw)
	}
	s1, p, raw1 := send()
	s2, again, raw2 := send()
	if s1 != http.StatusCreated || s2 != http.StatusOK || p.ID == "" || again.ID != p.ID {
		t.Fatalf("create %d %s, retry %d %s: want 201 then 200 with the same id", s1, raw1, s2, raw2)
	}
	if p.Name != "db-01" || p.MoRef != b.db.MoRef || p.Status != api.VMActive || p.RuleID != "" ||
		p.VCenterID != b.vcenter.ID || p.PolicyID != b.policy.ID || p.StorageID != b.storage.ID ||
		p.InstanceUUID != strings.ToLower(b.db.InstanceUUID) || !slices.Equal(p.ExcludeDisks, spec.ExcludeDisks) ||
		p.AppConsistent == nil || *p.AppConsistent || p.GuestUsername != "root" || !p.HasGuestPassword || p.GuestPassword != "" {
		t.Fatalf("created: %s", raw1)
	}
	for _, raw := range []string{raw1, raw2} {
		if strings.Contains(raw, guestPassword) || strings.Contains(raw, `"guest_password"`) {
			t.Fatalf("an answer carries the guest password: %s", raw)
		}
	}

	// The stored name finds it too (it holds a slash, escaped in the path).
	byName, err := srv.Client.ProtectedVMs().Get(ctx, api.ProtectedVMObjectName(b.vcenter.ID, b.db.InstanceUUID))
	if err != nil || byName.ID != p.ID {
		t.Fatalf("get by stored name: %v %+v", err, byName)
	}

	// A second protection of the same VM, whoever asks, is a conflict.
	dup := b.spec(b.db)
	_, err = srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: dup})
	wantAPIError(t, "second protection", err, http.StatusConflict, "instance_uuid", "already protected by protected VM "+p.ID, "db-01")

	// Updates in place: leaving the password out keeps it.
	upd := b.spec(b.db)
	upd.GuestUsername, upd.Group = "root", "team-a"
	u, err := srv.Client.ProtectedVMs().Update(ctx, p.ID, p.Version, api.ProtectedVMRequest{ProtectedVMSpec: upd})
	if err != nil {
		t.Fatal(err)
	}
	if u.Version != p.Version+1 || !u.HasGuestPassword || len(u.ExcludeDisks) != 0 || u.AppConsistent != nil || u.Group != "team-a" || u.Name != "db-01" {
		t.Fatalf("updated keeping the password: %+v", u)
	}
	// An update from an old read is refused.
	_, err = srv.Client.ProtectedVMs().Update(ctx, p.ID, p.Version, api.ProtectedVMRequest{ProtectedVMSpec: upd})
	wantAPIError(t, "stale update", err, http.StatusConflict, "version")

	// Which VM of which vCenter cannot change.
	other, err := srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{
		Name: "lab-again", URL: b.vc.URL, Username: b.vc.Username, Password: b.vc.Password, Thumbprint: b.vc.Thumbprint,
	}})
	if err != nil {
		t.Fatal(err)
	}
	moved := upd
	moved.VCenterID = other.ID
	_, err = srv.Client.ProtectedVMs().Update(ctx, p.ID, 0, api.ProtectedVMRequest{ProtectedVMSpec: moved})
	wantAPIError(t, "other vCenter", err, http.StatusBadRequest, "vcenter_id", "cannot change")
	swapped := upd
	swapped.InstanceUUID = b.app.InstanceUUID
	_, err = srv.Client.ProtectedVMs().Update(ctx, p.ID, 0, api.ProtectedVMRequest{ProtectedVMSpec: swapped})
	wantAPIError(t, "other VM", err, http.StatusBadRequest, "instance_uuid", "cannot change")
	// The same VM spelled in upper case is the same VM.
	same := upd
	same.InstanceUUID = strings.ToUpper(b.db.InstanceUUID)
	if u, err = srv.Client.ProtectedVMs().Update(ctx, p.ID, 0, api.ProtectedVMRequest{ProtectedVMSpec: same}); err != nil || !u.HasGuestPassword {
		t.Fatalf("update naming the VM in upper case: %v %+v", err, u)
	}
	// Another account drops the old account's password.
	otherUser := upd
	otherUser.GuestUsername = "backup"
	if u, err = srv.Client.ProtectedVMs().Update(ctx, p.ID, 0, api.ProtectedVMRequest{ProtectedVMSpec: otherUser}); err != nil || u.HasGuestPassword {
		t.Fatalf("update to another guest user without a password: %v %+v", err, u)
	}

	// Listing pages through both VMs.
	appVM, err := srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: b.spec(b.app)})
	if err != nil {
		t.Fatal(err)
	}
	page, err := srv.Client.ProtectedVMs().List(ctx, "", 1)
	if err != nil || len(page.Items) != 1 || page.NextPageToken == "" {
		t.Fatalf("first page: %v %+v", err, page)
	}
	rest, err := srv.Client.ProtectedVMs().List(ctx, page.NextPageToken, 1)
	if err != nil || len(rest.Items) != 1 || rest.Items[0].ID == page.Items[0].ID {
		t.Fatalf("second page: %v %+v", err, rest)
	}

	// A vCenter still in use cannot be deleted, by protected VMs nor by rules.
	rule, err := srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: api.VMProtectionRuleSpec{
		// A folder without VMs: the selection reconciler, which runs after
		// a rule is created, must not protect anything here.
		Name: "prod", VCenterID: b.vcenter.ID, Folders: []string{"/DC0/vm/nowhere"}, PolicyID: b.policy.ID, StorageID: b.storage.ID,
	}})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Client.VCenters().Delete(ctx, b.vcenter.ID)
	wantAPIError(t, "delete vCenter with 2 VMs", err, http.StatusConflict, "", "used by 2 protected VMs", "delete them first")
	if err := srv.Client.ProtectedVMs().Delete(ctx, appVM.ID); err != nil {
		t.Fatal(err)
	}
	err = srv.Client.VCenters().Delete(ctx, b.vcenter.ID)
	wantAPIError(t, "delete vCenter with 1 VM", err, http.StatusConflict, "", `used by protected VM "db-01"`)
	if err := srv.Client.ProtectedVMs().Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.ProtectedVMs().Get(ctx, p.ID); !api.IsNotFound(err) {
		t.Fatalf("deleted protected VM: %v", err)
	}
	err = srv.Client.VCenters().Delete(ctx, b.vcenter.ID)
	wantAPIError(t, "delete vCenter with a rule", err, http.StatusConflict, "", `used by VM protection rule "prod"`)
	if err := srv.Client.VMProtectionRules().Delete(ctx, rule.ID); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client.VCenters().Delete(ctx, b.vcenter.ID); err != nil {
		t.Fatalf("deleting the vCenter nothing uses any more: %v", err)
	}
}

// TestProtectedVMConcurrentCreates protects one VM from several clients at
// once: one wins, and every other gets the 409 that says who protects it.
func TestProtectedVMConcurrentCreates(t *testing.T) {
	srv := servertest.Start(t)
	b := newVMProtectionBase(t, srv)
	const n = 4
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := srv.Client.ProtectedVMs().Create(context.Background(), api.ProtectedVMRequest{ProtectedVMSpec: b.spec(b.app)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	won := 0
	for err := range errs {
		if err == nil {
			won++
			continue
		}
		wantAPIError(t, "concurrent create", err, http.StatusConflict, "instance_uuid", "already protected by protected VM")
	}
	if all, err := srv.Client.ProtectedVMs().ListAll(context.Background()); won != 1 || err != nil || len(all) != 1 {
		t.Fatalf("%d of %d concurrent creates succeeded, %d protected VMs stored (err = %v)", won, n, len(all), err)
	}
}

// TestProtectedVMOfARule follows a protection the selection reconciler
// made for a rule: it cannot be protected a second time nor deleted while
// the rule selects it, and an edit takes it over from the rule.
func TestProtectedVMOfARule(t *testing.T) {
	srv := servertest.Start(t)
	b := newVMProtectionBase(t, srv)
	ctx := context.Background()
	rule, err := srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: api.VMProtectionRuleSpec{
		Name: "prod", VCenterID: b.vcenter.ID, Folders: []string{"/DC0/vm/prod"}, PolicyID: b.policy.ID, StorageID: b.storage.ID,
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Creating the rule queues a selection run; nothing else would run
	// one within the test.
	name := api.ProtectedVMObjectName(b.vcenter.ID, b.app.InstanceUUID)
	var p *api.ProtectedVM
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if p, err = srv.Client.ProtectedVMs().Get(ctx, name); err == nil {
			break
		}
		if !api.IsNotFound(err) || time.Now().After(deadline) {
			t.Fatalf("the rule's protection of app-01: %v", err)
		}
	}
	if p.RuleID != rule.ID || p.Status != api.VMActive || p.Name != "app-01" || p.PolicyID != b.policy.ID {
		t.Fatalf("protection made for the rule: %+v", p)
	}

	_, err = srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: b.spec(b.app)})
	wantAPIError(t, "protecting a rule's VM by hand", err, http.StatusConflict, "instance_uuid",
		"already protected by protected VM "+p.ID, "created by VM protection rule "+rule.ID)
	err = srv.Client.ProtectedVMs().Delete(ctx, p.ID)
	wantAPIError(t, "deleting a rule's VM", err, http.StatusConflict, "rule_id", `VM protection rule "prod" protects VM "app-01"`, "exclude_instance_uuids")

	spec := p.ProtectedVMSpec
	spec.GuestUsername = "root"
	taken, err := srv.Client.ProtectedVMs().Update(ctx, p.ID, p.Version, api.ProtectedVMRequest{ProtectedVMSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	if taken.RuleID != "" || taken.GuestUsername != "root" || taken.ID != p.ID {
		t.Fatalf("after an edit: %+v", taken)
	}
	if err := srv.Client.ProtectedVMs().Delete(ctx, p.ID); err != nil {
		t.Fatalf("deleting a protection taken over from its rule: %v", err)
	}
}

// TestProtectedVMGuestPasswordSecret follows the guest password everywhere
// it could leak: answers, logs and the database row.
func TestProtectedVMGuestPasswordSecret(t *testing.T) {
	srv := servertest.Start(t)
	b := newVMProtectionBase(t, srv)
	ctx := context.Background()
	const guestPassword = "guest-Secret-0815"
	spec := b.spec(b.app)
	spec.GuestUsername, spec.GuestPassword = "Administrator", guestPassword
	p, err := srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	// A refused update with the password must not echo it either.
	bad := spec
	bad.ExcludeDisks = []int32{2099}
	_, err = srv.Client.ProtectedVMs().Update(ctx, p.ID, p.Version, api.ProtectedVMRequest{ProtectedVMSpec: bad})
	wantAPIError(t, "update with a missing disk", err, http.StatusUnprocessableEntity, "exclude_disks[0]", "2099")
	if strings.Contains(err.Error(), guestPassword) {
		t.Fatal("an error message carries the guest password")
	}

	for _, path := range []string{"/v1/protected-vms/" + p.ID, "/v1/protected-vms"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+srv.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.Contains(string(raw), guestPassword) ||
			strings.Contains(string(raw), `"guest_password"`) || !strings.Contains(string(raw), `"has_guest_password": true`) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
		}
	}
	if strings.Contains(srv.Logs(), guestPassword) || strings.Contains(srv.Logs(), b.vc.Password) {
		t.Fatal("the server log contains a password")
	}

	conn, err := pgx.Connect(ctx, srv.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var specText string
	var sealed []byte
	if err := conn.QueryRow(ctx, `SELECT spec::text, sealed_secret FROM protected_vms WHERE id = $1`, p.ID).Scan(&specText, &sealed); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(specText, guestPassword) || strings.Contains(specText, `"guest_password"`) ||
		strings.Contains(string(sealed), guestPassword) || len(sealed) == 0 {
		t.Fatalf("the database holds the guest password in clear text, or not at all: %s", specText)
	}
	// The row is the API object without Meta, as the reconcilers read it.
	var stored api.ProtectedVM
	if err := json.Unmarshal([]byte(specText), &stored); err != nil || stored.Name != "app-01" || stored.Status != api.VMActive ||
		stored.InstanceUUID != p.InstanceUUID || stored.ID != "" || !stored.HasGuestPassword {
		t.Fatalf("stored spec %s: %v", specText, err)
	}
}

func TestVMProtectionRuleValidationAndLifecycle(t *testing.T) {
	srv := servertest.Start(t)
	b := newVMProtectionBase(t, srv)
	ctx := context.Background()
	valid := api.VMProtectionRuleSpec{Name: "prod", VCenterID: b.vcenter.ID, Folders: []string{"/DC0/vm/prod"},
		PolicyID: b.policy.ID, StorageID: b.storage.ID}
	for _, c := range []struct {
		what   string
		mutate func(*api.VMProtectionRuleSpec)
		status int
		field  string
		says   string
	}{
		{"no name", func(s *api.VMProtectionRuleSpec) { s.Name = "" }, 400, "name", ""},
		{"no vCenter", func(s *api.VMProtectionRuleSpec) { s.VCenterID = "" }, 400, "vcenter_id", "required"},
		{"no selector", func(s *api.VMProtectionRuleSpec) { s.Folders = nil }, 400, "folders", "at least one selector"},
		{"relative folder", func(s *api.VMProtectionRuleSpec) { s.Folders = []string{"/DC0/vm", "prod"} }, 400, "folders[1]", "inventory path"},
		{"tag without category", func(s *api.VMProtectionRuleSpec) { s.Tags = []string{"gold"} }, 400, "tags[0]", "category:tag"},
		{"bad name regex", func(s *api.VMProtectionRuleSpec) { s.NameRegex = "db-(" }, 400, "name_regex", "regular expression"},
		{"bad exclusion regex", func(s *api.VMProtectionRuleSpec) { s.ExcludeNameRegex = "[" }, 400, "exclude_name_regex", "regular expression"},
		{"name for UUID", func(s *api.VMProtectionRuleSpec) { s.ExcludeInstanceUUIDs = []string{"db-01"} }, 400, "exclude_instance_uuids[0]", "instance UUID"},
		{"unknown vCenter", func(s *api.VMProtectionRuleSpec) { s.VCenterID = "nowhere" }, 422, "vcenter_id", "does not exist"},
		{"unknown policy", func(s *api.VMProtectionRuleSpec) { s.PolicyID = "gold" }, 422, "policy_id", "does not exist"},
		{"unknown storage", func(s *api.VMProtectionRuleSpec) { s.StorageID = "offsite" }, 422, "storage_id", "does not exist"},
	} {
		spec := valid
		c.mutate(&spec)
		_, err := srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: spec})
		wantAPIError(t, c.what, err, c.status, c.field, c.says)
	}

	byName := valid
	byName.VCenterID, byName.PolicyID, byName.StorageID = "lab", "nightly", "local"
	byName.Tags, byName.NameRegex, byName.ExcludeNameRegex = []string{"backup:gold"}, "^(app|db)-", "-old$"
	byName.ExcludeInstanceUUIDs = []string{strings.ToUpper(b.app.InstanceUUID)}
	r, err := srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: byName})
	if err != nil {
		t.Fatal(err)
	}
	if r.SelectedCount != 0 || r.VCenterID != b.vcenter.ID || r.PolicyID != b.policy.ID || r.StorageID != b.storage.ID ||
		!slices.Equal(r.ExcludeInstanceUUIDs, []string{strings.ToLower(b.app.InstanceUUID)}) || r.NameRegex != "^(app|db)-" {
		t.Fatalf("created rule: %+v", r)
	}
	_, err = srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: valid})
	wantAPIError(t, "same name", err, http.StatusConflict, "name", "already has this name")

	renamed := valid
	renamed.Name, renamed.Folders = "production", []string{"/DC0/vm/prod", "/DC0/vm/legacy"}
	u, err := srv.Client.VMProtectionRules().Update(ctx, r.ID, r.Version, api.VMProtectionRuleRequest{VMProtectionRuleSpec: renamed})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != r.ID || u.Name != "production" || len(u.Tags) != 0 || u.NameRegex != "" || len(u.Folders) != 2 || u.Version != r.Version+1 {
		t.Fatalf("updated rule: %+v", u)
	}
	got, err := srv.Client.VMProtectionRules().Get(ctx, "production")
	if err != nil || got.ID != r.ID {
		t.Fatalf("get by name: %v %+v", err, got)
	}
	if err := srv.Client.VMProtectionRules().Delete(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.VMProtectionRules().Get(ctx, r.ID); !api.IsNotFound(err) {
		t.Fatalf("deleted rule: %v", err)
	}
}

// TestProtectedVMAndRuleGroupAdmin checks that group_admin tokens manage
// only the protections of their groups.
func TestProtectedVMAndRuleGroupAdmin(t *testing.T) {
	srv := servertest.Start(t)
	b := newVMProtectionBase(t, srv)
	ctx := context.Background()
	tok, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "team-a-admin", Role: api.RoleGroupAdmin, Groups: []string{"team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	team := srv.NewClient(t, tok.Secret)

	spec := b.spec(b.app)
	spec.Group = "team-b"
	_, err = team.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: spec})
	wantAPIError(t, "VM of another group", err, http.StatusForbidden, "group", "administrative groups")
	spec.Group = ""
	_, err = team.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: spec})
	wantAPIError(t, "VM of no group", err, http.StatusForbidden, "group")
	spec.Group = "team-a"
	p, err := team.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: spec})
	if err != nil {
		t.Fatalf("group admin protecting a VM of its group: %v", err)
	}
	// It cannot give the VM away to another group.
	spec.Group = "team-b"
	_, err = team.ProtectedVMs().Update(ctx, p.ID, 0, api.ProtectedVMRequest{ProtectedVMSpec: spec})
	wantAPIError(t, "VM given away", err, http.StatusForbidden, "group")

	rule := api.VMProtectionRuleSpec{Name: "team-b-prod", VCenterID: b.vcenter.ID, NameRegex: "^db-",
		PolicyID: b.policy.ID, StorageID: b.storage.ID, Group: "team-b"}
	_, err = team.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: rule})
	wantAPIError(t, "rule of another group", err, http.StatusForbidden, "group")
	// An admin's rule of another group cannot be deleted by the group admin.
	other, err := srv.Client.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: rule})
	if err != nil {
		t.Fatal(err)
	}
	wantAPIError(t, "delete another group's rule", team.VMProtectionRules().Delete(ctx, other.ID), http.StatusForbidden, "group")
	rule.Name, rule.Group = "team-a-db", "team-a"
	mine, err := team.VMProtectionRules().Create(ctx, api.VMProtectionRuleRequest{VMProtectionRuleSpec: rule})
	if err != nil {
		t.Fatalf("group admin creating a rule of its group: %v", err)
	}
	if err := team.VMProtectionRules().Delete(ctx, mine.ID); err != nil {
		t.Fatal(err)
	}
	if err := team.ProtectedVMs().Delete(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	// Read-only tokens read, and write nothing.
	ro, err := srv.Client.CreateToken(ctx, api.TokenRequest{Name: "auditor", Role: api.RoleReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	reader := srv.NewClient(t, ro.Secret)
	if list, err := reader.VMProtectionRules().ListAll(ctx); err != nil || len(list) != 1 {
		t.Fatalf("read-only listing: %v %d", err, len(list))
	}
	_, err = reader.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: b.spec(b.db)})
	if e, ok := err.(*api.Error); !ok || e.Status != http.StatusForbidden {
		t.Fatalf("read-only create: %v", err)
	}
}

// TestOpenAPIDescribesTheVMProtectionTypes holds the protected VM and rule
// types to their schemas, as TestOpenAPIDescribesTheTypes does the others.
func TestOpenAPIDescribesTheVMProtectionTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, v := range map[string]any{
		"ProtectedVMRequest": api.ProtectedVMRequest{}, "ProtectedVM": api.ProtectedVM{}, "ProtectedVMList": api.List[api.ProtectedVM]{},
		"VMProtectionRuleRequest": api.VMProtectionRuleRequest{}, "VMProtectionRule": api.VMProtectionRule{},
		"VMProtectionRuleList": api.List[api.VMProtectionRule]{},
	} {
		schema, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("openapi.json has no schema %s", name)
			continue
		}
		var props []string
		for p := range schema.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if got := jsonFields(reflect.TypeOf(v), !strings.HasSuffix(name, "Request")); !slices.Equal(got, props) {
			t.Errorf("schema %s has %v, Go type has %v", name, props, got)
		}
		for _, r := range schema.Required {
			if !slices.Contains(props, r) {
				t.Errorf("schema %s requires %s, which it does not describe", name, r)
			}
		}
	}
}
