package vmimage_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

type fixture struct {
	t    *testing.T
	sim  *testparts.VCSimEnv
	c    *vmware.Client
	repo *repo.Repository
}

func newFixture(t *testing.T) *fixture {
	sim := testparts.VCSim(t)
	c, err := vmware.Connect(context.Background(), vmware.Config{URL: sim.URL, Username: sim.Username, Password: sim.Password, Thumbprint: sim.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Logout(context.Background()) })
	env := repotest.New(t, repo.Options{PackSize: 4 << 20})
	return &fixture{t: t, sim: sim, c: c, repo: env.Repo}
}

// backup snapshots the VM, captures it on top of parent, commits the point
// and removes the snapshot.
func (f *fixture) backup(name, point, parentPoint string, parent format.ID) (format.ID, vmimage.Meta, []vmimage.DiskEntry) {
	f.t.Helper()
	ctx := context.Background()
	vm, err := f.c.VMByName(ctx, name)
	if err != nil {
		f.t.Fatal(err)
	}
	snap, err := f.c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+point, false)
	if err != nil {
		f.t.Fatal(err)
	}
	defer f.c.RemoveSnapshot(ctx, vm, snap)
	w, err := f.repo.NewWriter(ctx, parentPoint)
	if err != nil {
		f.t.Fatal(err)
	}
	root, meta, disks, err := vmimage.Capture(ctx, w, f.repo, f.c, vmimage.Options{VM: vm, Snapshot: snap, Parent: parent, Config: map[string]string{"name": vm.Name}})
	if err != nil {
		w.Abort(ctx)
		f.t.Fatal(err)
	}
	if err := w.Commit(ctx, point, root); err != nil {
		f.t.Fatal(err)
	}
	return root, meta, disks
}

func (f *fixture) restored(root format.ID) [][]byte {
	f.t.Helper()
	entries, _, err := vmimage.ReadPoint(context.Background(), f.repo, root)
	if err != nil {
		f.t.Fatal(err)
	}
	var out [][]byte
	for _, e := range entries {
		var b bytes.Buffer
		if _, err := vmimage.RestoreDisk(context.Background(), f.repo, e, &b); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, b.Bytes())
	}
	return out
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// TestFullThenIncremental: the full reads only allocated areas; after 1% of
// the blocks change, the incremental reads about those bytes; each point
// restores to the disk as it was.
func TestFullThenIncremental(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	vm, _ := f.c.VMByName(ctx, "db-01")
	if err := f.c.EnableCBT(ctx, vm); err != nil {
		t.Fatal(err)
	}
	// Half of each disk allocated, in 1 MiB runs.
	for d, size := range []int64{testparts.VCSimDiskSize, testparts.VCSimDiskSize / 2} {
		writes := map[int64][]byte{}
		for off := int64(0); off < size; off += 2 << 20 {
			writes[off] = randomBytes(rng, 1<<20)
		}
		f.sim.WriteDiskAt(t, "db-01", d, writes)
	}
	before := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}
	root1, meta1, disks1 := f.backup("db-01", "p1", "", format.ID{})
	if meta1.Disks != 2 {
		t.Fatalf("disks: %+v", meta1)
	}
	for _, e := range disks1 {
		if e.Read != vmimage.ReadAllocated || e.ReadBytes != e.CapacityBytes/2 {
			t.Errorf("full backup of disk %d: read %s %d bytes, want the allocated half of %d", e.Key, e.Read, e.ReadBytes, e.CapacityBytes)
		}
	}

	// 1% of the first disk's 64 KiB blocks: 2-3 writes of 64 KiB.
	changed := map[int64][]byte{}
	for _, blk := range []int64{3, 100, 201} {
		changed[blk*64<<10] = randomBytes(rng, 64<<10)
	}
	f.sim.WriteDiskAt(t, "db-01", 0, changed)
	after := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}
	root2, meta2, disks2 := f.backup("db-01", "p2", "p1", root1)
	if disks2[0].Read != vmimage.ReadChanged || disks2[1].Read != vmimage.ReadChanged {
		t.Fatalf("incremental reads: %+v", disks2)
	}
	// Changed areas are read in whole aligned blocks: exactly the blocks
	// the writes touched, nothing of the unchanged second disk.
	touched := map[int64]bool{}
	for off, b := range changed {
		for o := off; o < off+int64(len(b)); o += 64 << 10 {
			touched[o/chunker.DefaultBlockSize] = true
		}
	}
	if want := int64(len(touched)) * chunker.DefaultBlockSize; meta2.ReadBytes != want || disks2[1].ReadBytes != 0 {
		t.Fatalf("incremental read %d bytes (second disk %d) for writes touching %d blocks (%d bytes)", meta2.ReadBytes, disks2[1].ReadBytes, len(touched), want)
	}
	t.Logf("full read %d bytes, incremental %d", meta1.ReadBytes, meta2.ReadBytes)

	for i, b := range f.restored(root1) {
		if !bytes.Equal(b, before[i]) {
			t.Fatalf("point 1 disk %d differs from the disk at that time", i)
		}
	}
	for i, b := range f.restored(root2) {
		if !bytes.Equal(b, after[i]) {
			t.Fatalf("point 2 disk %d differs from the disk at that time", i)
		}
	}
}

