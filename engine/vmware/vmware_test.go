package vmware_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

func connect(t *testing.T, env *testparts.VCSimEnv) *vmware.Client {
	t.Helper()
	c, err := vmware.Connect(context.Background(), vmware.Config{URL: env.URL, Username: env.Username, Password: env.Password, Thumbprint: env.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Logout(context.Background()) })
	return c
}

func TestConnect(t *testing.T) {
	env := testparts.VCSim(t)
	ctx := context.Background()
	base := vmware.Config{URL: env.URL, Username: env.Username, Password: env.Password}

	for name, cfg := range map[string]vmware.Config{
		"thumbprint sha256": {Thumbprint: env.Thumbprint},
		"thumbprint sha1":   {Thumbprint: strings.ToLower(strings.ReplaceAll(env.SHA1, ":", ""))},
		"ca file":           {CAFile: env.CAFile},
		"insecure":          {Insecure: true},
	} {
		cfg.URL, cfg.Username, cfg.Password = base.URL, base.Username, base.Password
		c, err := vmware.Connect(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := c.VMs(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c.Logout(ctx)
	}

	bad := base
	bad.Thumbprint = env.Thumbprint
	bad.Password = "not-the-Password-42"
	_, err := vmware.Connect(ctx, bad)
	if !errors.Is(err, vmware.ErrBadCredentials) {
		t.Fatalf("bad password: %v", err)
	}
	if strings.Contains(err.Error(), bad.Password) {
		t.Fatalf("error shows the password: %v", err)
	}

	for name, cfg := range map[string]vmware.Config{
		"wrong thumbprint": {Thumbprint: strings.Repeat("AB:", 31) + "AB"},
		"untrusted":        {},
	} {
		cfg.URL, cfg.Username, cfg.Password = base.URL, base.Username, base.Password
		_, err := vmware.Connect(ctx, cfg)
		if !errors.Is(err, vmware.ErrCertificate) {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(err.Error(), env.Thumbprint) || !strings.Contains(err.Error(), env.SHA1) {
			t.Fatalf("%s: error does not name the server's thumbprints %s / %s: %v", name, env.Thumbprint, env.SHA1, err)
		}
		var ce *vmware.CertificateError
		if !errors.As(err, &ce) || ce.SHA256 != env.Thumbprint {
			t.Fatalf("%s: %#v", name, err)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = vmware.Connect(ctx, vmware.Config{URL: "https://" + addr + "/sdk", Username: "u", Password: "p4ss-word", Insecure: true})
	if !errors.Is(err, vmware.ErrUnreachable) {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestInventory(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	vms, err := c.VMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var app vmware.VM
	names := map[string]bool{}
	for _, v := range vms {
		names[v.Name] = true
		if v.Name == "app-01" {
			app = v
		}
	}
	if !names["app-01"] || !names["db-01"] || !names["DC0_H0_VM0"] {
		t.Fatalf("VMs: %v", names)
	}
	if app.InventoryPath != "/DC0/vm/prod/app-01" || app.Folder != "/DC0/vm/prod" || app.Datacenter != "DC0" {
		t.Fatalf("app-01 paths: %+v", app)
	}
	if app.InstanceUUID == "" || !strings.HasPrefix(app.MoRef, "vm-") || app.PowerState == "" || app.Tags == nil {
		t.Fatalf("app-01: %+v", app)
	}
	if len(app.Disks) != 1 || app.Disks[0].CapacityBytes != testparts.VCSimDiskSize ||
		app.Disks[0].FileName != "[LocalDS_0] app-01/disk1.vmdk" || app.Disks[0].Datastore != "LocalDS_0" || app.Disks[0].Label == "" {
		t.Fatalf("app-01 disks: %+v", app.Disks)
	}
	for what, find := range map[string]func() (vmware.VM, error){
		"name":  func() (vmware.VM, error) { return c.VMByName(ctx, "app-01") },
		"path":  func() (vmware.VM, error) { return c.VMByPath(ctx, "/DC0/vm/prod/app-01") },
		"uuid":  func() (vmware.VM, error) { return c.VMByInstanceUUID(ctx, app.InstanceUUID) },
		"moref": func() (vmware.VM, error) { return c.VMByMoRef(ctx, app.MoRef) },
	} {
		got, err := find()
		if err != nil || got.MoRef != app.MoRef {
			t.Fatalf("by %s: %+v %v", what, got, err)
		}
	}
	db, err := c.VMByName(ctx, "db-01")
	if err != nil || len(db.Disks) != 2 || db.InventoryPath != "/DC0/vm/db-01" {
		t.Fatalf("db-01: %+v %v", db, err)
	}
	if _, err := c.VMByName(ctx, "nope"); !errors.Is(err, vmware.ErrNotFound) {
		t.Fatalf("missing VM: %v", err)
	}
	if _, err := c.VMByPath(ctx, "/DC0/vm/app-01"); !errors.Is(err, vmware.ErrNotFound) {
		t.Fatalf("wrong folder: %v", err)
	}
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// apply mirrors writes into a local model of the disk.
func apply(img []byte, writes map[int64][]byte) {
	for off, b := range writes {
		copy(img[off:], b)
	}
}

func TestSnapshotReadBack(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	vm, _ := c.VMByName(ctx, "db-01")
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]byte, vm.Disks[1].CapacityBytes)
	w := map[int64][]byte{0: randBytes(rng, 4097), 123457: randBytes(rng, 70001), int64(len(img)) - 999: randBytes(rng, 999)}
	env.WriteDiskAt(t, "db-01", 1, w)
	apply(img, w)
	snap, err := c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+"t1", false)
	if err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot must not show through it.
	env.WriteDisk(t, "db-01", 1, 123000, randBytes(rng, 5000))

	r, size, err := c.OpenDisk(ctx, vm, snap, vm.Disks[1])
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(img)) {
		t.Fatalf("size %d, want %d", size, len(img))
	}
	for _, rg := range [][2]int64{{0, 1}, {1, 5000}, {123001, 77777}, {size - 1500, 1500}, {3, 1 << 20}} {
		got := make([]byte, rg[1])
		n, err := r.ReadAt(got, rg[0])
		if err != nil || n != len(got) || !bytes.Equal(got, img[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("range %v: n=%d err=%v equal=%v", rg, n, err, bytes.Equal(got, img[rg[0]:rg[0]+rg[1]]))
		}
	}
	tail := make([]byte, 100)
	n, err := r.ReadAt(tail, size-40)
	if n != 40 || err != io.EOF || !bytes.Equal(tail[:40], img[size-40:]) {
		t.Fatalf("read past the end: n=%d err=%v", n, err)
	}
	whole := make([]byte, size)
	if _, err := r.ReadAt(whole, 0); err != nil || !bytes.Equal(whole, img) {
		t.Fatalf("whole disk differs from what was written before the snapshot: %v", err)
	}
}

func extents(m map[int64]int64) []chunker.Extent {
	var out []chunker.Extent
	for off, n := range m {
		out = append(out, chunker.Extent{Offset: off, Length: n})
	}
	return merge(out)
}

func merge(x []chunker.Extent) []chunker.Extent {
	for i := range x {
		for j := i + 1; j < len(x); j++ {
			if x[j].Offset < x[i].Offset {
				x[i], x[j] = x[j], x[i]
			}
		}
	}
	var out []chunker.Extent
	for _, e := range x {
		if n := len(out); n > 0 && out[n-1].End() >= e.Offset {
			out[n-1].Length = max(out[n-1].End(), e.End()) - out[n-1].Offset
			continue
		}
		out = append(out, e)
	}
	return out
}

func TestChangedAreas(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	vm, _ := c.VMByName(ctx, "app-01")
	if err := c.EnableCBT(ctx, vm); err != nil {
		t.Fatal(err)
	}
	vm, _ = c.VMByName(ctx, "app-01")
	if !vm.ChangeTrackingEnabled {
		t.Fatal("CBT not enabled")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// 64 KiB-aligned writes: "*" reports allocation at that grain.
	first := map[int64][]byte{0: randBytes(rng, 64<<10), 5 << 20: randBytes(rng, 192<<10), 15 << 20: randBytes(rng, 128<<10)}
	env.WriteDiskAt(t, "app-01", 0, first)
	s1, err := c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+"1", false)
	if err != nil {
		t.Fatal(err)
	}
	all, id1, err := c.ChangedAreas(ctx, vm, s1, vm.Disks[0].Key, "*")
	if err != nil {
		t.Fatal(err)
	}
	want := extents(map[int64]int64{0: 64 << 10, 5 << 20: 192 << 10, 15 << 20: 128 << 10})
	if !equalExtents(all, want) || id1 == "" || id1 != env.ChangeID(t, "app-01", 0) {
		t.Fatalf("*: got %v id %q, want %v id %q", all, id1, want, env.ChangeID(t, "app-01", 0))
	}

	// Unaligned writes, one spanning a 4 MiB answer window.
	second := map[int64][]byte{777: randBytes(rng, 1000), (4 << 20) - 100: randBytes(rng, 300), 9<<20 + 3: randBytes(rng, 65536)}
	env.WriteDiskAt(t, "app-01", 0, second)
	s2, err := c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+"2", false)
	if err != nil {
		t.Fatal(err)
	}
	changed, id2, err := c.ChangedAreas(ctx, vm, s2, vm.Disks[0].Key, id1)
	if err != nil {
		t.Fatal(err)
	}
	want = extents(map[int64]int64{777: 1000, (4 << 20) - 100: 300, 9<<20 + 3: 65536})
	if !equalExtents(changed, want) || id2 == id1 {
		t.Fatalf("since %s: got %v (%s), want %v", id1, changed, id2, want)
	}
	// Nothing changed between the second snapshot and itself.
	none, _, err := c.ChangedAreas(ctx, vm, s2, vm.Disks[0].Key, id2)
	if err != nil || len(none) != 0 || none == nil {
		t.Fatalf("no change: %v %v", none, err)
	}
	if _, _, err := c.ChangedAreas(ctx, vm, s2, vm.Disks[0].Key, "52 00 bogus/1"); err == nil {
		t.Fatal("a bogus change id was accepted")
	}
}

func equalExtents(a, b []chunker.Extent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSnapshotJanitor(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	vm, _ := c.VMByName(ctx, "db-01")
	mine, err := c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+"job-42", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSnapshot(ctx, vm, "before-upgrade", false); err != nil {
		t.Fatal(err)
	}
	orphans, err := c.HavenSnapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(orphans) != 1 || orphans[0].Snapshot != mine || orphans[0].VMName != "db-01" || orphans[0].Name != "haven-job-42" {
		t.Fatalf("orphans: %+v", orphans)
	}
	if err := c.RemoveSnapshot(ctx, vm, mine); err != nil {
		t.Fatal(err)
	}
	if orphans, err := c.HavenSnapshots(ctx); err != nil || len(orphans) != 0 {
		t.Fatalf("after removal: %+v %v", orphans, err)
	}
	if _, err := c.SnapshotDisks(ctx, mine); err == nil {
		t.Fatal("removed snapshot still readable")
	}
}

// TestBackupRestore backs a VM disk up into a real repository with CBT: a
// full backup from "*", then an incremental from the change id, and
// restores both points.
func TestBackupRestore(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	r := repotest.New(t, repo.Options{}).Repo
	ctx := context.Background()
	const bs = 16 << 10
	vm, _ := c.VMByName(ctx, "app-01")
	if err := c.EnableCBT(ctx, vm); err != nil {
		t.Fatal(err)
	}
	d := vm.Disks[0]
	rng := rand.New(rand.NewPCG(5, 6))
	img := make([]byte, d.CapacityBytes)
	// Half the blocks hold data, the rest were never written.
	w := map[int64][]byte{}
	for b := int64(0); b < d.CapacityBytes/bs; b += 2 {
		w[b*bs] = randBytes(rng, bs)
	}
	env.WriteDiskAt(t, "app-01", 0, w)
	apply(img, w)
	img1 := bytes.Clone(img)

	backup := func(point, parentPoint string, parent format.ID, changeID string) (format.ID, disk.Meta, string) {
		snap, err := c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+point, false)
		if err != nil {
			t.Fatal(err)
		}
		defer c.RemoveSnapshot(ctx, vm, snap)
		changed, next, err := c.ChangedAreas(ctx, vm, snap, d.Key, changeID)
		if err != nil {
			t.Fatal(err)
		}
		src, size, err := c.OpenDisk(ctx, vm, snap, d)
		if err != nil {
			t.Fatal(err)
		}
		o := disk.CaptureOptions{Name: d.FileName, Source: src, Size: size, BlockSize: bs, Changed: changed, Parent: parent, Workers: 4}
		if parent.IsZero() {
			// A full backup reads only what "*" reports as allocated;
			// disk.Capture needs a parent for that, so it reads the
			// allocated areas through a reader that zero-fills the rest.
			o.Changed = nil
			o.Source = allocatedOnly{src, changed}
		}
		wr, err := r.NewWriter(ctx, parentPoint)
		if err != nil {
			t.Fatal(err)
		}
		root, meta, err := disk.Capture(ctx, wr, r, o)
		if err != nil {
			wr.Abort(ctx)
			t.Fatal(err)
		}
		if err := wr.Commit(ctx, point, root); err != nil {
			t.Fatal(err)
		}
		return root, meta, next
	}
	root1, meta1, id1 := backup("p1", "", format.ID{}, "*")

	// Change 1% of the blocks (10 of 1024), some at unaligned offsets.
	w = map[int64][]byte{}
	for i := range 10 {
		off := int64(i*97+3)*bs + int64(i*13)
		w[off] = randBytes(rng, 200+i*50)
	}
	env.WriteDiskAt(t, "app-01", 0, w)
	apply(img, w)
	root2, meta2, _ := backup("p2", "p1", root1, id1)

	if !meta2.Changed || meta2.ReadBytes > 12*bs || meta2.ReadBytes < 10*bs {
		t.Fatalf("incremental read %d bytes (changed=%v); 10 changed blocks are %d", meta2.ReadBytes, meta2.Changed, 10*bs)
	}
	t.Logf("full read %d bytes, incremental read %d bytes of a %d-byte disk", meta1.ReadBytes, meta2.ReadBytes, d.CapacityBytes)

	for i, want := range map[format.ID][]byte{root1: img1, root2: img} {
		out := filepath.Join(t.TempDir(), "restored.img")
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := disk.Restore(ctx, r, i, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, want) {
			t.Fatalf("restore of %s differs from the disk at its snapshot", i)
		}
	}
	if bytes.Equal(img, img1) {
		t.Fatal("the incremental changed nothing")
	}
}

// allocatedOnly reads the allocated extents and zero-fills the rest
// without touching the source, so a full backup reads only allocated
// areas.
type allocatedOnly struct {
	r     io.ReaderAt
	alloc []chunker.Extent
}

func (a allocatedOnly) ReadAt(b []byte, off int64) (int, error) {
	clear(b)
	end := off + int64(len(b))
	for _, e := range a.alloc {
		s, t := max(off, e.Offset), min(end, e.End())
		if s >= t {
			continue
		}
		if _, rerr := a.r.ReadAt(b[s-off:t-off], s); rerr != nil && rerr != io.EOF {
			return 0, rerr
		}
	}
	return len(b), nil
}
