package disk_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

const bs = 64 << 10

// makeImage writes a sparse image: random blocks, zero blocks written out,
// never-written holes, and repeated blocks as in cloned VMs.
func makeImage(t *testing.T, path string, blocks int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 9))
	img := make([]byte, blocks*bs+bs/3) // a partial last block
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(img))); err != nil {
		t.Fatal(err)
	}
	var prev []byte
	for b := 0; b*bs < len(img); b++ {
		blk := img[b*bs : min(len(img), (b+1)*bs)]
		switch k := rng.IntN(10); {
		case k < 3: // hole: never written
			continue
		case k < 4: // explicit zeros
		case k < 5 && prev != nil:
			copy(blk, prev)
		default:
			for i := range blk {
				blk[i] = byte(rng.Uint32())
			}
			prev = blk
		}
		if _, err := f.WriteAt(blk, int64(b*bs)); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func backupDisk(t *testing.T, r *repo.Repository, path string, point string, parentPoint string, o disk.CaptureOptions) (format.ID, disk.Meta) {
	t.Helper()
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	o.Source, o.Size, o.BlockSize, o.Name = f, info.Size(), bs, "disk0"
	w, err := r.NewWriter(ctx, parentPoint)
	if err != nil {
		t.Fatal(err)
	}
	root, meta, err := disk.Capture(ctx, w, r, o)
	if err != nil {
		w.Abort(ctx)
		t.Fatal(err)
	}
	if err := w.Commit(ctx, point, root); err != nil {
		t.Fatal(err)
	}
	return root, meta
}

func restoreDisk(t *testing.T, r *repo.Repository, root format.ID) (string, []byte) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "restored.img")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := disk.Restore(context.Background(), r, root, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, _ := os.ReadFile(out)
	return out, b
}

func TestDiskRoundTripAndIncremental(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 1 << 20})
	src := filepath.Join(t.TempDir(), "disk.img")
	img := makeImage(t, src, 200, 1)
	root1, m1 := backupDisk(t, env.Repo, src, "full", "", disk.CaptureOptions{})
	if m1.ReadBytes != int64(len(img)) {
		t.Errorf("full read %d bytes, want %d", m1.ReadBytes, len(img))
	}
	path, got := restoreDisk(t, env.Repo, root1)
	if !bytes.Equal(got, img) {
		t.Fatal("restored image differs")
	}
	var st syscall.Stat_t
	syscall.Stat(path, &st)
	zeros := 0
	for b := 0; b*bs < len(img); b++ {
		if chunker.IsZero(img[b*bs : min(len(img), (b+1)*bs)]) {
			zeros++
		}
	}
	if allocated := st.Blocks * 512; allocated > int64(len(img)-zeros*bs)+bs {
		t.Errorf("restore allocated %d bytes; holes and zero blocks should stay sparse (data is %d)", allocated, len(img)-zeros*bs)
	}

	// Change 3 blocks (one partially) and tell the capture where.
	f, _ := os.OpenFile(src, os.O_RDWR, 0)
	var changed []chunker.Extent
	for _, b := range []int{5, 77, 150} {
		patch := bytes.Repeat([]byte{byte(b)}, bs/2)
		f.WriteAt(patch, int64(b*bs+100))
		copy(img[b*bs+100:], patch)
		changed = append(changed, chunker.Extent{Offset: int64(b*bs + 100), Length: int64(len(patch))})
	}
	f.Close()
	root2, m2 := backupDisk(t, env.Repo, src, "incr", "full", disk.CaptureOptions{Changed: changed, Parent: root1})
	// Each patch spans one or two aligned blocks.
	if m2.ReadBytes < 3*bs || m2.ReadBytes > 6*bs {
		t.Errorf("incremental read %d bytes, want the changed blocks only (3-6 blocks of %d)", m2.ReadBytes, bs)
	}
	if _, got := restoreDisk(t, env.Repo, root2); !bytes.Equal(got, img) {
		t.Fatal("incremental restore differs from the changed image")
	}
	if _, got := restoreDisk(t, env.Repo, root1); bytes.Equal(got, img) {
		t.Fatal("the full point must still hold the old content")
	}

	// A resized disk cannot take changed areas from its parent.
	os.Truncate(src, int64(len(img)+bs))
	fh, _ := os.Open(src)
	defer fh.Close()
	w, _ := env.Repo.NewWriter(context.Background(), "incr")
	_, _, err := disk.Capture(context.Background(), w, env.Repo, disk.CaptureOptions{Source: fh, Size: int64(len(img) + bs), BlockSize: bs, Changed: changed, Parent: root2})
	w.Abort(context.Background())
	if !errors.Is(err, disk.ErrGeometryChanged) {
		t.Fatalf("resized disk: %v, want ErrGeometryChanged", err)
	}
}

// TestAllocatedOnlyFullAndStreamedRestore backs up only the allocated areas
// of an image (CBT's "*" answer) and restores it as one ordered stream.
func TestAllocatedOnlyFullAndStreamedRestore(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 1 << 20})
	src := filepath.Join(t.TempDir(), "disk.img")
	img := makeImage(t, src, 120, 2)
	var allocated []chunker.Extent
	for b := 0; b*bs < len(img); b++ {
		blk := img[b*bs : min(len(img), (b+1)*bs)]
		if !chunker.IsZero(blk) {
			allocated = append(allocated, chunker.Extent{Offset: int64(b * bs), Length: int64(len(blk))})
		}
	}
	// Garbage outside the allocated areas must never be read: a capture that
	// reads it would store it.
	f, _ := os.OpenFile(src, os.O_RDWR, 0)
	junk := bytes.Repeat([]byte{0xEE}, bs)
	var junkAt int64 = -1
	for b := 0; b*bs < len(img)-bs; b++ {
		if chunker.IsZero(img[b*bs : (b+1)*bs]) {
			junkAt = int64(b * bs)
			f.WriteAt(junk, junkAt)
			break
		}
	}
	f.Close()
	if junkAt < 0 {
		t.Fatal("the image has no zero block to plant junk in")
	}
	root, meta := backupDisk(t, env.Repo, src, "full", "", disk.CaptureOptions{Changed: allocated})
	var want int64
	for _, e := range allocated {
		want += e.Length
	}
	if meta.ReadBytes != want {
		t.Errorf("read %d bytes, want only the %d allocated", meta.ReadBytes, want)
	}
	var out bytes.Buffer
	st, err := disk.RestoreTo(context.Background(), env.Repo, root, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), img) || st.Bytes != int64(len(img)) {
		t.Fatalf("streamed restore: %d bytes (stats %+v), equal=%v; the unallocated junk must restore as zeros", out.Len(), st, bytes.Equal(out.Bytes(), img))
	}
}
