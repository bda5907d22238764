// Package nas backs up and restores NAS shares through the protocols the
// NAS serves (SMB2/3 and NFSv3), spoken by a NAS proxy without mounting
// anything: the proxy needs no root and no kernel modules. A share is read
// and written through the Share contract below; engine/nas/smb and
// engine/nas/nfs implement it, and this package's capture and restore know
// nothing of either protocol beyond the metadata each one carries.
//
// Points are "files" manifests (engine/files.Entry lines), so browsing,
// restore plans and verification treat a share's point as any file tree's.
// SMB adds the creation time (Entry.BtimeNs), the DOS attributes
// (Entry.WinAttrs) and the security descriptor (Entry.SD); NFS fills in the
// POSIX mode (with set-id and sticky bits), owner, group and times in
// nanoseconds.
package nas

import (
	"context"
	"errors"
	"io"
)

// Protocols.
const (
	SMB = "smb"
	NFS = "nfs"
)

// Entry types a share reports (the engine/files names).
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
)

// SMB file attributes (MS-FSCC 2.6) that Haven captures and restores.
const (
	AttrReadOnly          = 0x1
	AttrHidden            = 0x2
	AttrSystem            = 0x4
	AttrDirectory         = 0x10
	AttrArchive           = 0x20
	AttrNormal            = 0x80
	AttrNotContentIndexed = 0x2000
	// AttrsKept are the attributes a restore sets; the others (directory,
	// reparse point, sparse, compressed, ...) follow from what the entry
	// is and are the server's to decide.
	AttrsKept = AttrReadOnly | AttrHidden | AttrSystem | AttrArchive | AttrNotContentIndexed
)

// Info is one entry of a share as its protocol describes it. Fields a
// protocol does not carry are zero.
type Info struct {
	// Name is the entry's name in its directory (no slashes).
	Name string
	// Type is TypeFile, TypeDir or TypeSymlink. Entries of other types
	// (an NFS fifo or device) are reported with their own engine/files
	// type and are recorded, not read.
	Type string
	Size int64
	// Times in nanoseconds since the epoch. BtimeNs is the creation time
	// (SMB); CtimeNs the change time (both protocols).
	MtimeNs, AtimeNs, CtimeNs, BtimeNs int64
	// FileID identifies the file on the server (the inode number on NFS
	// and on Samba, the file reference on Windows); 0 when unknown.
	FileID uint64
	// NFS: permission, set-id and sticky bits, owner and group ids.
	Mode     uint32
	UID, GID uint32
	// Nlink is the file's link count (NFS), 0 when unknown.
	Nlink uint32
	// Target is a symlink's target.
	Target string
	// SMB: the DOS attributes (Attr* bits).
	Attrs uint32
	// SD is the SMB security descriptor, self-relative (MS-DTYP 2.4.6):
	// owner, group and DACL, and the SACL when the share was opened with
	// the right to read it (see Share.SACL). Nil on NFS.
	SD []byte
	// Err, when set, says what of the entry's metadata could not be read
	// (its security descriptor, a link's target): the entry is listed
	// with the rest, and a capture records it with a warning.
	Err error
}

// Meta is what a restore applies to an entry once its content is in
// place: the Info fields its protocol keeps.
type Meta = Info

