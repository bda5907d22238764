package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// drBench is make bench-dr (issue 15): replication of a 4 GiB disk to EBS
// after a 1% change, and the failover of 20 VMs, against moto_server with
// Haven's plug-in. Moto is a Python process on the same cores, so its
// figures are relative: beside the incremental copy the bench prints the
// rate at which this moto takes block puts at the same concurrency,
// measured in the same run, and the copy's share of it; beside the
// failover, the time spent inside EC2 calls, so that the orchestration's
// own time (the target) is the rest.
func drBench(ctx context.Context, r *repo.Repository) error {
	endpoint, stop, err := testparts.StartMoto()
	if err != nil {
		return err
	}
	defer stop()
	ebsc, ec2c := testparts.MotoEBSClient(endpoint), testparts.MotoEC2Client(endpoint)
	const size, hb = 4 << 30, 1 << 20
	src := &benchDisk{size: size, block: hb, version: map[int64]int{}}
	fmt.Fprintln(os.Stderr, "bench-dr: backing up a 4 GiB disk, half allocated")
	root1, err := benchCapture(ctx, r, src, src.allocated(), format.ID{}, "dr-1", "")
	if err != nil {
		return err
	}
	// 1% of the blocks change, all in allocated areas.
	rng := rand.New(rand.NewPCG(15, 15))
	var changed []chunker.Extent
	for len(changed) < size/hb/100 {
		b := int64(rng.IntN(size / hb))
		if src.data(b) && src.version[b] == 0 {
			src.version[b] = 1
			changed = append(changed, chunker.Extent{Offset: b * hb, Length: hb})
		}
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].Offset < changed[j].Offset })
	root2, err := benchCapture(ctx, r, src, changed, root1, "dr-2", "dr-1")
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "bench-dr: first copy (all 2 GiB of data)")
	start := time.Now()
	first, fst, err := dr.Replicate(ctx, r, ebsc, dr.ReplicateOptions{Disk: root1, ClientToken: "bench-1"})
	if err != nil {
		return err
	}
	fullSecs := time.Since(start).Seconds()
	start = time.Now()
	second, st, err := dr.Replicate(ctx, r, ebsc, dr.ReplicateOptions{Disk: root2, Previous: &first, ClientToken: "bench-2"})
	if err != nil {
		return err
	}
	incSecs := time.Since(start).Seconds()
	if err := dr.WaitCompleted(ctx, ec2c, second.SnapshotID, time.Minute); err != nil {
		return err
	}
	rate, err := putRate(ctx, ebsc, 400)
	if err != nil {
		return err
	}
	fmt.Println("\nDR to AWS against moto_server (with Haven's plug-in), one run")
	fmt.Printf("replication, first copy of a 4 GiB disk (2 GiB allocated): %d of %d blocks put (%.0f MB), %.2f s\n",
		fst.Put, fst.Blocks, float64(fst.BytesPut)/1e6, fullSecs)
	fmt.Printf("replication after a 1%% change (%d Haven blocks of 1 MiB): %d blocks put (%.1f MB, %d changed), %.2f s; "+
		"limit: this moto takes %.0f puts/s at the same concurrency, so %d puts need %.2f s (%.0f%% of the limit)\n",
		len(changed), st.Put, float64(st.BytesPut)/1e6, st.Changed, incSecs, rate, st.Put, float64(st.Put)/rate, 100*float64(st.Put)/rate/incSecs)

	// Failover of 20 VMs: 4 boot groups of 5, each VM after the first of
	// the group before it.
	var machines []dr.Machine
	for i := range 20 {
		m := dr.Machine{Name: fmt.Sprintf("vm%02d", i), Disks: []dr.DiskCopy{second}, InstanceType: "t3.medium", Group: i / 5}
		if i >= 5 {
			m.DependsOn = []string{fmt.Sprintf("vm%02d", (i/5-1)*5)}
		}
		machines = append(machines, m)
	}
	timed := &timedEC2{EC2: ec2c}
	start = time.Now()
	res, err := dr.Launch(ctx, timed, dr.LaunchOptions{Run: "bench-failover", Machines: machines, Poll: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	wall := time.Since(start)
	inAPI := timed.busy()
	fmt.Printf("failover of 20 VMs in 4 boot groups: %.3f s, of which %.3f s with an EC2 call in flight; orchestration beyond the API calls %.3f s (target < 5 s); RTO recorded %.3f s\n",
		wall.Seconds(), inAPI.Seconds(), (wall - inAPI).Seconds(), time.Duration(res.RTO).Seconds())
	order := slices.Clone(res.Steps)
	ok := true
	ready := map[string]time.Time{}
	for _, s := range order {
		if s.Step == "ready" {
			ready[s.Machine] = s.At
		}
	}
	for _, s := range order {
		if s.Step != "launch" {
			continue
		}
		for _, m := range machines {
			if m.Name == s.Machine {
				for _, d := range m.DependsOn {
					ok = ok && s.At.After(ready[d])
				}
			}
		}
	}
	fmt.Printf("boot order respected: %v\n", ok)
	if _, err := dr.Cleanup(ctx, ec2c, "bench-failover", time.Minute, 100*time.Millisecond); err != nil {
		return err
	}
	return nil
}

// benchDisk is a generated disk: every other 64 MiB is allocated, each
// block's bytes derived from its number and version.
type benchDisk struct {
	size, block int64
	version     map[int64]int
}

func (d *benchDisk) data(b int64) bool { return (b*d.block/(64<<20))%2 == 0 }

func (d *benchDisk) allocated() []chunker.Extent {
	var out []chunker.Extent
	for off := int64(0); off < d.size; off += 64 << 20 {
		if d.data(off / d.block) {
			out = append(out, chunker.Extent{Offset: off, Length: 64 << 20})
		}
	}
	return out
}

func (d *benchDisk) ReadAt(p []byte, off int64) (int, error) {
	for i := 0; i < len(p); {
		b := (off + int64(i)) / d.block
		within := (off + int64(i)) % d.block
		n := min(int64(len(p)-i), d.block-within)
		dst := p[i : i+int(n)]
		if !d.data(b) {
			clear(dst)
		} else {
			rng := rand.New(rand.NewPCG(uint64(b), uint64(d.version[b])))
			var word [8]byte
			for j := int64(0); j < within+n; j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					word[k] = byte(v >> (8 * k))
				}
				for k := range int64(8) {
					if at := j + k; at >= within && at < within+n {
						dst[at-within] = word[k]
					}
				}
			}
		}
		i += int(n)
	}
	return len(p), nil
}

