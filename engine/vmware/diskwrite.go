package vmware

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vmdk"
)

// UploadDisk writes a monolithic flat disk of size bytes at descriptorPath
// ("[ds] dir/name.vmdk"): content goes to the "name-flat.vmdk" extent and
// a VMDK descriptor pointing at it to descriptorPath. Existing files are
// overwritten. content must yield exactly size bytes; size must be a
// whole number of 512-byte sectors.
//
// The upload is a streaming PUT to the datastore HTTP interface (/folder),
// the same interface OpenDisk reads backups through. It needs no VDDK
// (a proprietary, per-platform C library) and no NFC import lease, which
// would want the disk as a stream-optimized VMDK and a VM to import into,
// while a restore either builds the VM afterwards around files that
// already exist (CreateVM) or rewrites the files of a VM that stays
// registered (ReplaceDisks). Like OpenDisk, it works for VMFS and NFS
// datastores, not for vSAN or vVols objects. A PUT cannot skip holes, so
// every byte is sent, zeros too, and the disk takes its full size on the
// datastore whatever its provisioning was.
func (c *Client) UploadDisk(ctx context.Context, datacenter, descriptorPath string, size int64, content io.Reader) error {
	var p object.DatastorePath
	if !p.FromString(descriptorPath) || !strings.HasSuffix(p.Path, ".vmdk") {
		return fmt.Errorf("vsphere: %q is not a datastore path of a .vmdk", descriptorPath)
	}
	if size <= 0 || size%vmdk.SectorSize != 0 {
		return fmt.Errorf("vsphere: disk size %d is not a positive multiple of %d bytes", size, vmdk.SectorSize)
	}
	return c.putDisk(ctx, datacenter, p, newDescriptor(size, flatName(path.Base(p.Path))), size, content)
}

// UploadDiskFrom is UploadDisk for a producer that writes: write is given
// the request body and must write exactly size bytes to it, for example
// disk.RestoreTo streaming a recovery point. An error from write is
// returned as is and aborts the upload.
func (c *Client) UploadDiskFrom(ctx context.Context, datacenter, descriptorPath string, size int64, write func(w io.Writer) error) error {
	return pipeTo(func(r io.Reader) error { return c.UploadDisk(ctx, datacenter, descriptorPath, size, r) }, write)
}

// errUploadEnded is what a producer's writes fail with once the upload
// stopped reading, so pipeTo can tell that apart from its own failure.
var errUploadEnded = errors.New("vsphere: the upload ended before the disk content did")

// pipeTo connects a writer-style producer to a reader-style consumer and
// returns the error that caused a failure: the producer's own, or else
// the consumer's.
func pipeTo(consume func(io.Reader) error, write func(io.Writer) error) error {
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err) // nil closes with io.EOF
		werr <- err
	}()
	err := consume(pr)
	// Unblocks a producer still writing into an upload that gave up.
	pr.CloseWithError(errUploadEnded)
	if e := <-werr; e != nil && !errors.Is(e, errUploadEnded) {
		return e
	}
	return err
}

// RestoredDiskPath is where a restored VM's index-th disk goes, as
// vSphere lays out a new VM: "[ds] name/name.vmdk", then "name_1.vmdk",
// ..., in the directory that CreateVM then puts the .vmx in.
func RestoredDiskPath(datastore, vmName string, index int) string {
	if index > 0 {
		return vmFile(datastore, vmName, "_"+strconv.Itoa(index)+".vmdk")
	}
	return vmFile(datastore, vmName, ".vmdk")
}

// vmFile is "[datastore] dir/dir<suffix>", dir being the VM's directory.
func vmFile(datastore, vmName, suffix string) string {
	dir := vmDirName(vmName)
	return (&object.DatastorePath{Datastore: datastore, Path: dir + "/" + dir + suffix}).String()
}

// flatName is the extent file UploadDisk writes beside a descriptor.
func flatName(descriptor string) string {
	return strings.TrimSuffix(descriptor, ".vmdk") + "-flat.vmdk"
}

