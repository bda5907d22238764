package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	servertest.StopShared()
	os.Exit(code)
}

// haven runs a client command as the binary would, against the server in
// HAVEN_ENDPOINT, and returns its exit code and what it printed. The
// commands print to os.Stdout and os.Stderr, so tests that use it must not
// run in parallel.
func haven(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(&out, outR); done <- struct{}{} }()
	go func() { _, _ = io.Copy(&errOut, errR); done <- struct{}{} }()
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outW, errW
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	code = runClient(ctx, args)
	cancel()
	os.Stdout, os.Stderr = oldOut, oldErr
	outW.Close()
	errW.Close()
	<-done
	<-done
	t.Logf("haven %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// TestRestoreVM drives VM restores through `haven restore`: as a new VM,
// over the original and as one disk attached to another VM, each checked
// against the disks in the simulator; misused flags and refusals name the
// flag to fix.
func TestRestoreVM(t *testing.T) {
	srv := servertest.Start(t)
	vc := testparts.VCSim(t)
	ctx := context.Background()
	t.Setenv("HAVEN_ENDPOINT", srv.URL)
	t.Setenv("HAVEN_TOKEN", srv.AdminToken)

	st, err := srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{
		Name: "vms", Kind: api.StorageFilesystem, Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: api.PolicySpec{Name: "vm-daily", Timezone: "UTC",
		Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"}, Retention: api.Retention{DailyDays: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	center, err := srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim", URL: vc.URL,
		Username: vc.Username, Password: vc.Password, Thumbprint: vc.Thumbprint}})
	if err != nil {
		t.Fatal(err)
	}
	vm := func(name string) api.VM {
		t.Helper()
		vms, err := srv.Client.VMs(ctx, center.ID, api.VMFilter{Name: name})
		if err != nil || len(vms) != 1 {
			t.Fatalf("VM %s: %v (%d found)", name, err, len(vms))
		}
		return vms[0]
	}
	app, db := vm("app-01"), vm("db-01")
	vc.WriteDisk(t, "app-01", 0, 1<<20, bytes.Repeat([]byte("backed up"), 10_000))
	want := vc.DiskBytes(t, "app-01", 0)
	pv, err := srv.Client.ProtectedVMs().Create(ctx, api.ProtectedVMRequest{ProtectedVMSpec: api.ProtectedVMSpec{
		VCenterID: center.ID, InstanceUUID: app.InstanceUUID, PolicyID: pol.ID, StorageID: st.ID}})
	if err != nil {
		t.Fatal(err)
	}
	j, err := srv.Client.BackupNow(ctx, pv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if j, err = srv.Client.WaitJob(ctx, j.ID, 100*time.Millisecond); err != nil || j.State != api.JobSucceeded {
		t.Fatalf("backup: %v %+v", err, j)
	}
	point := j.PointID
	// From here on, only a restore from the point brings these bytes back.
	vc.WriteDisk(t, "app-01", 0, 1<<20, bytes.Repeat([]byte("changed!!"), 10_000))
	sameDisk := func(vmName string, disk int) {
		t.Helper()
		if got := vc.DiskBytes(t, vmName, disk); !bytes.Equal(got, want) {
			t.Fatalf("disk %d of %s does not hold app-01's backed-up bytes", disk, vmName)
		}
	}

	t.Run("protected-vms", func(t *testing.T) {
		code, out, _ := haven(t, "protected-vms", "list")
		if code != 0 || !strings.Contains(out, pv.ID) || !strings.Contains(out, "app-01") || !strings.Contains(out, "sim") {
			t.Fatalf("protected-vms list: exit %d, want %s (app-01 in vCenter sim) listed", code, pv.ID)
		}
		for _, ref := range []string{pv.ID, "app-01", strings.ToUpper(app.InstanceUUID)} {
			code, out, _ = haven(t, "protected-vms", "show", ref)
			var got api.ProtectedVM
			if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.ID != pv.ID {
				t.Fatalf("protected-vms show %s: exit %d, want %s", ref, code, pv.ID)
			}
		}
		if code, _, errOut := haven(t, "protected-vms", "show", "web-99"); code != 1 || !strings.Contains(errOut, "no protected VM") {
			t.Fatalf("protected-vms show of an unknown VM: exit %d", code)
		}
	})

	t.Run("new VM", func(t *testing.T) {
		code, out, _ := haven(t, "restore", point, "--vm-name", "app-01-cli", "--vm-folder", "/DC0/vm",
			"--vm-network", "VM Network=VM Network", "--wait")
		restored := vm("app-01-cli")
		if code != 0 || restored.Folder != "/DC0/vm" ||
			!strings.Contains(out, "VM app-01-cli (instance UUID "+restored.InstanceUUID+", "+restored.MoRef+")") {
			t.Fatalf("restore as a new VM: exit %d; the simulator has it in %s as %s", code, restored.Folder, restored.InstanceUUID)
		}
		sameDisk("app-01-cli", 0)

		code, _, errOut := haven(t, "restore", point, "--vm-name", "app-01-cli", "--vm-folder", "/DC0/vm")
		if code != 1 || !strings.Contains(errOut, "vm.name: vsphere: already exists") || !strings.Contains(errOut, "(see --vm-name)") {
			t.Fatalf("restore onto a taken name: exit %d", code)
		}
	})

	t.Run("over the original", func(t *testing.T) {
		code, out, _ := haven(t, "restore", point, "--overwrite-original", "--wait")
		if code != 0 || !strings.Contains(out, "VM app-01 (instance UUID "+app.InstanceUUID) {
			t.Fatalf("restore over the original: exit %d", code)
		}
		sameDisk("app-01", 0)
	})

	t.Run("one disk", func(t *testing.T) {
		code, out, _ := haven(t, "restore", point, "--disk", strconv.Itoa(int(app.Disks[0].Key)), "--attach-to", db.InstanceUUID, "--wait")
		after := vm("db-01")
		if code != 0 || len(after.Disks) != len(db.Disks)+1 || !strings.Contains(out, "attached to VM db-01 (instance UUID "+db.InstanceUUID) {
			t.Fatalf("single-disk restore: exit %d; db-01 has %d disks, had %d", code, len(after.Disks), len(db.Disks))
		}
		sameDisk("db-01", len(db.Disks))
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--vm-name", "x", "--disk", "2000", "--attach-to", db.InstanceUUID}, "choose one"},
			{[]string{"--vm-name", "x", "--target", "/tmp/x"}, "a VM restore takes none of them"},
			{[]string{"--vm-name", "x", "--vm-network", "VM Network"}, `--vm-network "VM Network": want OLD=NEW`},
			{[]string{"--disk", "2000"}, "needs --disk KEY"},
			{[]string{"--vm-folder", "/DC0/vm"}, "vm.name: is required for a restore as a new VM (see --vm-name)"},
			{[]string{"--vm-name", "x", "--vm-folder", "DC0/vm"}, "vm.folder: must be an inventory path"},
			{nil, "vm: the point is a VM point"},
		} {
			code, _, errOut := haven(t, append([]string{"restore", point}, tc.args...)...)
			if code != 1 || !strings.Contains(errOut, tc.want) {
				t.Errorf("haven restore %s: exit %d, want an error with %q", strings.Join(tc.args, " "), code, tc.want)
			}
		}
	})

	// Deleting the protection leaves its point listed under the VM's name
	// and restorable; the point holds its storage.
	t.Run("delete", func(t *testing.T) {
		if code, out, _ := haven(t, "protected-vms", "delete", "app-01"); code != 0 || !strings.Contains(out, "protected VM app-01 ("+pv.ID+") deleted") {
			t.Fatalf("protected-vms delete: exit %d", code)
		}
		if code, _, _ := haven(t, "protected-vms", "show", pv.ID); code != 1 {
			t.Fatalf("protected-vms show after the delete: exit %d", code)
		}
		if code, _, errOut := haven(t, "protected-vms", "delete", "app-01"); code != 1 || !strings.Contains(errOut, "no protected VM") {
			t.Fatalf("deleting it again: exit %d", code)
		}
		code, out, _ := haven(t, "points", "list")
		if code != 0 || !strings.Contains(out, point) || !strings.Contains(out, "app-01 (deleted)") {
			t.Fatalf("points list after the delete: exit %d, want %s of app-01 (deleted)", code, point)
		}
		if code, _, _ := haven(t, "restore", point, "--vm-name", "app-01-after", "--vm-folder", "/DC0/vm", "--wait"); code != 0 {
			t.Fatalf("restore after the delete: exit %d", code)
		}
		sameDisk("app-01-after", 0)
		if code, _, errOut := haven(t, "storages", "delete", "vms"); code != 1 || !strings.Contains(errOut, "holds 1 recovery points") {
			t.Fatalf("storages delete with a point: exit %d", code)
		}
	})
}

