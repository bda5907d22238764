package postgres

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
)

// walFile is a WAL segment's place in the log: its timeline and its
// number. A segment's file name is the timeline, then the number split into
// a high part and a low part of 4 GiB / segment size segments.
type walFile struct {
	tli uint32
	seg uint64
}

var walFileName = regexp.MustCompile(`^[0-9A-F]{24}$`)

func parseWALFile(name string, segSize int64) (walFile, error) {
	if !walFileName.MatchString(name) {
		return walFile{}, fmt.Errorf("WAL file name %q: want 24 hex digits", name)
	}
	var tli, hi, lo uint64
	fmt.Sscanf(name, "%08X%08X%08X", &tli, &hi, &lo)
	return walFile{tli: uint32(tli), seg: hi*perXLogID(segSize) + lo}, nil
}

func (f walFile) name(segSize int64) string {
	per := perXLogID(segSize)
	return fmt.Sprintf("%08X%08X%08X", f.tli, f.seg/per, f.seg%per)
}

func perXLogID(segSize int64) uint64 { return 0x100000000 / uint64(segSize) }

// segmentsBetween lists WAL file names from first to last inclusive.
func segmentsBetween(first, last string, segSize int64) ([]string, error) {
	a, err := parseWALFile(first, segSize)
	if err != nil {
		return nil, err
	}
	b, err := parseWALFile(last, segSize)
	if err != nil {
		return nil, err
	}
	if b.seg < a.seg {
		return nil, fmt.Errorf("WAL %s ends before it starts (%s)", last, first)
	}
	var names []string
	for f := a; f.seg <= b.seg; f.seg++ {
		names = append(names, f.name(segSize))
	}
	return names, nil
}

// ArchivedSegments lists the WAL segment files in an archive directory
// from the one named first on, in order (history and backup history files
// left out).
func ArchivedSegments(dir, first string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if walFileName.MatchString(e.Name()) && e.Name() >= first {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	slices.Sort(out)
	return out, nil
}
