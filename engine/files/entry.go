// Package files backs up and restores file trees through the repository:
// a deterministic walk, content-defined chunking of changed files, reuse of
// the previous point's chunk lists for unchanged ones, and a parallel,
// batched restore.
package files

import (
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// Entry types.
const (
	TypeFile     = "file"
	TypeDir      = "dir"
	TypeSymlink  = "symlink"
	TypeHardlink = "hardlink"
)

// ChunkRef is one piece of a file's content: a stored chunk of Len bytes,
// or (ID zero, Hole set) a run of Len zero bytes that was never stored.
type ChunkRef struct {
	ID   format.ID `json:"id,omitzero"`
	Len  int64     `json:"len"`
	Hole bool      `json:"hole,omitempty"`
}

// Entry is one line of a "files" manifest. Paths are slash-separated and
// relative to the root of the capture; entries come in walk order (a
// directory before its contents, names sorted bytewise).
type Entry struct {
	Path  string `json:"path"`
	Type  string `json:"type"`
	Mode  uint32 `json:"mode"` // permission and set-id/sticky bits
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	Size  int64  `json:"size,omitempty"`
	// Times in nanoseconds since the epoch.
	MtimeNs int64 `json:"mtime_ns"`
	AtimeNs int64 `json:"atime_ns,omitempty"`
	CtimeNs int64 `json:"ctime_ns,omitempty"`
	// Inode and device identify a file for incremental reuse and hardlinks.
	Inode  uint64 `json:"ino,omitempty"`
	Device uint64 `json:"dev,omitempty"`
	// Target is a symlink's target, or the path of the first entry a
	// hardlink shares its inode with.
	Target string            `json:"target,omitempty"`
	Xattrs map[string][]byte `json:"xattrs,omitempty"`
	Chunks []ChunkRef        `json:"chunks,omitempty"`
}

// Meta is stored in a files manifest's root.
type Meta struct {
	Source   string `json:"source"`
	Files    int64  `json:"files"`
	Dirs     int64  `json:"dirs"`
	Bytes    int64  `json:"bytes"`
	Reused   int64  `json:"reused_files"`
	Warnings int64  `json:"warnings"`
}