// TestDatabaseRestoreFlags: the database flags make a database restore,
// a time that is not RFC 3339 is refused naming --pitr, and file flags do
// not mix with database ones.
func TestDatabaseRestoreFlags(t *testing.T) {
	req, err := restoreRequest("p1", restoreOptions{pitr: "2026-12-05T10:30:00Z", endState: "standby", dbDataDir: "/srv/pg/r", dbPort: 5433})
	if err != nil {
		t.Fatal(err)
	}
	d := req.Database
	if d == nil || d.PointInTime == nil || !d.PointInTime.Equal(time.Date(2026, 12, 5, 10, 30, 0, 0, time.UTC)) || d.EndState != "standby" ||
		d.DataDir != "/srv/pg/r" || d.Port != 5433 || req.VM != nil || req.PointID != "p1" {
		t.Fatalf("database restore request: %+v (database %+v)", req, d)
	}
	if req, err := restoreRequest("p1", restoreOptions{restorePoint: "before_deploy", dbOverwrite: true}); err != nil ||
		req.Database == nil || req.Database.RestorePoint != "before_deploy" || !req.Database.Overwrite {
		t.Fatalf("restore point: %+v %v", req, err)
	}
	if _, err := restoreRequest("p1", restoreOptions{pitr: "yesterday"}); err == nil || !strings.Contains(err.Error(), "--pitr") {
		t.Errorf("--pitr yesterday: %v, want an error naming --pitr", err)
	}
	if _, err := restoreRequest("p1", restoreOptions{pitr: "2026-12-05T10:30:00Z", target: "/tmp/x"}); err == nil {
		t.Error("--target with --pitr: no error")
	}
}
