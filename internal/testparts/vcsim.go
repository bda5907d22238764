package testparts

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/vmware/govmomi/simulator"

	"github.com/havenbackup/terraform-provider-haven/internal/vcsimlab"
)

// Credentials the simulator accepts; anything else is InvalidLogin.
const (
	VCSimUser     = vcsimlab.DefaultUser
	VCSimPassword = vcsimlab.DefaultPassword
)

// VCSimDiskSize is the capacity of the disks of the Haven test VMs: small
// enough to read whole in a test, large enough for many blocks.
const VCSimDiskSize = vcsimlab.DefaultDiskSize

// cbtWindow is how much of a disk one QueryChangedDiskAreas answer covers.
const cbtWindow = vcsimlab.CBTWindow

// VCSimEnv is a running in-process vCenter simulator: a vcsimlab.Lab with
// its default VMs, whose failures fail the test. Its VMs are "app-01" in
// /DC0/vm/prod (one disk) and "db-01" in /DC0/vm (two disks). The Lab's
// fields (URL, credentials, Client, ...) are the environment's; the
// helpers below shadow the Lab's methods of the same name.
type VCSimEnv struct {
	*vcsimlab.Lab
}

// VCSim starts a simulator for the test and stops it at cleanup.
func VCSim(t testing.TB) *VCSimEnv {
	t.Helper()
	lab, err := vcsimlab.Start(context.Background(), vcsimlab.Options{})
	if err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	t.Cleanup(lab.Close)
	return &VCSimEnv{Lab: lab}
}

// vm returns the simulator's object for a VM name.
func (e *VCSimEnv) vm(t testing.TB, name string) *simulator.VirtualMachine {
	t.Helper()
	vm, err := e.Lab.SimulatorVM(name)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// DiskFile returns the live descriptor datastore path of a VM's disk.
func (e *VCSimEnv) DiskFile(t testing.TB, vmName string, diskIndex int) string {
	t.Helper()
	f, err := e.Lab.DiskFile(vmName, diskIndex)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// WriteDisk writes data at offset into a VM's disk, as the guest would,
// through the datastore /folder API, and records it for changed block
// tracking.
func (e *VCSimEnv) WriteDisk(t testing.TB, vmName string, diskIndex int, offset int64, data []byte) {
	t.Helper()
	if err := e.Lab.WriteDisk(context.Background(), vmName, diskIndex, offset, data); err != nil {
		t.Fatal(err)
	}
}

// WriteDiskAt is WriteDisk for several writes with one round trip.
func (e *VCSimEnv) WriteDiskAt(t testing.TB, vmName string, diskIndex int, writes map[int64][]byte) {
	t.Helper()
	if err := e.Lab.WriteDiskAt(context.Background(), vmName, diskIndex, writes); err != nil {
		t.Fatal(err)
	}
}

// SetPower powers a VM on or off, as its owner would.
func (e *VCSimEnv) SetPower(t testing.TB, vmName string, on bool) {
	t.Helper()
	if err := e.Lab.SetPower(context.Background(), vmName, on); err != nil {
		t.Fatal(err)
	}
}

// RandomBlocks are writes for WriteDiskAt: n seeded random bytes every
// `every` bytes of a disk of size bytes.
func RandomBlocks(rng *rand.Rand, size, every int64, n int) map[int64][]byte {
	out := map[int64][]byte{}
	for off := int64(0); off < size; off += every {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		out[off] = b
	}
	return out
}

// DiskBytes reads a VM's whole live disk through /folder.
func (e *VCSimEnv) DiskBytes(t testing.TB, vmName string, diskIndex int) []byte {
	t.Helper()
	b, err := e.Lab.DiskBytes(context.Background(), vmName, diskIndex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ChangeID is the disk's current change id, as vSphere would report it.
func (e *VCSimEnv) ChangeID(t testing.TB, vmName string, diskIndex int) string {
	t.Helper()
	id, err := e.Lab.ChangeID(vmName, diskIndex)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// CreateVM adds a VM to the simulator (see vcsimlab.VMSpec).
func (e *VCSimEnv) CreateVM(t testing.TB, spec vcsimlab.VMSpec) {
	t.Helper()
	if err := e.Lab.CreateVM(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
}

// TagVM attaches "category:tag" to a VM.
func (e *VCSimEnv) TagVM(t testing.TB, vmName, tag string) {
	t.Helper()
	if err := e.Lab.TagVM(context.Background(), vmName, tag); err != nil {
		t.Fatal(err)
	}
}

// UntagVM detaches "category:tag" from a VM.
func (e *VCSimEnv) UntagVM(t testing.TB, vmName, tag string) {
	t.Helper()
	if err := e.Lab.UntagVM(context.Background(), vmName, tag); err != nil {
		t.Fatal(err)
	}
}

// ResizeDisk extends a VM's disk to newSize bytes.
func (e *VCSimEnv) ResizeDisk(t testing.TB, vmName string, diskIndex int, newSize int64) {
	t.Helper()
	if err := e.Lab.ResizeDisk(context.Background(), vmName, diskIndex, newSize); err != nil {
		t.Fatal(err)
	}
}

// FillDisk writes seeded pseudo-random data over about allocatedFraction
// of a VM's disk and returns the bytes written.
func (e *VCSimEnv) FillDisk(t testing.TB, vmName string, diskIndex int, seed uint64, allocatedFraction float64) int64 {
	t.Helper()
	n, err := e.Lab.FillDisk(context.Background(), vmName, diskIndex, seed, allocatedFraction)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
