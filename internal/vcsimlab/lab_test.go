package vcsimlab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/guest"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func start(t *testing.T, opts Options) *Lab {
	t.Helper()
	l, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestVCSimLabDisks goes through a disk's life as a backup sees it, all
// through the SOAP API: writes show in the bytes and, after a snapshot,
// in QueryChangedDiskAreas; a resize changes the capacity vSphere reports
// and the extent's length; fills are tracked like writes.
func TestVCSimLabDisks(t *testing.T) {
	ctx := context.Background()
	l := start(t, Options{VMs: []VMSpec{{Folder: "apps/web", Name: "web-01", DiskSizes: []int64{2 << 20, 80 << 20}}}})
	if len(l.VMs) != 1 || l.VMs[0] != "web-01" {
		t.Fatalf("VMs: %v", l.VMs)
	}
	ref, err := l.VMRef("web-01")
	must(t, err)
	vm := object.NewVirtualMachine(l.Client.Client, ref)
	var props mo.VirtualMachine
	must(t, vm.Properties(ctx, ref, []string{"parent"}, &props))
	folder, err := object.NewCommon(l.Client.Client, *props.Parent).ObjectName(ctx)
	if err != nil || folder != "web" {
		t.Fatalf("parent folder %q %v", folder, err)
	}

	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(true)})
	must(t, err)
	must(t, task.Wait(ctx))
	id0, err := l.ChangeID("web-01", 0)
	must(t, err)
	data := bytes.Repeat([]byte("haven"), 2000)
	must(t, l.WriteDiskAt(ctx, "web-01", 0, map[int64][]byte{100: data, 1 << 20: data[:10]}))
	img, err := l.DiskBytes(ctx, "web-01", 0)
	must(t, err)
	if len(img) != 2<<20 || !bytes.Equal(img[100:100+len(data)], data) || !bytes.Equal(img[1<<20:1<<20+10], data[:10]) {
		t.Fatal("written bytes did not come back")
	}

	snap := snapshot(t, vm, "s1")
	key := diskKey(t, vm, 0)
	areas := changed(t, l, ref, snap, key, id0)
	want := []types.DiskChangeExtent{{Start: 100, Length: int64(len(data))}, {Start: 1 << 20, Length: 10}}
	if !slices.Equal(areas, want) {
		t.Fatalf("changed since %s: %v, want %v", id0, areas, want)
	}
	if all := changed(t, l, ref, snap, key, "*"); !slices.Equal(all, []types.DiskChangeExtent{{Start: 0, Length: 64 << 10}, {Start: 1 << 20, Length: 64 << 10}}) {
		t.Fatalf("allocated: %v", all)
	}
	// The snapshot keeps its bytes when the disk changes after it.
	must(t, l.WriteDisk(ctx, "web-01", 0, 100, []byte("later")))
	if after := changed(t, l, ref, snap, key, id0); !slices.Equal(after, want) {
		t.Fatalf("a write after the snapshot shows in it: %v", after)
	}

	// vSphere does not extend disks of VMs with snapshots.
	if err := l.ResizeDisk(ctx, "web-01", 0, 3<<20); err == nil {
		t.Fatal("resized a disk under a snapshot")
	}
	task, err = vm.RemoveAllSnapshot(ctx, nil)
	must(t, err)
	must(t, task.Wait(ctx))
	must(t, l.ResizeDisk(ctx, "web-01", 0, 3<<20))
	if got := capacity(t, vm, 0); got != 3<<20 {
		t.Fatalf("capacity after resize: %d", got)
	}
	img, err = l.DiskBytes(ctx, "web-01", 0)
	must(t, err)
	if len(img) != 3<<20 || !bytes.Equal(img[100:105], []byte("later")) {
		t.Fatalf("extent after resize: %d bytes", len(img))
	}
	if err := l.ResizeDisk(ctx, "web-01", 0, 2<<20); err == nil {
		t.Fatal("shrank a disk")
	}

	// Fills: the small disk through /folder, the big one on the local file.
	id1, _ := l.ChangeID("web-01", 0)
	n, err := l.FillDisk(ctx, "web-01", 0, 7, 0.5)
	must(t, err)
	if n != 2<<20 {
		t.Fatalf("filled %d bytes of a 3 MiB disk at 0.5", n)
	}
	n, err = l.FillDisk(ctx, "web-01", 1, 7, 0.1)
	must(t, err)
	if n != 8<<20 {
		t.Fatalf("filled %d bytes of an 80 MiB disk at 0.1", n)
	}
	big, err := l.DiskBytes(ctx, "web-01", 1)
	must(t, err)
	var used int
	for off := 0; off < len(big); off += 1 << 20 {
		if !allZero(big[off : off+1<<20]) {
			used++
		}
	}
	if len(big) != 80<<20 || used != 8 {
		t.Fatalf("big disk: %d bytes, %d MiB used", len(big), used)
	}
	snap = snapshot(t, vm, "s2")
	var sum int64
	for off := int64(0); off < 3<<20; off += CBTWindow {
		for _, a := range changedAt(t, l, ref, snap, key, id1, off) {
			sum += a.Length
		}
	}
	if sum != 2<<20 {
		t.Fatalf("changed bytes after the fill: %d", sum)
	}
}