// TestFallbacksAreRecorded: without CBT every disk is read whole, and a
// disk the previous point lacks (excluded then) is read as new.
func TestFallbacksAreRecorded(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.sim.WriteDisk(t, "db-01", 0, 0, bytes.Repeat([]byte{7}, 1<<20))
	vm, _ := f.c.VMByName(ctx, "db-01")
	snap, err := f.c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+"x", false)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := f.repo.NewWriter(ctx, "")
	root, _, disks, err := vmimage.Capture(ctx, w, f.repo, f.c, vmimage.Options{VM: vm, Snapshot: snap, Exclude: []int32{vm.Disks[1].Key}})
	if err != nil {
		t.Fatal(err)
	}
	w.Commit(ctx, "a", root)
	f.c.RemoveSnapshot(ctx, vm, snap)
	if len(disks) != 1 || disks[0].Read != vmimage.ReadFull || disks[0].ReadBytes != disks[0].CapacityBytes {
		t.Fatalf("without CBT: %+v", disks)
	}
	_, _, disks = f.backup("db-01", "b", "a", root)
	if len(disks) != 2 || disks[0].Reason == "" || disks[1].Reason != "new disk since the previous point" {
		t.Fatalf("second backup: %+v", disks)
	}
	for _, d := range disks {
		if d.Read != vmimage.ReadFull {
			t.Errorf("disk %d read %s without CBT", d.Key, d.Read)
		}
	}
}

// staleChangeIDs reports every disk's change id as one CBT no longer
// knows, as after a CBT reset, so the next backup's query is refused.
type staleChangeIDs struct{ vmimage.Reader }

func (s staleChangeIDs) SnapshotDisks(ctx context.Context, snapshot string) ([]vmware.Disk, error) {
	ds, err := s.Reader.SnapshotDisks(ctx, snapshot)
	for i := range ds {
		ds[i].ChangeID = "52 00 00 00 00 00 00 00-00 00 00 00 00 00 00 00/1"
	}
	return ds, err
}

// TestRejectedChangeIDFallsBackToAllocated: when CBT refuses the previous
// point's change id, the disk is read whole (its allocated areas) and the
// reason is recorded; the point is still correct.
func TestRejectedChangeIDFallsBackToAllocated(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	vm, _ := f.c.VMByName(ctx, "app-01")
	if err := f.c.EnableCBT(ctx, vm); err != nil {
		t.Fatal(err)
	}
	f.sim.WriteDisk(t, "app-01", 0, 4<<20, bytes.Repeat([]byte{3}, 2<<20))
	snap, err := f.c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+"a", false)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := f.repo.NewWriter(ctx, "")
	root, _, _, err := vmimage.Capture(ctx, w, f.repo, staleChangeIDs{f.c}, vmimage.Options{VM: vm, Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	w.Commit(ctx, "a", root)
	f.c.RemoveSnapshot(ctx, vm, snap)

	f.sim.WriteDisk(t, "app-01", 0, 9<<20, bytes.Repeat([]byte{4}, 1<<20))
	want := f.sim.DiskBytes(t, "app-01", 0)
	root2, _, disks := f.backup("app-01", "b", "a", root)
	if len(disks) != 1 || disks[0].Read != vmimage.ReadAllocated || !strings.Contains(disks[0].Reason, "change id was not accepted") {
		t.Fatalf("after a rejected change id: %+v", disks)
	}
	if disks[0].ReadBytes != 3<<20 {
		t.Errorf("the fallback read %d bytes, want the 3 MiB allocated", disks[0].ReadBytes)
	}
	if got := f.restored(root2); !bytes.Equal(got[0], want) {
		t.Fatal("the point after the fallback does not restore the disk")
	}
}
