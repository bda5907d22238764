package vmware

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/soap"
)

// OpenDisk returns a reader of a disk's bytes as they are in the snapshot,
// and the disk's size.
//
// The bytes come from the datastore HTTP interface (/folder) with Range
// requests rather than from an NFC export lease. An export lease streams
// whole disks in order, as stream-optimized VMDKs, so it can neither skip
// to CBT's changed areas nor be read by several workers at once, and it
// holds the VM in an export state for the whole job. /folder serves the
// flat extent of the snapshot's base disk as plain bytes at any offset:
// exactly the io.ReaderAt that disk.Capture wants, with the caller
// choosing how many ranges to read in parallel. Its limit is that it works
// for flat extents (VMFS and NFS datastores, which are most), not for vSAN
// or vVols objects; those need VDDK, which can be put behind the same
// io.ReaderAt later.
func (c *Client) OpenDisk(ctx context.Context, vm VM, snapshot string, disk Disk) (io.ReaderAt, int64, error) {
	d, err := snapshotDisk(ctx, c, snapshot, disk.Key)
	if err != nil {
		return nil, 0, err
	}
	var p object.DatastorePath
	if !p.FromString(d.FileName) {
		return nil, 0, fmt.Errorf("vsphere: disk %d of snapshot %s has no datastore file (%q)", d.Key, snapshot, d.FileName)
	}
	desc, err := c.readDescriptor(ctx, vm.Datacenter, p)
	if err != nil {
		return nil, 0, err
	}
	if !singleFlat(desc) {
		var kinds []string
		for _, e := range desc.Extent {
			kinds = append(kinds, e.Type)
		}
		return nil, 0, fmt.Errorf("vsphere: disk %s has extents %v; only a single flat extent can be read over /folder", d.FileName, kinds)
	}
	if desc.ParentCID != 0 && desc.ParentCID != 0xffffffff {
		return nil, 0, fmt.Errorf("vsphere: disk %s is a delta disk; its data needs its parent chain", d.FileName)
	}
	return &datastoreReader{
		c:    c.soap,
		ctx:  context.WithoutCancel(ctx),
		url:  c.folderURL(vm.Datacenter, extentOf(p, desc)),
		size: d.CapacityBytes,
	}, d.CapacityBytes, nil
}

// datastoreReader reads a flat extent with one Range request per ReadAt.
// It is safe for concurrent use; net/http pools the connections.
type datastoreReader struct {
	c    *soap.Client
	ctx  context.Context
	url  *url.URL
	size int64
}

func (r *datastoreReader) ReadAt(b []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(b)), r.size-off)
	if want == 0 {
		return 0, nil
	}
	res, err := r.c.DownloadRequest(r.ctx, r.url, &soap.Download{
		Method:  http.MethodGet,
		Headers: map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, off+want-1)},
	})
	if err != nil {
		return 0, fmt.Errorf("vsphere: reading %d bytes at %d: %w", want, off, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusPartialContent {
		// A 200 would be the whole file: never acceptable for a multi-GiB disk.
		return 0, fmt.Errorf("vsphere: reading %d bytes at %d: %s (the server must honour Range)", want, off, res.Status)
	}
	n, err := io.ReadFull(res.Body, b[:want])
	if err != nil {
		return n, fmt.Errorf("vsphere: reading %d bytes at %d: %w", want, off, err)
	}
	if want < int64(len(b)) {
		return n, io.EOF
	}
	return n, nil
}
