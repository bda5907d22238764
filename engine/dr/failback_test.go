package dr_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// countingEBS counts the blocks read.
type countingEBS struct {
	*ebs.Client
	gets atomic.Int64
}

func (c *countingEBS) GetSnapshotBlock(ctx context.Context, in *ebs.GetSnapshotBlockInput, opts ...func(*ebs.Options)) (*ebs.GetSnapshotBlockOutput, error) {
	c.gets.Add(1)
	return c.Client.GetSnapshotBlock(ctx, in, opts...)
}

// volumeImage is what a volume should hold: the blocks written, zeros
// elsewhere; it checks a restored disk streamed to it.
type volumeImage struct {
	blockSize int
	blocks    map[int][]byte
	off       int64
	bad       error
}

func (v *volumeImage) Write(p []byte) (int, error) {
	for i := 0; i < len(p); {
		at := v.off + int64(i)
		b := int(at / int64(v.blockSize))
		within := int(at % int64(v.blockSize))
		n := min(len(p)-i, v.blockSize-within)
		want := make([]byte, n)
		if data, ok := v.blocks[b]; ok {
			copy(want, data[within:])
		}
		if v.bad == nil && !bytes.Equal(p[i:i+n], want) {
			v.bad = fmt.Errorf("bytes at %d differ (block %d)", at, b)
		}
		i += n
	}
	v.off += int64(len(p))
	return len(p), nil
}

// TestFailbackCapturesTheInstanceDisk: a failed-over instance's volume
// (made from a DR copy, then written by the guest) is snapshotted and
// captured into the repository as a disk point that restores to exactly
// its bytes; after more guest writes, the second pass reads only the
// blocks ListChangedBlocks names and captures them onto the first point.
func TestFailbackCapturesTheInstanceDisk(t *testing.T) {
	ctx := context.Background()
	endpoint := testparts.Moto(t)
	api := &countingEBS{Client: testparts.MotoEBSClient(endpoint)}
	ec2c := testparts.MotoEC2Client(endpoint)
	env := repotest.New(t, repo.Options{})
	bs := testparts.MotoBlockSize
	img := image(4*bs, 1<<20, 5)
	root := capture(t, env.Repo, img, 1<<20, "vm", "", format.ID{})
	cp, _, err := dr.Replicate(ctx, env.Repo, api.Client, dr.ReplicateOptions{Disk: root, ClientToken: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := ec2c.CreateVolume(ctx, &ec2.CreateVolumeInput{SnapshotId: aws.String(cp.SnapshotID), AvailabilityZone: aws.String(testparts.MotoRegion + "a")})
	if err != nil {
		t.Fatal(err)
	}
	want := &volumeImage{blockSize: bs, blocks: map[int][]byte{}}
	for b := 0; b*bs < len(img); b++ {
		if !isZero(img[b*bs : (b+1)*bs]) {
			want.blocks[b] = img[b*bs : (b+1)*bs]
		}
	}
	writes := 0
	guest := func(blocks ...int) string {
		t.Helper()
		for _, b := range blocks {
			writes++
			data := bytes.Repeat([]byte{byte(b), byte(writes)}, bs/2)
			if err := testparts.MotoWriteVolumeBlock(ctx, endpoint, aws.ToString(vol.VolumeId), int32(b), data); err != nil {
				t.Fatal(err)
			}
			want.blocks[b] = data
		}
		snap, err := ec2c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(snap.SnapshotId)
	}
	check := func(point format.ID) {
		t.Helper()
		want.off, want.bad = 0, nil
		if _, err := disk.RestoreTo(ctx, env.Repo, point, want); err != nil {
			t.Fatal(err)
		}
		if want.bad != nil {
			t.Fatal(want.bad)
		}
	}
	pass := func(snapshot string, parent format.ID, changed func(*dr.Snapshot) []chunker.Extent, point, parentPoint string) format.ID {
		t.Helper()
		s, err := dr.OpenSnapshot(ctx, api, snapshot)
		if err != nil {
			t.Fatal(err)
		}
		w, err := env.Repo.NewWriter(ctx, parentPoint)
		if err != nil {
			t.Fatal(err)
		}
		root, _, err := disk.Capture(ctx, w, env.Repo, disk.CaptureOptions{Name: "disk0", Source: s, Size: s.Size(), BlockSize: int(s.BlockSize()), Changed: changed(s), Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx, point, root); err != nil {
			t.Fatal(err)
		}
		return root
	}

	// The first pass, while the instance still runs: the blocks it holds.
	first := guest(1, 9, 100)
	api.gets.Store(0)
	p1 := pass(first, format.ID{}, (*dr.Snapshot).Extents, "fb1", "")
	if got := api.gets.Load(); got != int64(len(want.blocks)) {
		t.Errorf("the first pass read %d blocks, the volume holds %d", got, len(want.blocks))
	}
	check(p1)

	// The cut-over pass: only what changed since.
	second := guest(2, 100, 2000)
	var changed []chunker.Extent
	api.gets.Store(0)
	p2 := pass(second, p1, func(s *dr.Snapshot) []chunker.Extent {
		var err error
		if changed, err = s.Changed(ctx, first); err != nil {
			t.Fatal(err)
		}
		return changed
	}, "fb2", "fb1")
	if len(changed) != 3 || api.gets.Load() != 3 {
		t.Errorf("the second pass: changed %v, %d blocks read, want the 3 the guest wrote", changed, api.gets.Load())
	}
	check(p2)
}

// TestFailbackSourceSizesDisks: a failback disk keeps the size it asks
// for while the volume holds nothing past it, and takes the volume's size
// once the guest wrote past it (a disk cut there would lose the data).
func TestFailbackSourceSizesDisks(t *testing.T) {
	ctx := context.Background()
	endpoint := testparts.Moto(t)
	api := testparts.MotoEBSClient(endpoint)
	ec2c := testparts.MotoEC2Client(endpoint)
	bs := testparts.MotoBlockSize
	vol, err := ec2c.CreateVolume(ctx, &ec2.CreateVolumeInput{Size: aws.Int32(1), AvailabilityZone: aws.String(testparts.MotoRegion + "a")})
	if err != nil {
		t.Fatal(err)
	}
	snapshotAfter := func(block int32) string {
		t.Helper()
		if err := testparts.MotoWriteVolumeBlock(ctx, endpoint, aws.ToString(vol.VolumeId), block, bytes.Repeat([]byte{1}, bs)); err != nil {
			t.Fatal(err)
		}
		snap, err := ec2c.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: vol.VolumeId})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(snap.SnapshotId)
	}
	asked := int64(4 * bs)
	for _, c := range []struct {
		name     string
		snapshot string
		want     int64
	}{
		{"data within the disk", snapshotAfter(1), asked},
		{"data past the disk", snapshotAfter(6), 1 << 30},
	} {
		src, err := dr.NewFailbackSource(ctx, api, []dr.FailbackDisk{{Key: 2000, SnapshotID: c.snapshot, CapacityBytes: asked}})
		if err != nil {
			t.Fatal(err)
		}
		if got := src.Disks[0].CapacityBytes; got != c.want {
			t.Errorf("%s: the disk is %d bytes, want %d", c.name, got, c.want)
		}
		if src.BlockSize() != bs {
			t.Errorf("%s: block size %d, want EBS's %d", c.name, src.BlockSize(), bs)
		}
	}
}
