package files

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
)

// Windows keeps no POSIX extended attributes. NTFS alternate data streams,
// ACLs and owners are not captured yet (see the agents guide).
func readXattrs(string, bool) map[string][]byte { return nil }

func writeXattrs(_ string, _ bool, attrs map[string][]byte) error {
	if len(attrs) == 0 {
		return nil
	}
	return fmt.Errorf("%d extended attributes not restored: Windows has none", len(attrs))
}

// makeSpecial: Windows has no FIFOs or device nodes in its file system.
func makeSpecial(_ string, e *Entry) error {
	return fmt.Errorf("%w: Windows has no %s files", errNotPermitted, e.Type)
}

// The attributes a restore sets; the others (directory, reparse point,
// sparse, compressed, ...) describe what the file is, and follow from how
// it is created.
const restoredAttrs = windows.FILE_ATTRIBUTE_READONLY | windows.FILE_ATTRIBUTE_HIDDEN |
	windows.FILE_ATTRIBUTE_SYSTEM | windows.FILE_ATTRIBUTE_ARCHIVE | windows.FILE_ATTRIBUTE_NOT_CONTENT_INDEXED

// setModeAndTimes sets times, then attributes (last, so read-only does
// not stand in the way). An entry from a POSIX host has no attributes:
// a mode without the owner's write bit becomes read-only.
func setModeAndTimes(dst string, e *Entry) error {
	name, err := windows.UTF16PtrFromString(dst)
	if err != nil {
		return err
	}
	atime := e.AtimeNs
	if atime == 0 {
		atime = e.MtimeNs
	}
	if err := setTimes(name, atime, e.MtimeNs); err != nil {
		return fmt.Errorf("times: %w", err)
	}
	attrs := e.WinAttrs & restoredAttrs
	if e.WinAttrs == 0 && e.Mode&0o200 == 0 && e.Type != TypeSymlink {
		attrs = windows.FILE_ATTRIBUTE_READONLY
	}
	if attrs == 0 {
		if e.WinAttrs == 0 {
			return nil
		}
		attrs = windows.FILE_ATTRIBUTE_NORMAL
	}
	if err := windows.SetFileAttributes(name, attrs); err != nil {
		return fmt.Errorf("attributes: %w", err)
	}
	return nil
}

// setTimes sets access and modification times on the entry itself (a
// symlink's own times, not its target's; a directory's too).
func setTimes(name *uint16, atimeNs, mtimeNs int64) error {
	h, err := windows.CreateFile(name, windows.FILE_WRITE_ATTRIBUTES, windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE,
		nil, windows.OPEN_EXISTING, windows.FILE_FLAG_BACKUP_SEMANTICS|windows.FILE_FLAG_OPEN_REPARSE_POINT, 0)
	if err != nil {
		return err
	}
	a, m := windows.NsecToFiletime(atimeNs), windows.NsecToFiletime(mtimeNs)
	return errors.Join(windows.SetFileTime(h, nil, &a, &m), windows.CloseHandle(h))
}
