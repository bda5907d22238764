package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
)

// vmDiskSize is the benchmark VM's disk: 4 GiB, half of it allocated.
const vmDiskSize = 4 << 30

// vmCBTWindow is the reach of one changed-areas answer in the benchmark:
// 16 answers for the disk. The lab's default (4 MiB, 1024 answers) is
// there to make tests page, and would turn the incremental into a
// measurement of SOAP round trips.
const vmCBTWindow = 256 << 20

// vmBench backs up a 4 GiB VM disk (50% allocated) from the in-process
// vSphere simulator through the real path (snapshot, CBT, ranged /folder
// reads), changes 1% of its blocks, and backs it up again. It also reads
// and hashes the allocated bytes the same way, the limit of this machine.
func vmBench(ctx context.Context, r *repo.Repository, state string) error {
	dir, err := os.MkdirTemp(state, "vcsim-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lab, err := startBenchLab(ctx, dir)
	if err != nil {
		return err
	}
	defer lab.Close()
	c, err := vmware.Connect(ctx, vmware.Config{URL: lab.URL, Username: lab.Username, Password: lab.Password, Thumbprint: lab.Thumbprint})
	if err != nil {
		return err
	}
	defer c.Logout(ctx)
	vm, err := c.VMByName(ctx, "bench-vm")
	if err != nil {
		return err
	}
	if err := c.EnableCBT(ctx, vm); err != nil {
		return err
	}

	allocated, err := vmLimits(ctx, c, vm)
	if err != nil {
		return err
	}
	sw, err := storeWriteLimit(filepath.Join(state, "store-write-limit"), allocated, engineUploads())
	if err != nil {
		return err
	}
	sw.Phase = "vm-store-write-limit"
	if err := emit(sw); err != nil {
		return err
	}
	full, err := vmBackup(ctx, r, c, "bench-vm", "vm-full", "", format.ID{})
	if err != nil {
		return err
	}
	written, err := lab.FillDisk(ctx, "bench-vm", 0, 2, 0.01)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "haven-bench: changed %d bytes (1%% of the disk's blocks)\n", written)
	_, err = vmBackup(ctx, r, c, "bench-vm", "vm-incremental", "vm-full", full)
	return err
}

// startBenchLab starts a simulator holding the benchmark VM, its disk
// filled half with data, keeping its files under dir.
func startBenchLab(ctx context.Context, dir string) (*vcsimlab.Lab, error) {
	lab, err := vcsimlab.Start(ctx, vcsimlab.Options{Dir: dir, CBTWindow: vmCBTWindow, VMs: []vcsimlab.VMSpec{{Name: "bench-vm", DiskSizes: []int64{vmDiskSize}}}})
	if err != nil {
		return nil, err
	}
	if _, err := lab.FillDisk(ctx, "bench-vm", 0, 1, 0.5); err != nil {
		lab.Close()
		return nil, err
	}
	return lab, nil
}

// vmBackup times one VM backup: snapshot, capture, commit, snapshot removal.
func vmBackup(ctx context.Context, r *repo.Repository, c *vmware.Client, name, point, parentPoint string, parent format.ID) (format.ID, error) {
	vm, err := c.VMByName(ctx, name)
	if err != nil {
		return format.ID{}, err
	}
	// The simulator freezes a snapshot by copying the whole disk file,
	// which vSphere does not do; the snapshot is timed apart from the
	// backup proper (CBT query, reads, chunking, upload, commit).
	snapStart := time.Now()
	snap, err := c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+point, false)
	if err != nil {
		return format.ID{}, err
	}
	snapSecs := time.Since(snapStart).Seconds()
	cpu0, start := cpuSeconds(), time.Now()
	w, err := r.NewWriter(ctx, parentPoint)
	if err != nil {
		return format.ID{}, err
	}
	root, meta, _, err := vmimage.Capture(ctx, w, r, c, vmimage.Options{VM: vm, Snapshot: snap, Parent: parent})
	if err != nil {
		w.Abort(ctx)
		return format.ID{}, err
	}
	if err := w.Commit(ctx, point, root); err != nil {
		return format.ID{}, err
	}
	secs, cpu0Phase := time.Since(start).Seconds(), cpuSeconds()-cpu0
	if err := c.RemoveSnapshot(ctx, vm, snap); err != nil {
		return format.ID{}, err
	}
	ws := w.Stats()
	return root, emit(result{Phase: point, Seconds: secs, Bytes: meta.CapacityBytes, ReadBytes: meta.ReadBytes,
		MBps: mb(meta.ReadBytes) / secs, NewBytes: ws.NewBytes, SnapshotSeconds: snapSecs, PhaseCPUSeconds: cpu0Phase})
}