func snapshot(t *testing.T, vm *object.VirtualMachine, name string) types.ManagedObjectReference {
	t.Helper()
	task, err := vm.CreateSnapshot(context.Background(), name, "", false, false)
	must(t, err)
	res, err := task.WaitForResult(context.Background())
	must(t, err)
	return res.Result.(types.ManagedObjectReference)
}

func disk(t *testing.T, vm *object.VirtualMachine, i int) *types.VirtualDisk {
	t.Helper()
	devs, err := vm.Device(context.Background())
	must(t, err)
	return devs.SelectByType((*types.VirtualDisk)(nil))[i].(*types.VirtualDisk)
}

func diskKey(t *testing.T, vm *object.VirtualMachine, i int) int32 { return disk(t, vm, i).Key }

func capacity(t *testing.T, vm *object.VirtualMachine, i int) int64 {
	return disk(t, vm, i).CapacityInBytes
}

func changed(t *testing.T, l *Lab, vm, snap types.ManagedObjectReference, key int32, since string) []types.DiskChangeExtent {
	t.Helper()
	return changedAt(t, l, vm, snap, key, since, 0)
}

func changedAt(t *testing.T, l *Lab, vm, snap types.ManagedObjectReference, key int32, since string, off int64) []types.DiskChangeExtent {
	t.Helper()
	res, err := methods.QueryChangedDiskAreas(context.Background(), l.Client.Client,
		&types.QueryChangedDiskAreas{This: vm, Snapshot: &snap, DeviceKey: key, StartOffset: off, ChangeId: since})
	must(t, err)
	return res.Returnval.ChangedArea
}

