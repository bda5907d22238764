package files

import (
	"io/fs"
)

// fileStat is what a capture needs from lstat beyond fs.FileInfo, in the
// same shape on every OS; statOf (one per OS) fills it.
type fileStat struct {
	uid, gid                  uint32
	atimeNs, mtimeNs, ctimeNs int64
	inode, device, nlink      uint64
	devMajor, devMinor        uint32
	winAttrs                  uint32
}

// POSIX set-id and sticky bits, as Entry.Mode stores them on every OS.
const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
	modeSticky = 0o1000
)

// modeBits turns fs.FileMode permissions into Entry.Mode.
func modeBits(m fs.FileMode) uint32 {
	bits := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		bits |= modeSetuid
	}
	if m&fs.ModeSetgid != 0 {
		bits |= modeSetgid
	}
	if m&fs.ModeSticky != 0 {
		bits |= modeSticky
	}
	return bits
}

// extent is a run of a file: data to read, or a hole to record.
type extent struct {
	offset, length int64
	hole           bool
}
