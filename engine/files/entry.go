// Package files backs up and restores file trees through the repository:
// a deterministic walk, content-defined chunking of changed files, reuse of
// the previous point's chunk lists for unchanged ones, and a parallel,
// batched restore.
package files

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pathtext"
)

// Entry types.
const (
	TypeFile     = "file"
	TypeDir      = "dir"
	TypeSymlink  = "symlink"
	TypeHardlink = "hardlink"
	TypeFIFO     = "fifo"
	TypeCharDev  = "chardev"
	TypeBlockDev = "blockdev"
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
//
// File names are bytes, not text: Path, Target and the xattr names hold
// whatever bytes the filesystem gave, valid UTF-8 or not. JSON strings
// cannot carry bytes that are not UTF-8 (encoding/json turns them into
// U+FFFD), so MarshalJSON writes such a value base64-encoded in a "_raw"
// field instead; see wireEntry.
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
	// Links is a file's link count when it is above one, set on the
	// inode's first name (the entry its hardlink entries target), so that
	// a restore remembers where it put only the files that later entries
	// may link to.
	Links uint32 `json:"links,omitempty"`
	// Target is a symlink's target, or the path of the first entry a
	// hardlink shares its inode with.
	Target string `json:"target,omitempty"`
	// DevMajor and DevMinor are a device node's device number, kept as
	// its two parts since each OS packs them differently.
	DevMajor uint32 `json:"dev_major,omitempty"`
	DevMinor uint32 `json:"dev_minor,omitempty"`
	// WinAttrs are the Windows file attributes (read-only, hidden,
	// system, archive, ...) of an entry backed up on Windows.
	WinAttrs uint32 `json:"win_attrs,omitempty"`
	// BtimeNs is the creation time of an entry read over SMB.
	BtimeNs int64 `json:"btime_ns,omitempty"`
	// SD is the Windows security descriptor (self-relative: owner, group,
	// DACL and, when it could be read, SACL) of an entry read over SMB.
	SD     []byte            `json:"sd,omitempty"`
	Xattrs map[string][]byte `json:"xattrs,omitempty"`
	Chunks []ChunkRef        `json:"chunks,omitempty"`
}

// Meta is stored in a files manifest's root.
type Meta struct {
	Source string `json:"source"`
	Files  int64  `json:"files"`
	Dirs   int64  `json:"dirs"`
	Bytes  int64  `json:"bytes"`
	Reused int64  `json:"reused_files"`
	// ReusedBytes are the reused files' sizes: Bytes less these is what
	// the capture read.
	ReusedBytes int64 `json:"reused_bytes,omitempty"`
	Warnings    int64 `json:"warnings"`
	// LinksMarked says the manifest's file entries carry Links. A restore
	// of a point without it (from before Links existed) cannot tell which
	// files hardlinks will target, and remembers every file it restores.
	LinksMarked bool `json:"links_marked,omitempty"`
}

// entryFields is Entry without its JSON methods, for wireEntry to embed.
type entryFields Entry

// wireEntry is an Entry as a manifest line. Its text fields shadow the
// embedded ones: a value that is valid UTF-8 is written as before (so
// manifests written before raw fields existed read unchanged, and unchanged
// entries keep deduplicating), one that is not goes into the "_raw" twin
// as base64 bytes. Xattr names that are not UTF-8 go into xattrs_raw, keyed
// by the base64 of the name. The shadowing fields sit where Entry has
// them, so a line's field order is what it always was.
type wireEntry struct {
	Path    string `json:"path,omitempty"`
	PathRaw []byte `json:"path_raw,omitempty"`
	*entryFields
	Target    string            `json:"target,omitempty"`
	TargetRaw []byte            `json:"target_raw,omitempty"`
	Xattrs    map[string][]byte `json:"xattrs,omitempty"`
	XattrsRaw map[string][]byte `json:"xattrs_raw,omitempty"`
	Chunks    []ChunkRef        `json:"chunks,omitempty"`
}

// textOrRaw splits a byte string into the field that can carry it.
func textOrRaw(s string) (string, []byte) {
	if utf8.ValidString(s) {
		return s, nil
	}
	return "", []byte(s)
}

// MarshalJSON writes names that are not valid UTF-8 as base64 bytes.
func (e Entry) MarshalJSON() ([]byte, error) {
	w := wireEntry{entryFields: (*entryFields)(&e), Chunks: e.Chunks}
	w.Path, w.PathRaw = textOrRaw(e.Path)
	w.Target, w.TargetRaw = textOrRaw(e.Target)
	for name, val := range e.Xattrs {
		if utf8.ValidString(name) {
			if w.Xattrs == nil {
				w.Xattrs = map[string][]byte{}
			}
			w.Xattrs[name] = val
			continue
		}
		if w.XattrsRaw == nil {
			w.XattrsRaw = map[string][]byte{}
		}
		w.XattrsRaw[base64Std(name)] = val
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads both the text and the raw form of each name.
func (e *Entry) UnmarshalJSON(b []byte) error {
	*e = Entry{}
	w := wireEntry{entryFields: (*entryFields)(e)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	e.Path, e.Target, e.Xattrs, e.Chunks = w.Path, w.Target, w.Xattrs, w.Chunks
	if w.PathRaw != nil {
		e.Path = string(w.PathRaw)
	}
	if w.TargetRaw != nil {
		e.Target = string(w.TargetRaw)
	}
	for key, val := range w.XattrsRaw {
		name, err := unbase64Std(key)
		if err != nil {
			return fmt.Errorf("xattrs_raw name %q: %w", key, err)
		}
		if e.Xattrs == nil {
			e.Xattrs = map[string][]byte{}
		}
		e.Xattrs[name] = val
	}
	return nil
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unbase64Std(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}

// ShowPath is how a manifest path is shown to people and accepted back in
// a restore's Paths: absolute, and Go-quoted when it is not valid UTF-8
// (see pathtext).
func ShowPath(p string) string {
	abs := "/"
	if p != "." {
		abs += p
	}
	return pathtext.Show(abs)
}