// vmDirName escapes what vSphere escapes when it names a VM's directory.
func vmDirName(vmName string) string {
	return strings.NewReplacer("%", "%25", "/", "%2f", `\`, "%5c").Replace(vmName)
}

// newDescriptor describes a flat extent the way ESXi's own descriptors do.
// The geometry is the one ESXi gives SCSI disks; it only matters to
// guests that still address disks by cylinders. The disk gets a fresh
// content id and uuid: it is a new disk, whatever it holds.
func newDescriptor(size int64, flat string) *vmdk.Descriptor {
	d := vmdk.NewDescriptor(vmdk.Extent{Size: size / vmdk.SectorSize, Info: flat})
	d.CID = randomCID()
	d.ParentCID = 0xffffffff // no parent
	d.DDB = map[string]string{
		"adapterType":        "lsilogic",
		"geometry.heads":     "255",
		"geometry.sectors":   "63",
		"geometry.cylinders": strconv.FormatInt(max(1, min(65535, size/(255*63*vmdk.SectorSize))), 10),
		"uuid":               diskUUID(),
		// The lowest version that knows this format; the VM's hardware
		// version, not the disk's, decides the virtual hardware.
		"virtualHWVersion": "4",
	}
	return d
}

func randomCID() vmdk.DiskContentID {
	var b [4]byte
	for {
		rand.Read(b[:])
		// 0xffffffff means "no parent" in parentCID; keep it out of CID.
		if id := binary.BigEndian.Uint32(b[:]); id != 0 && id != 0xffffffff {
			return vmdk.DiskContentID(id)
		}
	}
}

// diskUUID is in the descriptor's "60 00 c2 9a ... -..." form.
func diskUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[0], b[1], b[2] = 0x60, 0x00, 0xc2
	hex := make([]string, 16)
	for i, x := range b {
		hex[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(hex[:8], " ") + "-" + strings.Join(hex[8:], " ")
}

// putDisk uploads the extent first and the descriptor last, so an upload
// that dies half way leaves no descriptor claiming a disk whose data is
// not all there (for a new disk; a rewrite keeps its old descriptor until
// the end, which is the same descriptor but for the content id).
func (c *Client) putDisk(ctx context.Context, datacenter string, p object.DatastorePath, desc *vmdk.Descriptor, size int64, content io.Reader) error {
	if len(desc.Extent) != 1 {
		return fmt.Errorf("vsphere: %s: a disk with %d extents cannot be written over /folder", &p, len(desc.Extent))
	}
	extent := extentOf(p, desc)
	body := &exactReader{r: content, left: size}
	err := c.soap.Upload(ctx, body, c.folderURL(datacenter, extent),
		&soap.Upload{Method: http.MethodPut, Type: "application/octet-stream", ContentLength: size})
	if body.err != nil {
		err = body.err // the transport's message about it is vaguer
	}
	if err != nil {
		return fmt.Errorf("vsphere: writing %s: %w", &extent, err)
	}
	var text strings.Builder
	if err := desc.Write(&text); err != nil {
		return fmt.Errorf("vsphere: descriptor of %s: %w", &p, err)
	}
	if err := c.soap.Upload(ctx, strings.NewReader(text.String()), c.folderURL(datacenter, p),
		&soap.Upload{Method: http.MethodPut, Type: "text/plain", ContentLength: int64(text.Len())}); err != nil {
		return fmt.Errorf("vsphere: writing %s: %w", &p, err)
	}
	return nil
}

// folderURL is where the datastore HTTP interface serves a file.
func (c *Client) folderURL(datacenter string, p object.DatastorePath) *url.URL {
	return object.NewDatastoreURL(*c.soap.URL(), datacenter, p.Datastore, p.Path)
}

// extentOf is the file of a descriptor's first extent, which the
// descriptor names relative to its own directory.
func extentOf(p object.DatastorePath, desc *vmdk.Descriptor) object.DatastorePath {
	return object.DatastorePath{Datastore: p.Datastore, Path: path.Join(path.Dir(p.Path), desc.Extent[0].Info)}
}

// singleFlat says whether a disk is one flat extent: the only layout
// /folder can read or write as plain bytes at any offset.
func singleFlat(desc *vmdk.Descriptor) bool {
	if len(desc.Extent) != 1 {
		return false
	}
	switch strings.ToUpper(desc.Extent[0].Type) {
	case "FLAT", "VMFS":
		return true
	}
	return false
}

// readDescriptor fetches and parses a disk's descriptor.
func (c *Client) readDescriptor(ctx context.Context, datacenter string, p object.DatastorePath) (*vmdk.Descriptor, error) {
	res, err := c.soap.DownloadRequest(ctx, c.folderURL(datacenter, p), &soap.Download{Method: http.MethodGet})
	if err != nil {
		return nil, fmt.Errorf("vsphere: reading descriptor %s: %w", &p, err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("%w: disk %s", ErrNotFound, &p)
	default:
		return nil, fmt.Errorf("vsphere: reading descriptor %s: %s", &p, res.Status)
	}
	desc, err := vmdk.ParseDescriptor(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("vsphere: parsing descriptor %s: %w", &p, err)
	}
	return desc, nil
}

// fileExists asks /folder for a file's first byte: a HEAD, or a GET
// without Range, of a multi-GiB extent would be answered or started whole.
func (c *Client) fileExists(ctx context.Context, datacenter string, p object.DatastorePath) (bool, error) {
	res, err := c.soap.DownloadRequest(ctx, c.folderURL(datacenter, p),
		&soap.Download{Method: http.MethodGet, Headers: map[string]string{"Range": "bytes=0-0"}})
	if err != nil {
		return false, fmt.Errorf("vsphere: looking for %s: %w", &p, err)
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusRequestedRangeNotSatisfiable:
		return true, nil // 416: there, but empty
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("vsphere: looking for %s: %s", &p, res.Status)
}

// exactReader passes exactly left bytes of r and fails, instead of
// sending a short or truncated disk, when r has fewer or more.
type exactReader struct {
	r    io.Reader
	left int64
	eof  bool
	err  error
}

func (e *exactReader) Read(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		if !e.eof {
			var one [1]byte
			for {
				n, err := e.r.Read(one[:])
				if n > 0 {
					e.err = errors.New("the disk content is longer than the disk")
					return 0, e.err
				}
				if err != nil {
					if err != io.EOF {
						e.err = err
						return 0, err
					}
					break
				}
			}
			e.eof = true
		}
		return 0, io.EOF
	}
	if int64(len(b)) > e.left {
		b = b[:e.left]
	}
	n, err := e.r.Read(b)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("the disk content ended %d bytes short: %w", e.left, io.ErrUnexpectedEOF)
		return n, e.err
	case err == io.EOF:
		e.eof = true
	case err != nil:
		e.err = err
	}
	return n, err
}