// vmLimits reads the allocated areas of the disk through the same ranged
// /folder reads a backup uses, in pieces of one block, as many at once as
// a backup reads (vmimage.DefaultReaders): the ranged-read limit. A second
// pass reads the same way and also does to every block what no backup can
// skip: the zero check, the keyed BLAKE3 id, and sealing (zstd at the
// repository's level, AES-GCM), with no index, packs or store. The
// simulator serves the reads from this process, on the same cores, so when
// the first pass keeps every core busy, the second pass's speed is as far
// as a backup can get toward the first's on this machine. It returns the
// bytes read, the disk's allocated data.
func vmLimits(ctx context.Context, c *vmware.Client, vm vmware.VM) (int64, error) {
	snap, err := c.CreateSnapshot(ctx, vm, vmware.SnapshotPrefix+"limits", false)
	if err != nil {
		return 0, err
	}
	defer c.RemoveSnapshot(ctx, vm, snap)
	areas, _, err := c.ChangedAreas(ctx, vm, snap, vm.Disks[0].Key, "*")
	if err != nil {
		return 0, err
	}
	src, _, err := c.OpenDisk(ctx, vm, snap, vm.Disks[0])
	if err != nil {
		return 0, err
	}
	var keys [64]byte
	if _, err := rand.Read(keys[:]); err != nil {
		return 0, err
	}
	hasher := format.NewHasher([32]byte(keys[:32]))
	sealer, err := format.NewSealer([32]byte(keys[32:]))
	if err != nil {
		return 0, err
	}
	type piece struct{ off, n int64 }
	pass := func(phase string, work func(block []byte, scratch, sealed *[]byte)) (int64, error) {
		pieces := make(chan piece)
		var total atomic.Int64
		g, gctx := errgroup.WithContext(ctx)
		cpu0, start := cpuSeconds(), time.Now()
		for range vmimage.DefaultReaders {
			g.Go(func() error {
				buf := make([]byte, chunker.DefaultBlockSize)
				// Room for a block's compression and its sealed blob, as
				// the writer's pooled buffers give it.
				scratch := make([]byte, 0, 2*chunker.DefaultBlockSize)
				var sealed []byte
				for p := range pieces {
					if _, err := src.ReadAt(buf[:p.n], p.off); err != nil && err != io.EOF {
						return err
					}
					if work != nil {
						work(buf[:p.n], &scratch, &sealed)
					}
					total.Add(p.n)
				}
				return nil
			})
		}
		g.Go(func() error {
			defer close(pieces)
			for _, a := range areas {
				for off := a.Offset; off < a.End(); off += chunker.DefaultBlockSize {
					select {
					case pieces <- piece{off, min(chunker.DefaultBlockSize, a.End()-off)}:
					case <-gctx.Done():
						return gctx.Err()
					}
				}
			}
			return nil
		})
		if err := g.Wait(); err != nil {
			return 0, err
		}
		secs := time.Since(start).Seconds()
		n := total.Load()
		return n, emit(result{Phase: phase, Seconds: secs, Bytes: n, MBps: mb(n) / secs, Parallel: vmimage.DefaultReaders,
			PhaseCPUSeconds: cpuSeconds() - cpu0})
	}
	n, err := pass("vm-read-limit", nil)
	if err != nil {
		return 0, err
	}
	_, err = pass("vm-read-seal-limit", func(block []byte, scratch, sealed *[]byte) {
		if chunker.IsZero(block) {
			return
		}
		id := hasher.Sum(block)
		*sealed, _ = sealer.Seal((*sealed)[:0], id, block, *scratch)
	})
	return n, err
}

// vmLab serves the benchmark VM (the same disk vmBench backs up) from a
// simulator in this process until it is interrupted, for `make profile`,
// whose haven server reaches it over HTTP as it would a vCenter. The
// simulator's address and login go to out as JSON (mode 0600).
func vmLab(ctx context.Context, state, out string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	lab, err := startBenchLab(ctx, state)
	if err != nil {
		return err
	}
	defer lab.Close()
	login, err := json.Marshal(map[string]string{"url": lab.URL, "username": lab.Username, "password": lab.Password, "thumbprint": lab.Thumbprint})
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, login, 0o600); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}
