package dr_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopMoto()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

// image is a disk's bytes: random data, with holes (all-zero blocks,
// which a backup records as holes) every fifth Haven block.
func image(size, blockSize int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	img := make([]byte, size)
	for b := 0; b*blockSize < size; b++ {
		if b%5 == 2 {
			continue
		}
		for i := b * blockSize; i < min(size, (b+1)*blockSize); i++ {
			img[i] = byte(rng.Uint32())
		}
	}
	return img
}

func capture(t *testing.T, r *repo.Repository, img []byte, blockSize int, point, parentPoint string, parent format.ID) format.ID {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewWriter(ctx, parentPoint)
	if err != nil {
		t.Fatal(err)
	}
	root, _, err := disk.Capture(ctx, w, r, disk.CaptureOptions{Name: "disk0", Source: bytes.NewReader(img), Size: int64(len(img)), BlockSize: blockSize, Parent: parent})
	if err != nil {
		w.Abort(ctx)
		t.Fatal(err)
	}
	if err := w.Commit(ctx, point, root); err != nil {
		t.Fatal(err)
	}
	return root
}

// readSnapshot reads every block of an EBS snapshot back through the
// direct APIs (checking each block's checksum), as an image of size bytes.
func readSnapshot(t *testing.T, client *ebs.Client, id string, size int) []byte {
	t.Helper()
	ctx := context.Background()
	img := make([]byte, size)
	var token *string
	for {
		page, err := client.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id), NextToken: token})
		if err != nil {
			t.Fatalf("listing the blocks of %s: %v", id, err)
		}
		bs := int(aws.ToInt32(page.BlockSize))
		for _, b := range page.Blocks {
			out, err := client.GetSnapshotBlock(ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(id), BlockIndex: b.BlockIndex, BlockToken: b.BlockToken})
			if err != nil {
				t.Fatalf("block %d of %s: %v", aws.ToInt32(b.BlockIndex), id, err)
			}
			data, err := io.ReadAll(out.BlockData)
			out.BlockData.Close()
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			if got := base64.StdEncoding.EncodeToString(sum[:]); got != aws.ToString(out.Checksum) {
				t.Fatalf("block %d of %s: checksum %s, the data hashes to %s", aws.ToInt32(b.BlockIndex), id, aws.ToString(out.Checksum), got)
			}
			at := int(aws.ToInt32(b.BlockIndex)) * bs
			if at < size {
				copy(img[at:], data[:min(len(data), size-at)])
			}
		}
		if token = page.NextToken; token == nil {
			return img
		}
	}
}

// changedBlocks lists the blocks of second that differ from first.
func changedBlocks(t *testing.T, client *ebs.Client, first, second string) []int32 {
	t.Helper()
	var out []int32
	var token *string
	for {
		page, err := client.ListChangedBlocks(context.Background(), &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(first), SecondSnapshotId: aws.String(second), NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range page.ChangedBlocks {
			out = append(out, aws.ToInt32(b.BlockIndex))
		}
		if token = page.NextToken; token == nil {
			return out
		}
	}
}

// TestReplicateIncrementally: a disk's first copy puts its data blocks
// and no zero block; after 1% of it changes (and one data block becomes a
// hole), the next copy is a child of the first that puts only the EBS
// blocks under the changed Haven blocks (the hole as zeros) and reads back
// as the new point. Both with Haven blocks larger than EBS blocks and
// smaller.
func TestReplicateIncrementally(t *testing.T) {
	endpoint := testparts.Moto(t)
	client := testparts.MotoEBSClient(endpoint)
	for _, blockSize := range []int{1 << 20, 64 << 10} {
		t.Run(fmt.Sprintf("%d KiB blocks", blockSize>>10), func(t *testing.T) {
			env := repotest.New(t, repo.Options{})
			size := 100<<20 + 12345
			img := image(size, blockSize, 1)
			root1 := capture(t, env.Repo, img, blockSize, "p1", "", format.ID{})
			ctx := context.Background()
			first, st, err := dr.Replicate(ctx, env.Repo, client, dr.ReplicateOptions{Disk: root1, ClientToken: t.Name() + "-1", Description: "haven test"})
			if err != nil {
				t.Fatal(err)
			}
			ebsBlock := int(first.BlockSize)
			if ebsBlock != testparts.MotoBlockSize {
				t.Fatalf("block size %d, want the API's %d", ebsBlock, testparts.MotoBlockSize)
			}
			wantPut := 0
			for b := 0; b*ebsBlock < size; b++ {
				if !isZero(img[b*ebsBlock : min(size, (b+1)*ebsBlock)]) {
					wantPut++
				}
			}
			if st.Put != int64(wantPut) || st.ZeroBlocks != 0 {
				t.Errorf("first copy put %d blocks (%d of zeros), want the %d that hold data", st.Put, st.ZeroBlocks, wantPut)
			}
			if got := readSnapshot(t, client, first.SnapshotID, size); !bytes.Equal(got, img) {
				t.Fatal("the first copy does not read back as the disk")
			}

			// 1% of the disk's Haven blocks change; one data block becomes zeros.
			img2 := slices.Clone(img)
			blocks := (size + blockSize - 1) / blockSize
			rng := rand.New(rand.NewPCG(2, 2))
			changed := map[int]bool{}
			for len(changed) < max(1, blocks/100) {
				changed[rng.IntN(blocks)] = true
			}
			for b := range changed {
				for i := b * blockSize; i < min(size, (b+1)*blockSize); i++ {
					img2[i] = byte(rng.Uint32())
				}
			}
			zeroed := 3 // a data block (b%5 != 2) not among the changed
			for changed[zeroed] {
				zeroed += 5
			}
			clear(img2[zeroed*blockSize : (zeroed+1)*blockSize])
			changed[zeroed] = true
			root2 := capture(t, env.Repo, img2, blockSize, "p2", "p1", root1)

			second, st, err := dr.Replicate(ctx, env.Repo, client, dr.ReplicateOptions{Disk: root2, Previous: &first, ClientToken: t.Name() + "-2"})
			if err != nil {
				t.Fatal(err)
			}
			// The EBS blocks under a changed Haven block.
			want := map[int32]bool{}
			for b := range changed {
				lo, hi := b*blockSize, min(size, (b+1)*blockSize)
				for e := lo / ebsBlock; e*ebsBlock < hi; e++ {
					want[int32(e)] = true
				}
			}
			// Those that became all zeros are put as zeros.
			wantZeros := 0
			for e := range want {
				lo, hi := int(e)*ebsBlock, min(size, int(e+1)*ebsBlock)
				if isZero(img2[lo:hi]) && !isZero(img[lo:hi]) {
					wantZeros++
				}
			}
			if st.Put != int64(len(want)) || st.ZeroBlocks != int64(wantZeros) {
				t.Errorf("second copy put %d blocks (%d of zeros), want %d (%d)", st.Put, st.ZeroBlocks, len(want), wantZeros)
			}
			for _, b := range changedBlocks(t, client, first.SnapshotID, second.SnapshotID) {
				if !want[b] {
					t.Errorf("block %d differs between the copies, but its Haven blocks did not change", b)
				}
			}
			if got := readSnapshot(t, client, second.SnapshotID, size); !bytes.Equal(got, img2) {
				t.Fatal("the second copy does not read back as the changed disk")
			}
		})
	}
}

func isZero(b []byte) bool { return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) }