// TestVCSimLabGuest runs a program in a lab guest through the guest operations
// API, as a client would: temporary directory, upload, start, watch,
// download, terminate; and checks the guest's refusals.
func TestVCSimLabGuest(t *testing.T) {
	ctx := context.Background()
	l := start(t, Options{VMs: []VMSpec{
		{Name: "on", PowerOn: true, GuestUser: "svc", GuestPassword: "s3cret-guest"},
		{Name: "off"},
	}})
	auth := &types.NamePasswordAuthentication{Username: "svc", Password: "s3cret-guest"}
	ref, _ := l.VMRef("on")
	om := guest.NewOperationsManager(l.Client.Client, ref)
	fm, err := om.FileManager(ctx)
	must(t, err)
	pm, err := om.ProcessManager(ctx)
	must(t, err)
	sandbox, err := l.GuestDir("on")
	must(t, err)

	if _, err := fm.CreateTemporaryDirectory(ctx, &types.NamePasswordAuthentication{Username: "svc", Password: "nope"}, "x", "", ""); !fault.Is(err, &types.InvalidGuestLogin{}) {
		t.Fatalf("wrong password: %v", err)
	}
	offRef, _ := l.VMRef("off")
	offFM, err := guest.NewOperationsManager(l.Client.Client, offRef).FileManager(ctx)
	must(t, err)
	if _, err := offFM.CreateTemporaryDirectory(ctx, &types.NamePasswordAuthentication{Username: DefaultGuestUser, Password: DefaultGuestPassword}, "x", "", ""); !fault.Is(err, &types.InvalidPowerState{}) {
		t.Fatalf("powered-off VM: %v", err)
	}

	dir, err := fm.CreateTemporaryDirectory(ctx, auth, "job-", "", "")
	must(t, err)
	if !strings.HasPrefix(dir, sandbox+string(filepath.Separator)) {
		t.Fatalf("temporary directory %s is not in the sandbox %s", dir, sandbox)
	}
	script := filepath.Join(dir, "run.sh")
	put(t, l, fm, auth, script, "echo out:$1; echo err >&2; pwd; exit 7\n")
	pid, err := pm.StartProgram(ctx, auth, &types.GuestProgramSpec{ProgramPath: "/bin/sh",
		Arguments: script + " 'a b' > " + filepath.Join(dir, "log") + " 2>&1", WorkingDirectory: dir})
	must(t, err)
	p := waitEnd(t, pm, auth, pid)
	if p.ExitCode != 7 || p.Owner != "svc" || p.StartTime.IsZero() || p.EndTime.Before(p.StartTime) {
		t.Fatalf("process: %+v", p)
	}
	if got := get(t, l, fm, auth, filepath.Join(dir, "log")); got != "out:a b\nerr\n"+dir+"\n" {
		t.Fatalf("output %q", got)
	}

	// Paths outside the sandbox, directly or through a symlink, are refused.
	must(t, os.Symlink("/etc", filepath.Join(dir, "escape")))
	for _, p := range []string{"/etc/hostname", dir + "/../../../../etc/hostname", filepath.Join(dir, "escape", "hostname"), "relative/path"} {
		if _, err := fm.InitiateFileTransferFromGuest(ctx, auth, p); !fault.Is(err, &types.GuestPermissionDenied{}) {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if err := fm.DeleteDirectory(ctx, auth, sandbox, true); !fault.Is(err, &types.GuestPermissionDenied{}) {
		t.Fatalf("deleting the sandbox: %v", err)
	}
	if _, err := fm.InitiateFileTransferFromGuest(ctx, auth, filepath.Join(dir, "missing")); !fault.Is(err, &types.FileNotFound{}) {
		t.Fatalf("missing file: %v", err)
	}
	must(t, fm.DeleteFile(ctx, auth, filepath.Join(dir, "escape")))
	if _, err := os.Stat("/etc"); err != nil {
		t.Fatal("deleting a symlink followed it")
	}
	if err := fm.DeleteDirectory(ctx, auth, dir, false); !fault.Is(err, &types.DirectoryNotEmpty{}) {
		t.Fatalf("non-recursive delete of a full directory: %v", err)
	}

	// Terminate ends the program and what it started.
	pid, err = pm.StartProgram(ctx, auth, &types.GuestProgramSpec{ProgramPath: "/bin/sh", Arguments: "-c 'sleep 30; sleep 30'"})
	must(t, err)
	must(t, pm.TerminateProcess(ctx, auth, pid))
	if p := waitEnd(t, pm, auth, pid); p.ExitCode != 143 {
		t.Fatalf("terminated process: %+v", p)
	}
	if err := pm.TerminateProcess(ctx, auth, pid); !fault.Is(err, &types.GuestProcessNotFound{}) {
		t.Fatalf("terminating an ended process: %v", err)
	}

	must(t, fm.DeleteDirectory(ctx, auth, dir, true))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory still there: %v", err)
	}
}

func put(t *testing.T, l *Lab, fm *guest.FileManager, auth types.BaseGuestAuthentication, p, content string) {
	t.Helper()
	ctx := context.Background()
	raw, err := fm.InitiateFileTransferToGuest(ctx, auth, p, &types.GuestPosixFileAttributes{Permissions: 0o600}, int64(len(content)), false)
	must(t, err)
	u, err := fm.TransferURL(ctx, raw)
	must(t, err)
	up := soap.DefaultUpload
	up.ContentLength = int64(len(content))
	must(t, l.Client.Client.Upload(ctx, strings.NewReader(content), u, &up))
	// A transfer URL works once.
	if err := l.Client.Client.Upload(ctx, strings.NewReader(content), u, &up); err == nil {
		t.Fatal("a transfer URL was used twice")
	}
}

func get(t *testing.T, l *Lab, fm *guest.FileManager, auth types.BaseGuestAuthentication, p string) string {
	t.Helper()
	ctx := context.Background()
	info, err := fm.InitiateFileTransferFromGuest(ctx, auth, p)
	must(t, err)
	u, err := fm.TransferURL(ctx, info.Url)
	must(t, err)
	r, _, err := l.Client.Client.Download(ctx, u, &soap.DefaultDownload)
	must(t, err)
	defer r.Close()
	b, err := io.ReadAll(r)
	must(t, err)
	if int64(len(b)) != info.Size {
		t.Fatalf("downloaded %d bytes, size said %d", len(b), info.Size)
	}
	return string(b)
}

func waitEnd(t *testing.T, pm *guest.ProcessManager, auth types.BaseGuestAuthentication, pid int64) types.GuestProcessInfo {
	t.Helper()
	for range 200 {
		ps, err := pm.ListProcesses(context.Background(), auth, []int64{pid})
		must(t, err)
		if len(ps) != 1 {
			t.Fatalf("processes for pid %d: %+v", pid, ps)
		}
		if ps[0].EndTime != nil {
			return ps[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("process %d did not end", pid)
	return types.GuestProcessInfo{}
}

// TestVCSimLabTags checks that tags given to a VM are attached in the vAPI
// endpoint, and that NoTagging leaves the endpoint out.
func TestVCSimLabTags(t *testing.T) {
	ctx := context.Background()
	l := start(t, Options{VMs: []VMSpec{{Name: "t1", Tags: []string{"env:prod", "tier:web"}}}})
	must(t, l.TagVM(ctx, "t1", "env:dev"))
	must(t, l.UntagVM(ctx, "t1", "tier:web"))
	must(t, l.UntagVM(ctx, "t1", "never:attached"))
	rc := rest.NewClient(l.Client.Client)
	must(t, rc.Login(ctx, url.UserPassword(l.Username, l.Password)))
	ref, _ := l.VMRef("t1")
	attached, err := tags.NewManager(rc).GetAttachedTags(ctx, ref)
	must(t, err)
	var names []string
	for _, a := range attached {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "prod,dev" && strings.Join(names, ",") != "dev,prod" {
		t.Fatalf("attached: %v", names)
	}

	plain := start(t, Options{VMs: []VMSpec{}, NoTagging: true})
	if err := rest.NewClient(plain.Client.Client).Login(ctx, url.UserPassword(plain.Username, plain.Password)); !rest.IsStatusError(err, 404) {
		t.Fatalf("vAPI login without tagging: %v", err)
	}
}

// TestVCSimLabExternalWrites changes a disk the way a script with curl
// would: a raw GET of the flat extent through /folder, a patch, a PUT of
// the whole extent, with the lab's credentials. QueryChangedDiskAreas
// must then report exactly the 64 KiB chunks that changed; the lab's own
// writes must still be reported once, byte for byte.
func TestVCSimLabExternalWrites(t *testing.T) {
	ctx := context.Background()
	const size = 3<<20 + 5<<10 // the last chunk is short
	l := start(t, Options{VMs: []VMSpec{{Name: "ext-01", DiskSizes: []int64{size}}}})
	ref, err := l.VMRef("ext-01")
	must(t, err)
	vm := object.NewVirtualMachine(l.Client.Client, ref)
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(true)})
	must(t, err)
	must(t, task.Wait(ctx))
	key := diskKey(t, vm, 0)
	must(t, l.WriteDisk(ctx, "ext-01", 0, 200<<10, bytes.Repeat([]byte("same"), 1000)))
	id0, err := l.ChangeID("ext-01", 0)
	must(t, err)

	pool := x509.NewCertPool()
	pem, err := os.ReadFile(l.CAFile)
	must(t, err)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	u, err := url.Parse(l.URL)
	must(t, err)
	folder := func(p string) string {
		return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/folder/" + p,
			RawQuery: url.Values{"dcPath": {l.Datacenter}, "dsName": {l.Datastore}}.Encode()}).String()
	}
	do := func(method, p string, body io.Reader, length int64) (int, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, folder(p), body)
		must(t, err)
		req.SetBasicAuth(l.Username, l.Password)
		if body != nil {
			req.ContentLength = length
		}
		res, err := hc.Do(req)
		must(t, err)
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		must(t, err)
		return res.StatusCode, b
	}
	const extent = "ext-01/disk1-flat.vmdk"

	status, img := do(http.MethodGet, extent, nil, 0)
	if status != http.StatusOK || len(img) != size {
		t.Fatalf("GET %s: %d, %d bytes", extent, status, len(img))
	}
	copy(img[70000:], "inside chunk 1")
	copy(img[1<<20-10:], "across chunks 15 and 16")
	copy(img[size-3:], "end")
	copy(img[200<<10:], "same") // what is there already: no change
	status, msg := do(http.MethodPut, extent, bytes.NewReader(img), int64(len(img)))
	if status != http.StatusOK {
		t.Fatalf("PUT %s: %d %s", extent, status, msg)
	}
	if got, err := l.DiskBytes(ctx, "ext-01", 0); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("the PUT's bytes did not come back: %v", err)
	}

	s1 := snapshot(t, vm, "s1")
	want := []types.DiskChangeExtent{
		{Start: 64 << 10, Length: 64 << 10},
		{Start: 1<<20 - 64<<10, Length: 128 << 10},
		{Start: size / (64 << 10) * (64 << 10), Length: size % (64 << 10)},
	}
	if got := changed(t, l, ref, s1, key, id0); !slices.Equal(got, want) {
		t.Fatalf("changed since %s: %v, want %v", id0, got, want)
	}

	// A lab write is recorded once, byte for byte.
	id1, err := l.ChangeID("ext-01", 0)
	must(t, err)
	must(t, l.WriteDisk(ctx, "ext-01", 0, 2<<20+7, []byte("lab write")))
	id2, err := l.ChangeID("ext-01", 0)
	must(t, err)
	if seq(t, id2) != seq(t, id1)+1 {
		t.Fatalf("one write moved the change id from %s to %s", id1, id2)
	}
	s2 := snapshot(t, vm, "s2")
	if got := changed(t, l, ref, s2, key, id1); !slices.Equal(got, []types.DiskChangeExtent{{Start: 2<<20 + 7, Length: 9}}) {
		t.Fatalf("changed since %s: %v", id1, got)
	}

	// Refused: a PUT of another length, declared or streamed. Nothing
	// changes, on disk or in the log.
	if status, _ := do(http.MethodPut, extent, bytes.NewReader(img[:size-1024]), size-1024); status != http.StatusBadRequest {
		t.Fatalf("PUT of a shorter extent: %d", status)
	}
	if status, _ := do(http.MethodPut, extent, io.MultiReader(bytes.NewReader(make([]byte, size+1))), -1); status != http.StatusBadRequest {
		t.Fatalf("streamed PUT of a longer extent: %d", status)
	}
	if id, _ := l.ChangeID("ext-01", 0); id != id2 {
		t.Fatalf("refused PUTs moved the change id from %s to %s", id2, id)
	}
	if got, err := l.DiskBytes(ctx, "ext-01", 0); err != nil || len(got) != size || !bytes.Equal(got[2<<20+7:2<<20+16], []byte("lab write")) {
		t.Fatalf("a refused PUT changed the extent: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(l.localPath("["+l.Datastore+"] "+extent)), ".*")); len(left) != 0 {
		t.Fatalf("refused PUTs left files behind: %v", left)
	}

	// Everything else is vcsim's: POST of an existing file is a conflict,
	// other files are written as they come.
	if status, _ := do(http.MethodPost, extent, bytes.NewReader(img), int64(len(img))); status != http.StatusConflict {
		t.Fatalf("POST of an existing extent: %d", status)
	}
	if status, _ := do(http.MethodPut, "ext-01/notes.txt", strings.NewReader("hello"), 5); status != http.StatusOK {
		t.Fatalf("PUT of another file: %d", status)
	}
	if status, b := do(http.MethodGet, "ext-01/notes.txt", nil, 0); status != http.StatusOK || string(b) != "hello" {
		t.Fatalf("GET of another file: %d %q", status, b)
	}
}

func seq(t *testing.T, changeID string) int64 {
	t.Helper()
	_, n, _ := strings.Cut(changeID, "/")
	v, err := strconv.ParseInt(n, 10, 64)
	must(t, err)
	return v
}