// Share is one connected share. Paths are slash-separated and relative to
// the share's root ("" is the root itself); names are taken and returned
// as the server gives them.
//
// A Share is safe for concurrent use by the capture's and restore's
// workers. Errors from a dropped connection satisfy IsConnectionLost, so
// that a restore can wait for the server and go on where it stopped; a
// Share whose connection dropped stays broken, and the caller dials a new
// one (Dialer).
type Share interface {
	// Protocol is SMB or NFS.
	Protocol() string

	// ReadDir lists a directory's entries (without "." and ".."), each
	// with its metadata, including the security descriptor on SMB.
	ReadDir(ctx context.Context, dir string) ([]Info, error)
	// Stat describes one entry without following a final symlink.
	Stat(ctx context.Context, path string) (Info, error)

	// Open opens a regular file for reading.
	Open(ctx context.Context, path string) (File, error)
	// Create creates a regular file for writing, truncating one that
	// exists.
	Create(ctx context.Context, path string) (File, error)
	// Mkdir creates a directory; one that exists already is no error.
	Mkdir(ctx context.Context, path string) error
	// Symlink makes path a symlink to target (NFS, and SMB servers with
	// POSIX extensions; elsewhere an error the restore reports).
	Symlink(ctx context.Context, target, path string) error
	// Remove removes a file, a symlink or an empty directory; one that
	// does not exist is no error.
	Remove(ctx context.Context, path string) error
	// Rename moves from onto to, replacing a file at to.
	Rename(ctx context.Context, from, to string) error

	// SetMeta applies m to path: on SMB the security descriptor (when
	// m.SD is set), the attributes in AttrsKept and the creation, write
	// and access times; on NFS the mode, owner and group (owner and group
	// only when the server allows it) and the times. Times are applied
	// last, since setting the others changes the change time.
	// A part the server refuses for want of a right (an owner, a
	// descriptor) is an error matching fs.ErrPermission, returned after
	// the other parts were applied.
	SetMeta(ctx context.Context, path string, m Meta) error

	// Free is the space the share's user may still write, in bytes.
	Free(ctx context.Context) (uint64, error)

	// SACL says whether security descriptors read from this share carry
	// their SACLs: reading a SACL needs the SeSecurityPrivilege, and a
	// proxy whose account lacks it reads owner, group and DACL only. The
	// reason says why not, for the job's warning. Always false on NFS.
	SACL() (ok bool, reason string)

	// Close ends the session.
	Close() error
}

// File is an open file of a share.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
}

// HandleStat is a File that describes itself (size and times) through its
// open handle, sparing the NAS a lookup by name; a File that cannot is
// described with Share.Stat.
type HandleStat interface {
	StatHandle() (Info, error)
}

// MetaCreator is a Share that creates a file with a handle that also
// gives it its metadata, so that a restore spends no open by name, no
// query and no second close on each file. CreateMeta creates path as
// Create does, refused for want of a right (fs.ErrPermission) where the
// file exists and its descriptor keeps the account from changing it; the
// restore then uses Create and SetMeta.
type MetaCreator interface {
	CreateMeta(ctx context.Context, path string, m Meta) (MetaFile, error)
}

// MetaFile is a file made by MetaCreator.CreateMeta.
type MetaFile interface {
	File
	// Commit applies the metadata CreateMeta was given, as SetMeta would
	// (a refused part is an error matching fs.ErrPermission), and closes
	// the file whatever happens. It returns the file's size as the share
	// reports it after the writes, or -1 where the share did not say or
	// the close failed. Close instead abandons the file without its
	// metadata.
	Commit() (size int64, err error)
}

// DirMaker is a Share that makes a directory and keeps it open, so that a
// restore gives the directory its metadata at the end through that
// handle, sparing the NAS a close, an open by name and a second close per
// directory. MkdirOpen creates path as Mkdir does; where a directory of
// that name exists already it answers as Mkdir does, with no handle. sd,
// when not nil, is the descriptor the directory will be given: a share
// may create the directory with it where that cannot keep the restore
// from creating its entries (SetMetaClose then leaves it as it is).
type DirMaker interface {
	MkdirOpen(ctx context.Context, path string, sd []byte) (MetaDir, error)
}

// MetaDir is a directory made by DirMaker.MkdirOpen.
type MetaDir interface {
	// SetMetaClose applies m as SetMeta would (its errors are SetMeta's)
	// and closes the handle whatever happens.
	SetMetaClose(m Meta) error
	// Close closes the handle without touching the directory.
	Close() error
}

// Dialer connects to a share; a restore calls it again after a lost
// connection.
type Dialer func(ctx context.Context) (Share, error)

// ErrConnectionLost marks errors from a dropped connection to the NAS.
var ErrConnectionLost = errors.New("the connection to the NAS was lost")

// IsConnectionLost tells whether err came from a dropped connection (and
// a retry on a new connection may succeed).
func IsConnectionLost(err error) bool { return errors.Is(err, ErrConnectionLost) }