// failingEBS fails every put after the first n, and remembers the
// snapshot they went to.
type failingEBS struct {
	*ebs.Client
	n        int64
	puts     atomic.Int64
	snapshot atomic.Value
}

var errCrash = errors.New("crash")

func (f *failingEBS) PutSnapshotBlock(ctx context.Context, in *ebs.PutSnapshotBlockInput, opts ...func(*ebs.Options)) (*ebs.PutSnapshotBlockOutput, error) {
	f.snapshot.Store(aws.ToString(in.SnapshotId))
	if f.puts.Add(1) > f.n {
		return nil, errCrash
	}
	return f.Client.PutSnapshotBlock(ctx, in, opts...)
}

// TestReplicateResumesWithItsToken: a copy cut short part way, run again
// with the same client token, continues the same snapshot (no twin) and
// completes it with the disk's bytes; run a third time, it finds the
// snapshot completed and puts nothing.
func TestReplicateResumesWithItsToken(t *testing.T) {
	endpoint := testparts.Moto(t)
	client := testparts.MotoEBSClient(endpoint)
	env := repotest.New(t, repo.Options{})
	size := 20 << 20
	img := image(size, 1<<20, 3)
	root := capture(t, env.Repo, img, 1<<20, "p1", "", format.ID{})
	ctx := context.Background()
	o := dr.ReplicateOptions{Disk: root, ClientToken: t.Name(), Puts: 1}
	cut := &failingEBS{Client: client, n: 5}
	if _, _, err := dr.Replicate(ctx, env.Repo, cut, o); !errors.Is(err, errCrash) {
		t.Fatalf("the cut copy: %v", err)
	}
	cp, st, err := dr.Replicate(ctx, env.Repo, client, o)
	if err != nil {
		t.Fatal(err)
	}
	if first, _ := cut.snapshot.Load().(string); first != cp.SnapshotID {
		t.Errorf("the rerun wrote snapshot %s, the cut run %s: a twin", cp.SnapshotID, first)
	}
	again, st3, err := dr.Replicate(ctx, env.Repo, client, o)
	if err != nil {
		t.Fatal(err)
	}
	if again.SnapshotID != cp.SnapshotID || !st3.Resumed || st3.Put != 0 {
		t.Errorf("a third run with the token: snapshot %s (first %s), resumed %v, put %d", again.SnapshotID, cp.SnapshotID, st3.Resumed, st3.Put)
	}
	if st.Put == 0 {
		t.Error("the resumed copy put nothing")
	}
	if got := readSnapshot(t, client, cp.SnapshotID, size); !bytes.Equal(got, img) {
		t.Fatal("the resumed copy does not read back as the disk")
	}
}