func benchCapture(ctx context.Context, r *repo.Repository, d *benchDisk, changed []chunker.Extent, parent format.ID, point, parentPoint string) (format.ID, error) {
	w, err := r.NewWriter(ctx, parentPoint)
	if err != nil {
		return format.ID{}, err
	}
	root, _, err := disk.Capture(ctx, w, r, disk.CaptureOptions{Name: "disk0", Source: d, Size: d.size, BlockSize: int(d.block), Changed: changed, Parent: parent})
	if err != nil {
		w.Abort(ctx)
		return format.ID{}, err
	}
	return root, w.Commit(ctx, point, root)
}

// putRate is how many block puts per second this moto takes at
// Replicate's default concurrency: n puts of random blocks to a scratch
// snapshot.
func putRate(ctx context.Context, client *ebs.Client, n int) (float64, error) {
	snap, err := client.StartSnapshot(ctx, &ebs.StartSnapshotInput{VolumeSize: aws.Int64(1)})
	if err != nil {
		return 0, err
	}
	block := make([]byte, aws.ToInt32(snap.BlockSize))
	for i := range block {
		block[i] = byte(i * 7)
	}
	blocks := int32(len(block))
	digest := sha256.Sum256(block)
	sum := base64.StdEncoding.EncodeToString(digest[:])
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8 * runtime.GOMAXPROCS(0))
	start := time.Now()
	for i := range n {
		g.Go(func() error {
			_, err := client.PutSnapshotBlock(gctx, &ebs.PutSnapshotBlockInput{SnapshotId: snap.SnapshotId, BlockIndex: aws.Int32(int32(i) % ((1 << 30) / blocks)),
				BlockData: bytes.NewReader(block), DataLength: aws.Int32(blocks), Checksum: aws.String(sum), ChecksumAlgorithm: "SHA256"})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// timedEC2 records when EC2 calls are in flight.
type timedEC2 struct {
	dr.EC2
	mu    sync.Mutex
	spans [][2]time.Time
}

func (t *timedEC2) span(start time.Time) {
	t.mu.Lock()
	t.spans = append(t.spans, [2]time.Time{start, time.Now()})
	t.mu.Unlock()
}

// busy is the time during which at least one call was in flight.
func (t *timedEC2) busy() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := slices.Clone(t.spans)
	sort.Slice(s, func(i, j int) bool { return s[i][0].Before(s[j][0]) })
	var total time.Duration
	var cur [2]time.Time
	for i, sp := range s {
		if i == 0 || sp[0].After(cur[1]) {
			total += cur[1].Sub(cur[0])
			cur = sp
		} else if sp[1].After(cur[1]) {
			cur[1] = sp[1]
		}
	}
	return total + cur[1].Sub(cur[0])
}

func (t *timedEC2) RegisterImage(ctx context.Context, in *ec2.RegisterImageInput, o ...func(*ec2.Options)) (*ec2.RegisterImageOutput, error) {
	defer t.span(time.Now())
	return t.EC2.RegisterImage(ctx, in, o...)
}

func (t *timedEC2) DescribeImages(ctx context.Context, in *ec2.DescribeImagesInput, o ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error) {
	defer t.span(time.Now())
	return t.EC2.DescribeImages(ctx, in, o...)
}

func (t *timedEC2) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, o ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	defer t.span(time.Now())
	return t.EC2.RunInstances(ctx, in, o...)
}

func (t *timedEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, o ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	defer t.span(time.Now())
	return t.EC2.DescribeInstances(ctx, in, o...)
}

func (t *timedEC2) DescribeInstanceStatus(ctx context.Context, in *ec2.DescribeInstanceStatusInput, o ...func(*ec2.Options)) (*ec2.DescribeInstanceStatusOutput, error) {
	defer t.span(time.Now())
	return t.EC2.DescribeInstanceStatus(ctx, in, o...)
}
