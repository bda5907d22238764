package database

import (
	"fmt"
	"strings"
)

// Conversion says why a requested differential must be taken as a full,
// or "" when its base full vouches for everything the differential would
// skip. It checks what every engine can tell from the base's meta and the
// server as it is now; an engine adds its own checks (another tool's full
// since the base, a base whose stored files cannot be read).
func Conversion(base *Base, lastFullFailed bool, now Identity) string {
	if base == nil || base.Meta == nil {
		return "no complete full exists"
	}
	was := base.Meta
	switch {
	case lastFullFailed:
		return "the last full failed"
	case was.SystemID != now.SystemID:
		return fmt.Sprintf("the server's identity changed (system identifier %s, the base full's %s)", now.SystemID, was.SystemID)
	case was.Timeline != now.Timeline:
		return fmt.Sprintf("the server's timeline changed from %d to %d: it was restored or promoted since the base full", was.Timeline, now.Timeline)
	case was.DataDir != now.DataDir:
		return fmt.Sprintf("stored metadata and the files disagree: the base full is of data directory %s, the server's is %s", was.DataDir, now.DataDir)
	}
	var changes []string
	changes = compareByOID(changes, "database", was.Databases, now.Databases,
		func(d Database) uint32 { return d.OID }, func(d Database) string { return d.Name }, nil)
	changes = compareByOID(changes, "data file", was.DataFiles, now.DataFiles,
		func(f DataFile) uint32 { return f.OID }, func(f DataFile) string { return f.Name }, func(f DataFile) string { return f.Location })
	return strings.Join(changes, "; ")
}

// compareByOID appends to changes what was added, dropped, renamed or
// (with location) moved between two lists of things known by their OIDs.
func compareByOID[T any](changes []string, what string, was, now []T, oid func(T) uint32, name, location func(T) string) []string {
	before := map[uint32]T{}
	for _, x := range was {
		before[oid(x)] = x
	}
	after := map[uint32]bool{}
	for _, x := range now {
		after[oid(x)] = true
		old, ok := before[oid(x)]
		switch {
		case !ok:
			changes = append(changes, fmt.Sprintf("%s %q was added", what, name(x)))
		case name(old) != name(x):
			changes = append(changes, fmt.Sprintf("%s %q was renamed to %q", what, name(old), name(x)))
		case location != nil && location(old) != location(x):
			changes = append(changes, fmt.Sprintf("%s %q was moved from %s to %s", what, name(x), location(old), location(x)))
		}
	}
	for _, x := range was {
		if !after[oid(x)] {
			changes = append(changes, fmt.Sprintf("%s %q was dropped", what, name(x)))
		}
	}
	return changes
}
